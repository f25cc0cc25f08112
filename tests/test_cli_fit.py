"""``featx fit`` and ``featx pca`` from the command line, end to end in a temp dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner, Result

from featx import cache as cachefile
from featx.cli import main
from featx.cli.options import SCALES
from featx.fitting.classifiers import Scale

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cached(feature_file: Callable[..., Path]) -> Path:
    """``resnet50`` features for data set ``cifar10`` in the test's cache dir (7 classes)."""
    return feature_file(name="resnet50", dataset="cifar10", n_train=140, n_test=70, dim=10, n_classes=7, separation=0.8, seed=4)


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, ["-q", *args])


def _reports() -> Path:
    return Path(os.environ["FEATX_REPORTS_DIR"])


def _written() -> list[Path]:
    """Files written under the reports root, but the lock files of record saves (``.locks/``)."""
    return sorted(p for p in _reports().rglob("*") if p.is_file() and p.parent.name != ".locks") if _reports().exists() else []


def test_fit_json_by_backbone_name(cached: Path) -> None:
    result = _run("fit", "--features", "resnet50", "--clf", "linearsvc", "--C-grid", "0.001,0.1,1", "--cv", "3", "--n-jobs", "1", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["clf"] == "linearsvc" and record["features"]["path"] == str(cached)
    assert record["grid"] == {"C": [0.001, 0.1, 1.0]} and len(record["cv_results"]) == 3
    assert (_reports() / record["record_file"]).exists() and (_reports() / record["model_file"]).exists()
    assert sorted(p.suffix for p in _written()) == [".joblib", ".json"]


def test_fit_human_summary_for_knn_grid_options(cached: Path) -> None:
    result = _run(
        "fit",
        "--features",
        str(cached),
        "--clf",
        "knn",
        "--k-grid",
        "1,3,5",
        "--vote",
        "uniform,distance",
        "--metric",
        "euclidean,cosine",
        "--cv",
        "3",
        "--n-jobs",
        "2",
        "--scale",
        "l2",
        "--pca",
        "4",
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "n_neighbors" in out and "<- best" in out and "test accuracy" in out and "top-5" in out
    assert out.count("cosine") >= 6 and "PCA 4" in out
    assert "record: " in out and "model:  " in out


def test_logspace_and_generic_grid_option(cached: Path) -> None:
    result = _run("fit", "--features", "resnet50", "--clf", "logreg", "--grid", "C=logspace:-2:0:3", "--cv", "3", "--n-jobs", "1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["grid"] == {"C": [0.01, 0.1, 1.0]}


def test_skip_existing_prints_the_earlier_record(cached: Path) -> None:
    args = ("fit", "--features", "resnet50", "--clf", "logreg", "--C-grid", "0.1", "--cv", "3", "--n-jobs", "1", "--json")
    first = json.loads(_run(*args).stdout)
    again = json.loads(_run(*args, "--skip-existing").stdout)
    assert again == first


def test_fit_help_lists_classifiers_with_default_grids() -> None:
    result = CliRunner().invoke(main, ["fit", "--help"])
    assert result.exit_code == 0
    for text in (
        "linearsvc",
        "logreg",
        "knn",
        "--C-grid 0.0001,0.001,0.01,0.1,1",
        "--k-grid 1,3,5,7,11,15,21,31",
        "logspace:LO:HI:N",
        "Example",
    ):
        assert text in result.output
    assert "fit" in CliRunner().invoke(main, ["--help"]).output


def test_scale_choices_match_the_library() -> None:
    assert tuple(s.value for s in Scale) == SCALES


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


def _bump_version(path: Path) -> None:
    with h5py.File(path, "r+") as handle:
        handle.attrs["format_version"] = cachefile.FORMAT_VERSION + 1


def _poison(path: Path) -> None:
    with h5py.File(path, "r+") as handle:
        handle["train/features"][0, 0] = np.inf


@pytest.mark.parametrize(
    ("args", "damage", "message"),
    [
        (("--C-grid", "0.1,x"), None, "--C-grid: bad value '0.1,x': 'x' is not a number"),
        (("--C-grid=-1,2",), None, "-1 is not > 0"),
        (("--C-grid", "0"), None, "0 is not > 0"),
        (("--C-grid", "logspace:-4:2"), None, "logspace needs three fields"),
        (("--k-grid", "1,3"), None, "--k-grid does not apply to linearsvc (its grid options: --C-grid)"),
        (("--grid", "C"), None, "use NAME=SPEC"),
        (("--cv", "40"), None, "fewer than the 40 CV folds"),
        ((), _truncate, "truncated or damaged"),
        ((), _bump_version, "format version"),
        ((), _poison, "NaN or inf"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(
    cached: Path, args: tuple[str, ...], damage: Callable[[Path], None] | None, message: str
) -> None:
    if damage is not None:
        damage(cached)
    result = _run("fit", "--features", "resnet50", "--clf", "linearsvc", "--n-jobs", "1", *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("featx: error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert _written() == []


def test_unknown_classifier_and_missing_features() -> None:
    unknown = _run("fit", "--features", "resnet50", "--clf", "svm")
    assert unknown.exit_code == 2 and "unknown classifier 'svm'" in unknown.stderr
    missing = _run("fit", "--features", "resnet50", "--clf", "knn")
    assert missing.exit_code == 2 and "run `featx extract --backbone resnet50` first" in missing.stderr
    absent_path = _run("pca", "--features", "nowhere/x.h5")
    assert absent_path.exit_code == 2 and "feature file not found" in absent_path.stderr
    assert _written() == []


def test_pca_writes_pngs_named_after_the_features(cached: Path) -> None:
    result = _run("pca", "--features", "resnet50", "--per-class", "5")
    assert result.exit_code == 0, result.output
    folder = _reports() / "pca"
    names = sorted(p.name for p in folder.iterdir())
    stem = "resnet50__0123456789abcdef__standard"
    assert names == [f"{stem}.json", f"{stem}__scatter.png", f"{stem}__variance.png"]
    for png in folder.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    summary = json.loads((folder / f"{stem}.json").read_text())
    assert summary["sample_size"] == 35 and len(summary["explained_variance_ratio"]) == 10
    assert summary["components_for"]["99%"] <= 10
    assert "components needed" in result.stdout


def test_pca_skip_existing_keeps_matching_plots_only(cached: Path) -> None:
    assert _run("pca", "--features", "resnet50", "--per-class", "5").exit_code == 0
    scatter = _reports() / "pca" / "resnet50__0123456789abcdef__standard__scatter.png"
    drawn = scatter.stat().st_mtime_ns
    assert _run("pca", "--features", "resnet50", "--per-class", "5", "--skip-existing").exit_code == 0
    assert scatter.stat().st_mtime_ns == drawn
    assert _run("pca", "--features", "resnet50", "--per-class", "6", "--skip-existing").exit_code == 0  # another sample
    assert scatter.stat().st_mtime_ns != drawn


def test_pca_bad_input_writes_nothing(cached: Path) -> None:
    _poison(cached)
    result = _run("pca", "--features", "resnet50")
    assert result.exit_code == 2 and "NaN or inf" in result.stderr
    bad_count = _run("pca", "--features", "resnet50", "--per-class", "0")
    assert bad_count.exit_code == 2 and "--per-class" in bad_count.stderr
    assert _written() == []


def test_stage_two_never_imports_torch(cached: Path) -> None:
    """Run fit (scikit-learn's solver), pca and report through the real entry point in a
    fresh interpreter: none of them imports torch."""
    script = textwrap.dedent(
        f"""
        import sys
        from featx.cli import main
        for args in (["fit", "--features", {str(cached)!r}, "--clf", "knn", "--k-grid", "1", "--cv", "3", "--solver", "sklearn"],
                     ["pca", "--features", {str(cached)!r}], ["report"]):
            try:
                main(["-q", *args])
            except SystemExit as stop:
                assert stop.code in (0, None), stop.code
        import featx
        featx.fit, featx.pca, featx.load_features, featx.report
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "timm"))
        print("HEAVY", heavy)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout, done.stdout


def test_progress_log_reaches_stderr_on_every_invocation(cached: Path) -> None:
    """The log handler follows sys.stderr (click's runner swaps it per invocation)."""
    for _ in range(2):
        result = CliRunner().invoke(
            main, ["fit", "--features", "resnet50", "--clf", "logreg", "--C-grid", "1", "--cv", "3", "--n-jobs", "1"]
        )
        assert result.exit_code == 0, result.output
        assert "featx: best C=1: CV accuracy" in result.stderr


def test_a_new_classifier_is_one_registry_entry(cached: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Register a ridge classifier (no dedicated searcher, no CLI change) and sweep it with --grid."""
    from sklearn.linear_model import RidgeClassifier

    from featx.fitting import classifiers
    from featx.fitting.grids import ValueRule
    from featx.fitting.search import search_each

    ridge = classifiers.ClassifierSpec(
        name="ridge",
        summary="RidgeClassifier",
        make_estimator=lambda seed: RidgeClassifier(),
        grid=(classifiers.GridParam("alpha", "--grid alpha=", ValueRule("float", exclusive_minimum=0.0), (1.0,), "regularisation"),),
        searcher=search_each,
    )
    monkeypatch.setitem(classifiers.CLASSIFIERS, "ridge", ridge)
    assert "ridge" in CliRunner().invoke(main, ["fit", "--help"]).output
    result = _run(
        "fit", "--features", "resnet50", "--clf", "ridge", "--grid", "alpha=logspace:-1:1:3", "--cv", "3", "--n-jobs", "1", "--json"
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["estimator"] == "RidgeClassifier" and record["grid"] == {"alpha": [0.1, 1.0, 10.0]}
    assert record["top5_accuracy"] is not None  # decision_function gives scores
    wrong = _run("fit", "--features", "resnet50", "--clf", "ridge", "--C-grid", "1")
    assert wrong.exit_code == 2 and "--C-grid does not apply to ridge" in wrong.stderr
