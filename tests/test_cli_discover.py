"""Issue 16 on the command line: which features a name selects, the k-NN ``--vote``, trimmed
default grids, ``backbones``, ``runs``, ``cache ls/prune`` and ``run --dry-run``."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner, Result

from featx.cli import main


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


# --------------------------------------------------------------------- which features


def test_full_data_set_is_preferred_over_a_newer_limited_entry(feature_file: Callable[..., Path]) -> None:
    full = feature_file(name="resnet18", dataset="cifar10", key="aaaaaaaaaaaaaaaa", n_train=90, n_test=30)
    limited = feature_file(name="resnet18", dataset="cifar10", key="bbbbbbbbbbbbbbbb", n_train=30, n_test=15, attrs={"limit": 30})
    os.utime(full, (1, 1))  # the limited entry is the newest
    assert limited.stat().st_mtime > full.stat().st_mtime
    result = _run("fit", "--features", "resnet18", "--clf", "logreg", "--C-grid", "1", "--cv", "2", "--n-jobs", "1", "--json")
    assert result.exit_code == 0, result.output
    assert f"using {full.name} for resnet18: the full data set; also cached: {limited.name}" in result.stderr
    assert '"n_train": 90' in result.stdout


def test_ambiguous_entries_are_listed_with_the_flag_that_selects_each(feature_file: Callable[..., Path]) -> None:
    one = feature_file(name="resnet18", dataset="cifar10", key="aaaaaaaaaaaaaaaa", attrs={"weights": "random"})
    two = feature_file(name="resnet18", dataset="cifar10", key="bbbbbbbbbbbbbbbb", attrs={"weights": "hf-hub:timm/resnet18.a1_in1k"})
    result = _run("fit", "--features", "resnet18", "--clf", "logreg")
    assert result.exit_code == 2
    assert "2 cached entries for 'resnet18' are equally complete" in result.stderr
    assert (
        f"--features {one} (weights random" in result.stderr and f"--features {two} (weights hf-hub:timm/resnet18.a1_in1k" in result.stderr
    )
    assert len(result.stderr.strip().splitlines()) == 1


def test_features_under_another_data_set_name_the_dataset_flag(feature_file: Callable[..., Path]) -> None:
    feature_file(name="resnet18", dataset="digits")
    result = _run("fit", "--features", "resnet18", "--clf", "logreg")
    assert result.exit_code == 2
    assert "no cached features for 'resnet18' under data set 'cifar10'" in result.stderr
    assert "they exist under digits: pass --dataset digits" in result.stderr


# --------------------------------------------------------------------- --vote


def test_knn_vote_option_and_its_deprecated_alias(feature_file: Callable[..., Path]) -> None:
    path = str(feature_file(name="resnet18", dataset="cifar10"))
    common = ("fit", "--features", path, "--clf", "knn", "--k-grid", "1,3", "--metric", "euclidean", "--cv", "2", "--n-jobs", "1", "--json")
    new = _run(*common, "--vote", "distance")
    assert new.exit_code == 0, new.output
    assert "deprecated" not in new.stderr and '"vote": [\n      "distance"' in new.stdout
    old = _run(*common, "--weights", "distance")
    assert old.exit_code == 0, old.output
    assert "--weights in `featx fit` is deprecated and goes in the next release; use --vote" in old.stderr
    assert '"vote": [\n      "distance"' in old.stdout  # records name it as users do
    both = _run(*common, "--vote", "distance", "--weights", "uniform")
    assert both.exit_code == 2 and "--weights is the old spelling of --vote; give only --vote" in both.stderr
    bad = _run(*common, "--vote", "closest")
    assert bad.exit_code == 2 and bad.stderr.startswith("featx: error: --vote: bad value 'closest'")


# --------------------------------------------------------------------- small data


def test_default_knn_grid_is_trimmed_to_the_folds_and_an_explicit_one_is_an_error(feature_file: Callable[..., Path]) -> None:
    path = str(feature_file(name="resnet18", dataset="cifar10", n_train=30, n_test=15))  # 30 images, 5 folds: 24 rows each
    trimmed = _run("fit", "--features", path, "--clf", "knn", "--metric", "euclidean", "--n-jobs", "1", "--json")
    assert trimmed.exit_code == 0, trimmed.output
    assert "dropped 31 from the default n_neighbors grid of knn: a 5-fold CV trains on 24 rows" in trimmed.stderr
    assert '"n_neighbors": [\n      1,\n      3,\n      5,\n      7,\n      11,\n      15,\n      21\n    ]' in trimmed.stdout
    explicit = _run("fit", "--features", path, "--clf", "knn", "--k-grid", "1,31", "--n-jobs", "1")
    assert explicit.exit_code == 2
    assert "k=31 neighbours is more than the 24 training rows of a CV fold; lower --k-grid" in explicit.stderr


# --------------------------------------------------------------------- backbones


def test_backbones_lists_dims_input_sizes_and_weights_here(monkeypatch) -> None:
    listed = _run("backbones", "resnet1*")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.stdout.splitlines() if line.startswith("resnet18 "))
    assert row.split()[:4] == ["resnet18", "512", "224x224", "network"]
    assert _run("backbones", "resnet18", "--pretrained-here").stdout.startswith("no backbone matches")
    from featx.extraction.backbones import resolve_backbone
    from featx.extraction.models import create_backbone
    from featx.extraction.weights import resolve_weights
    from tests.fakes import fake_hub_cache

    backbone = resolve_backbone("test_efficientnet")
    model = create_backbone(backbone, resolve_weights("random", backbone))
    fake_hub_cache(
        Path(os.environ["HF_HOME"]) / "hub", backbone.pretrained_cfg["hf_hub_id"], {k: v.clone() for k, v in model.state_dict().items()}
    )
    here = _run("backbones", "test_efficient*", "--pretrained-here", "--json")
    assert here.exit_code == 0, here.output
    rows = [json.loads(line) for line in here.stdout.splitlines()]
    assert [r["backbone"] for r in rows] == ["test_efficientnet"] and rows[0]["weights_here"] == "hub-cache"
    assert rows[0]["feature_dim"] == model.num_features


# --------------------------------------------------------------------- runs


def test_runs_ls_show_rm_only_what_featx_wrote(feature_file: Callable[..., Path]) -> None:
    path = str(feature_file(name="resnet18", dataset="cifar10"))
    fitted = _run("fit", "--features", path, "--clf", "logreg", "--C-grid", "0.1,1", "--cv", "2", "--n-jobs", "1", "--json")
    assert fitted.exit_code == 0, fitted.output
    record = json.loads(fitted.stdout)
    key = record["run_key"]
    listed = _run("runs", "ls")
    assert listed.exit_code == 0 and key in listed.stdout and "logreg" in listed.stdout and "resnet18" in listed.stdout
    shown = _run("runs", "show", key[:6])
    assert shown.exit_code == 0 and "test accuracy" in shown.stdout and key in shown.stdout
    reports = Path(os.environ["FEATX_REPORTS_DIR"])
    record_file, model_file = reports / record["record_file"], reports / record["model_file"]
    # a file featx did not write in the model's place: refused, nothing deleted
    model_bytes = model_file.read_bytes()
    model_file.write_text("my own notes")
    refused = _run("runs", "rm", key)
    assert refused.exit_code == 2 and "refusing to remove" in refused.stderr and record_file.exists()
    model_file.write_bytes(model_bytes)
    removed = _run("runs", "rm", key)
    assert removed.exit_code == 0, removed.output
    assert not record_file.exists() and not model_file.exists()
    assert "no run records" in _run("runs", "ls").stdout


# --------------------------------------------------------------------- cache ls, prune


def test_cache_ls_total_and_prune_keeps_what_is_held_or_not_featx(feature_file: Callable[..., Path]) -> None:
    import numpy as np

    from featx.cache import CacheWriter, SplitPlan
    from featx.cache.manage import entry_lock

    entry = feature_file(name="resnet18", dataset="cifar10")
    listed = _run("cache", "ls")
    assert listed.exit_code == 0 and listed.stdout.strip().splitlines()[-1].startswith("total: 1 entries, ")
    root = Path(os.environ["FEATX_CACHE_DIR"]) / "cifar10"
    abandoned, held = root / "vgg16__1111111111111111.h5", root / "vgg19__2222222222222222.h5"
    for final, key in ((abandoned, "1111111111111111"), (held, "2222222222222222")):
        attrs = {"key": key, "dataset": "cifar10", "backbone": final.stem.split("__")[0], "class_names": json.dumps(["a", "b"])}
        with CacheWriter(final, root_attrs=attrs, splits={"train": SplitPlan(10, 4)}) as writer:
            writer.write_rows("train", 0, np.zeros((5, 4), np.float32), np.zeros(5, np.int64), seconds=1.0)
    foreign = root / "notes__3333333333333333.partial.h5"
    foreign.write_text("mine")
    stale_lock = root / ".locks" / "gone.h5.lock"
    stale_lock.parent.mkdir(exist_ok=True)
    stale_lock.write_text("")
    with entry_lock(held):  # an extraction is writing it
        dry = _run("cache", "prune", "--dry-run")
        assert dry.exit_code == 0 and f"would remove {abandoned.with_name(abandoned.stem + '.partial.h5')}" in dry.stdout
        assert (root / "vgg16__1111111111111111.partial.h5").exists()
        pruned = _run("cache", "prune")
    assert pruned.exit_code == 0, pruned.output
    assert not (root / "vgg16__1111111111111111.partial.h5").exists() and not stale_lock.exists()
    assert (root / "vgg19__2222222222222222.partial.h5").exists() and foreign.read_text() == "mine" and entry.exists()
    assert "left" in pruned.stderr and str(foreign) in pruned.stderr


# --------------------------------------------------------------------- --grid NAME=SPEC


def test_grid_sweeps_any_estimator_parameter_checked_by_scikit_learn(feature_file: Callable[..., Path]) -> None:
    path = str(feature_file(name="resnet18", dataset="cifar10"))
    common = ("fit", "--features", path, "--cv", "2", "--n-jobs", "1")
    swept = _run(
        *common, "--clf", "linearsvc", "--C-grid", "1", "--grid", "penalty=l1,l2", "--grid", "class_weight=balanced,None", "--json"
    )
    assert swept.exit_code == 0, swept.output
    record = json.loads(swept.stdout)
    assert record["grid"]["penalty"] == ["l1", "l2"] and record["grid"]["class_weight"] == ["balanced", None]
    assert len(record["cv_results"]) == 4 and "penalty" not in record["estimator_params"]
    report = _run("report")
    assert report.exit_code == 0, report.output  # the report draws a grid of names and None
    tuned = _run(*common, "--clf", "logreg", "--C-grid", "1", "--grid", "max_iter=50,200", "--grid", "tol=1e-3", "--json")
    assert tuned.exit_code == 0, tuned.output
    assert json.loads(tuned.stdout)["grid"]["max_iter"] == [50, 200]
    bad = _run(*common, "--clf", "logreg", "--grid", "max_iter=-3")
    assert bad.exit_code == 2 and "--grid max_iter=: bad value -3: The 'max_iter' parameter of LogisticRegression must be" in bad.stderr
    unknown = _run(*common, "--clf", "logreg", "--grid", "max_itr=3")
    assert unknown.exit_code == 2 and "did you mean max_iter?" in unknown.stderr
