"""``featx export``: one TorchScript file that plain torch loads without featx or timm,
whose scores equal ``featx predict``'s; the Pipeline folded into one linear layer (or a
k-NN vote) to float rounding; the README's example run as written.

The backbone is ``test_resnet`` with random weights (labelled: not pretrained numbers).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import featx
from featx.core.hashing import file_sha256
from featx.core.heads import LinearHead, NeighborsHead
from featx.extraction.dataconfig import DataConfig, plan_geometry
from featx.extraction.preprocess import DevicePreprocess
from featx.extraction.scripted import ScriptedNeighborsHead, ScriptedPreprocess
from featx.fitting.classifiers import CLASSIFIERS, build_pipeline
from featx.fitting.folding import class_scores, fold_pipeline
from tests.deploying import CLASSIFIERS as FITTED
from tests.deploying import Fitted, cli, fit_comparison

ROOT = Path(__file__).resolve().parents[1]

# torch 2.14 marks TorchScript deprecated; it still is what loads without featx and timm
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")

#: run first in the clean process: featx and timm cannot be imported there
BLOCKER = """
import sys
sys.modules["featx"] = None
sys.modules["timm"] = None
for name in ("featx", "timm"):
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise SystemExit(name + " is importable: the blocker failed")
"""


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Fitted:
    return fit_comparison(tmp_path_factory.mktemp("export"), scales={"knn": "l2"})


def _clean_python(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` after the blocker, in ``cwd``, with no path to this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    code = BLOCKER + "\n" + script + "\nassert 'featx' not in [m.split('.')[0] for m, v in sys.modules.items() if v is not None]\n"
    return subprocess.run([sys.executable, "-I", "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _small_test_images(fitted: Fitted) -> tuple[list[str], np.ndarray]:
    """The 32 px test images (not shrunk on the host), as files and one uint8 batch."""
    from PIL import Image

    files = sorted(str(p) for p in (fitted.root / "test").glob("*/test_*.png"))
    return files, np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])


def test_export_loads_without_featx_and_timm_scores_as_predict_and_the_readme_example_runs(fitted: Fitted, tmp_path: Path) -> None:
    files, batch = _small_test_images(fitted)
    np.save(tmp_path / "images.npy", batch)
    expected = {}
    for clf in FITTED:
        result = cli(
            "export",
            "--reports-dir",
            str(fitted.reports_dir),
            "--model",
            str(fitted.record_path(clf)),
            "--out",
            str(tmp_path / f"{clf}.pt"),
        )
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[-1] == str(tmp_path / f"{clf}.pt")
        expected[clf] = featx.load_predictor(fitted.record_path(clf), device="cpu").predict(files)
    # the README's example, as written, on the logistic regression's export
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(# label an image with an exported featx model.*?)```", readme, flags=re.S)
    assert len(blocks) == 1 and len(blocks[0].strip().splitlines()) <= 20
    for suffix in (".pt", ".json"):
        (tmp_path / f"model{suffix}").write_bytes((tmp_path / f"logreg{suffix}").read_bytes())
    (tmp_path / "dog.jpg").write_bytes(Path(files[-1]).read_bytes())  # a PNG: PIL reads it by its content
    script = textwrap.dedent(
        """
        import json, numpy as np, torch
        images = torch.from_numpy(np.load("images.npy"))
        for clf in ("logreg", "linearsvc", "knn"):
            model = torch.jit.load(clf + ".pt")
            labels, scores = model.classify(images)
            np.save(clf + "_scores.npy", model(images).numpy())
            np.save(clf + "_labels.npy", labels.numpy())
            assert list(model.class_names) == json.load(open(clf + ".json"))["class_names"]
            assert torch.equal(model(images[0]), model(images[:1]))  # one image without the batch axis
        print("README")
        """
    )
    done = _clean_python(script + blocks[0], tmp_path)
    assert done.returncode == 0, done.stderr
    for clf, predictions in expected.items():
        scores = np.load(tmp_path / f"{clf}_scores.npy")
        finite = np.isfinite(predictions.scores)
        np.testing.assert_allclose(scores[finite], predictions.scores[finite], rtol=1e-4, atol=1e-5, err_msg=clf)
        np.testing.assert_array_equal(np.load(tmp_path / f"{clf}_labels.npy"), predictions.indices, err_msg=clf)
        sidecar = json.loads((tmp_path / f"{clf}.json").read_text())
        record = fitted.records[clf]
        assert sidecar["run"]["run_key"] == record.run_key and sidecar["class_names"] == record.class_names
        assert sidecar["input_size"] == [3, 32, 32] and sidecar["head"] == ("knn" if clf == "knn" else "linear")
        assert sidecar["score"] == ("decision" if clf == "linearsvc" else "probability")
        assert sidecar["model_sha256"] == file_sha256(tmp_path / f"{clf}.pt")
    printed = [line.split("\t") for line in done.stdout.split("README\n", 1)[1].strip().splitlines()]
    top = expected["logreg"].rows(3)[-1].top
    assert [row[0] for row in printed] == [label for label, _ in top]
    np.testing.assert_allclose([float(row[1]) for row in printed], [score for _, score in top], atol=1e-4)


def test_a_linear_run_is_one_linear_layer_and_knn_keeps_its_training_rows(fitted: Fitted, tmp_path: Path) -> None:
    linear = featx.export_model(fitted.record_path("linearsvc"), tmp_path / "svc.pt", reports_dir=fitted.reports_dir)
    knn = featx.export_model(fitted.record_path("knn"), tmp_path / "knn.pt", reports_dir=fitted.reports_dir)
    svc_module, knn_module = torch.jit.load(str(linear.model)), torch.jit.load(str(knn.model))
    dim = fitted.records["linearsvc"].features.feature_dim
    assert tuple(svc_module.head.weight.shape) == (3, dim) and linear.head == "linear"
    assert knn.head == "knn" and tuple(knn_module.head.points.shape) == (fitted.records["knn"].features.n_train, dim)


def test_export_never_writes_over_a_file_featx_did_not_write(fitted: Fitted, tmp_path: Path) -> None:
    args = ["export", "--reports-dir", str(fitted.reports_dir), "--model", str(fitted.record_path("logreg"))]
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"my own weights")
    refused = cli(*args, "--out", str(mine))
    assert refused.exit_code == 2 and "refusing" in refused.stderr and mine.read_bytes() == b"my own weights"
    assert not (tmp_path / "mine.json").exists()
    (tmp_path / "other.json").write_text('{"mine": true}')
    refused = cli(*args, "--out", str(tmp_path / "other.pt"))
    assert refused.exit_code == 2 and "other.json" in refused.stderr and not (tmp_path / "other.pt").exists()
    ours = tmp_path / "ours.pt"
    assert cli(*args, "--out", str(ours)).exit_code == 0
    assert cli(*args, "--out", str(ours)).exit_code == 0  # featx's own export: replaced
    wrong = cli(*args, "--out", str(tmp_path / "model.json"))
    assert wrong.exit_code == 2 and "--out" in wrong.stderr


# --------------------------------------------------------------------------- pure parts


def _head_scores(head: LinearHead, X: np.ndarray) -> np.ndarray:
    x = X.astype(np.float64)
    if head.normalize:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    z = x @ head.weight.T + head.bias
    if head.score == "probability":
        z = np.exp(z - z.max(axis=1, keepdims=True))
        z /= z.sum(axis=1, keepdims=True)
    return z


@pytest.mark.parametrize(
    ("clf", "scale", "pca", "binary"),
    list(itertools.product(["logreg", "linearsvc"], ["standard", "l2", "none"], [None, 4], [False, True])),
)
def test_folded_linear_head_scores_as_the_pipeline(clf: str, scale: str, pca: int | None, binary: bool) -> None:
    rng = np.random.default_rng(0)
    X, X_new = rng.normal(size=(120, 10)).astype(np.float32), rng.normal(size=(25, 10)).astype(np.float32)
    y = rng.integers(0, 4, size=120)
    y[y == 2] = 3  # class 2 never seen: probability 0, decision value -inf
    if binary:
        y = np.where(y > 1, 3, 0)
    model = build_pipeline(CLASSIFIERS[clf], scale=scale, pca=pca, seed=0, params={"C": 0.5}).fit(X, y)
    head = fold_pipeline(model, 4)
    assert isinstance(head, LinearHead)
    expected, got = class_scores(model, X_new, 4), _head_scores(head, X_new)
    assert (np.isfinite(expected) == np.isfinite(got)).all()
    np.testing.assert_allclose(got[np.isfinite(got)], expected[np.isfinite(expected)], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(got.argmax(axis=1), model.predict(X_new))


@pytest.mark.parametrize(
    ("metric", "weights", "scale", "pca"),
    [
        ("euclidean", "uniform", "standard", None),
        ("cosine", "distance", "l2", 4),
        ("manhattan", "distance", "none", None),
        ("euclidean", "distance", "standard", 3),
    ],
)
def test_scripted_knn_votes_as_scikit_learn(metric: str, weights: str, scale: str, pca: int | None) -> None:
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(90, 6)).astype(np.float32), rng.integers(0, 3, size=90)
    X_new = np.concatenate([rng.normal(size=(20, 6)), X[:3]]).astype(np.float32)  # three at distance zero
    model = build_pipeline(
        CLASSIFIERS["knn"], scale=scale, pca=pca, seed=0, params={"n_neighbors": 5, "weights": weights, "metric": metric}
    )
    model.fit(X, y)
    head = fold_pipeline(model, 3)
    assert isinstance(head, NeighborsHead)
    with torch.inference_mode():
        got = torch.jit.script(ScriptedNeighborsHead(head))(torch.from_numpy(X_new)).numpy()
    np.testing.assert_allclose(got, class_scores(model, X_new, 3), atol=1e-5)


def test_scripted_preprocessing_is_the_device_preprocessing_for_any_image_size() -> None:
    for mode, crop, interpolation in itertools.product(
        ["center", "squash", "border"], [0.875, 1.0, 1.25], ["bilinear", "bicubic", "nearest"]
    ):
        config = DataConfig(
            input_size=(3, 24, 28), interpolation=interpolation, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), crop_pct=crop, crop_mode=mode
        )
        scripted, reference = torch.jit.script(ScriptedPreprocess(config)), DevicePreprocess(config, "cpu")
        for height, width in ((5, 9), (24, 28), (31, 17), (64, 40)):
            g = plan_geometry(height, width, config)
            assert scripted.geometry(height, width) == (*g.resize, g.top, g.left)
            for channels in (1, 3):
                pixels = torch.randint(0, 256, (2, height, width, channels), dtype=torch.uint8)
                torch.testing.assert_close(scripted(pixels), reference(pixels), rtol=0, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_predict_and_the_export_give_the_cpu_labels(fitted: Fitted, tmp_path: Path) -> None:
    """GPU tier: the record's fp32 features re-made on CUDA, and the export moved to CUDA
    (its float resize path), agree with the CPU."""
    files, batch = _small_test_images(fitted)
    cpu = featx.load_predictor(fitted.record_path("logreg"), device="cpu").predict(files)
    cuda = featx.load_predictor(fitted.record_path("logreg"), device="cuda").predict(files)
    np.testing.assert_allclose(cuda.scores, cpu.scores, atol=1e-3)
    exported = featx.export_model(fitted.record_path("logreg"), tmp_path / "model.pt", reports_dir=fitted.reports_dir)
    module = torch.jit.load(str(exported.model), map_location="cuda")
    large = torch.randint(0, 256, (2, 90, 70, 3), dtype=torch.uint8)  # resized on the device
    with torch.inference_mode():
        np.testing.assert_allclose(module(torch.from_numpy(batch).cuda()).cpu().numpy(), cpu.scores, atol=1e-3)
        np.testing.assert_allclose(module(large.cuda()).cpu().numpy(), torch.jit.load(str(exported.model))(large).numpy(), atol=2e-2)
