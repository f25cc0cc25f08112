"""featx extract end to end on CPU with tiny timm models: the file it writes, the cache
key, cache hits that build no model, resuming after Ctrl-C and SIGKILL, mixed image
sizes, and one-line errors that leave no cache file behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import featx
from featx.cache import partial_path, verify_file
from featx.cli import main
from featx.core.errors import ConfigError, ImageReadError, UnknownNameError
from featx.extraction import engine as extraction
from featx.extraction.config import ExtractConfig
from featx.extraction.engine import plan_extraction
from featx.extraction.models import create_backbone
from featx.extraction.preprocess import DevicePreprocess
from tests.fakes import cosines, fake_hub_cache, write_image, write_image_folder

ROOT = Path(__file__).resolve().parents[1]
TINY_DATA = "digits"
TINY = {"weights": "random", "image_size": 32, "limit": 40, "batch_size": 16}  # ExtractConfig fields and extract's options
ROOT_ATTRS = (
    "featx_version",
    "format_version",
    "key",
    "dataset",
    "class_names",
    "backbone",
    "timm_version",
    "torch_version",
    "weights",
    "input_size",
    "interpolation",
    "mean",
    "std",
    "precision",
    "created",
    "feature_dim",
    "crop_pct",
)
SPLIT_ATTRS = ("complete", "n_done", "seconds", "images_per_second", "device")


def cache_files() -> list[Path]:
    root = Path(os.environ["FEATX_CACHE_DIR"])
    return sorted(root.rglob("*.h5")) if root.exists() else []


@pytest.fixture
def count_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every model build that goes through featx.extraction.models.load_backbone."""
    import featx.extraction.models

    calls: list[str] = []
    original = featx.extraction.models.load_backbone

    def counting(backbone, weights, **kwargs):
        calls.append(backbone.name)
        return original(backbone, weights, **kwargs)

    monkeypatch.setattr(featx.extraction.models, "load_backbone", counting)
    return calls


# --------------------------------------------------------------------------- the file


def test_extract_writes_the_documented_layout_with_the_model_s_features() -> None:
    path = featx.extract(TINY_DATA, backbone="test_resnet", **TINY)
    assert path.parent == Path(os.environ["FEATX_CACHE_DIR"]) / "digits" and path.name.startswith("test_resnet__")
    with h5py.File(path, "r") as handle:
        assert all(name in handle.attrs for name in ROOT_ATTRS)
        assert handle.attrs["weights"] == "random:seed=0" and handle.attrs["precision"] == "fp32"
        assert list(handle.attrs["input_size"]) == [3, 32, 32]
        for split in ("train", "test"):
            assert all(name in handle[split].attrs for name in SPLIT_ATTRS)
            assert handle[split]["features"].dtype == np.float32 and handle[split]["labels"].dtype == np.int64
            assert handle[split].attrs["images_per_second"] > 0 and handle[split].attrs["device"].startswith("cpu")
        dim = int(handle.attrs["feature_dim"])
    assert verify_file(path) == []
    x, y, classes = featx.load_features(path, "test")
    assert x.shape == (40, dim) and classes == [str(i) for i in range(10)]
    assert np.bincount(y).tolist() == [4] * 10  # --limit keeps classes balanced

    # the same numbers as running the model by hand on the same images
    plan = plan_extraction(TINY_DATA, backbone="test_resnet", **TINY)
    model = create_backbone(plan.backbone, plan.weights, image_size=(32, 32))
    with torch.inference_mode():
        expected = model(DevicePreprocess(plan.data_config, "cpu")(torch.from_numpy(plan.dataset.splits["test"].pixels))).numpy()
    np.testing.assert_allclose(x, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(y, plan.dataset.splits["test"].labels)


@pytest.mark.parametrize("source", ["safetensors file", "hub cache"])
def test_extract_with_saved_weights_gives_that_model_s_features(tmp_path: Path, source: str) -> None:
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(42)
    original = timm.create_model("test_resnet", pretrained=False).eval()
    if source == "safetensors file":
        weights = tmp_path / "mine.safetensors"
        save_file(original.state_dict(), str(weights))
    else:
        fake_hub_cache(Path(os.environ["HF_HOME"]) / "hub", "timm/test_resnet.r160_in1k", original.state_dict())
        weights = "pretrained"
    options = {**TINY, "weights": str(weights)}
    path = featx.extract(TINY_DATA, backbone="test_resnet", **options)
    x, _, _ = featx.load_features(path, "test", dataset="digits")
    original.reset_classifier(0)
    plan = plan_extraction(TINY_DATA, backbone="test_resnet", **options)
    with torch.inference_mode():
        expected = original(DevicePreprocess(plan.data_config, "cpu")(torch.from_numpy(plan.dataset.splits["test"].pixels))).numpy()
    np.testing.assert_allclose(x, expected, rtol=1e-4, atol=1e-5)
    with h5py.File(path, "r") as handle:
        assert handle.attrs["weights"] == plan.weights.identity
        assert handle.attrs["weights"].startswith("file:sha256:" if source == "safetensors file" else "pretrained:timm/test_resnet")


def test_second_run_is_a_cache_hit_that_builds_no_model(count_builds: list[str]) -> None:
    first = featx.extract(TINY_DATA, backbone="test_resnet", **TINY)
    stamp = first.stat().st_mtime_ns
    assert count_builds == ["test_resnet"]
    assert featx.extract(TINY_DATA, backbone="test_resnet", **TINY) == first
    assert count_builds == ["test_resnet"] and first.stat().st_mtime_ns == stamp
    forced = featx.extract(TINY_DATA, backbone="test_resnet", **TINY, force=True)
    assert forced == first and count_builds == ["test_resnet", "test_resnet"]
    assert first.stat().st_mtime_ns != stamp and cache_files() == [first]


def test_a_damaged_entry_is_extracted_again() -> None:
    path = featx.extract(TINY_DATA, backbone="test_resnet", **TINY)
    path.write_bytes(path.read_bytes()[:2000])  # truncated
    assert featx.extract(TINY_DATA, backbone="test_resnet", **TINY) == path
    assert verify_file(path) == []


def test_the_key_covers_everything_that_changes_the_numbers(tmp_path: Path) -> None:
    def key(**changes: object) -> str:
        return plan_extraction(TINY_DATA, backbone="test_resnet", **{**TINY, **changes}).key

    base = key()
    assert key() == base
    variants = {
        "precision": key(precision="bf16"),
        "image size": key(image_size=48),
        "crop": key(crop_pct=1.0),
        "interpolation": key(interpolation="bicubic"),
        "mean": key(mean=(0.4, 0.4, 0.4)),
        "limit": key(limit=30),
        "seed": key(seed=1),
        "backbone": plan_extraction(TINY_DATA, backbone="test_efficientnet", **TINY).key,
        "split": key(test_fraction=0.3),
    }
    assert len({base, *variants.values()}) == len(variants) + 1, variants
    checkpoint = tmp_path / "w.pth"
    torch.save({"x": torch.zeros(1)}, checkpoint)
    from_file = key(weights=str(checkpoint))
    torch.save({"x": torch.ones(1)}, checkpoint)
    assert key(weights=str(checkpoint)) not in {from_file, base}
    # batch size, workers and device do not change the numbers
    assert key(batch_size=7, num_workers=0, device="cpu") == base


def test_same_key_same_file_whatever_the_tag_is_called() -> None:
    config = {**TINY, "weights": "random"}
    assert (
        plan_extraction(TINY_DATA, backbone="test_resnet", **config).path
        == plan_extraction(TINY_DATA, backbone="test_resnet.r160_in1k", **config).path
    )


# --------------------------------------------------------------------------- resume


def test_ctrl_c_keeps_the_written_chunks_and_the_next_run_resumes(monkeypatch: pytest.MonkeyPatch) -> None:
    reference = featx.extract(TINY_DATA, backbone="test_resnet", **TINY, cache_dir=Path(os.environ["FEATX_CACHE_DIR"]) / "reference")
    real = extraction.extract_features
    batches_seen: list[int] = []

    def interrupted(model, batches, **kwargs):
        for index, block in enumerate(real(model, batches, **kwargs)):
            if index == 2:
                raise KeyboardInterrupt
            yield block

    monkeypatch.setattr(extraction, "extract_features", interrupted)
    with pytest.raises(KeyboardInterrupt):
        featx.extract(TINY_DATA, backbone="test_resnet", **TINY)
    final = plan_extraction(TINY_DATA, backbone="test_resnet", **TINY).path
    assert not final.exists()
    with h5py.File(partial_path(final), "r") as handle:
        assert handle["train"].attrs["n_done"] == 32 and not handle["train"].attrs["complete"]

    def counting(model, batches, **kwargs):
        for block in real(model, batches, **kwargs):
            batches_seen.append(len(block))
            yield block

    monkeypatch.setattr(extraction, "extract_features", counting)
    assert featx.extract(TINY_DATA, backbone="test_resnet", **TINY) == final
    # one probe image for the feature dimension, the last 8 train rows (32 were kept), then test
    assert batches_seen == [1, 8, 16, 16, 8]
    for split in ("train", "test"):
        np.testing.assert_array_equal(featx.load_features(final, split)[0], featx.load_features(reference, split)[0])


KILLED_EXTRACT = textwrap.dedent(
    """
    import os, signal, sys
    import featx, featx.cache, featx.core.console
    featx.core.console.setup_logging(0)
    kill_after = int(sys.argv[1])
    original = featx.cache.CacheWriter.write_rows
    calls = []
    def write_rows(self, *args, **kwargs):
        original(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
    featx.cache.CacheWriter.write_rows = write_rows
    print(featx.extract("digits", backbone="test_resnet", weights="random", image_size=32, limit=40, batch_size=16))
    """
)


@pytest.mark.slow
def test_sigkilled_extraction_resumes_from_the_last_chunk() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, "-c", KILLED_EXTRACT, "2"], env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    final = plan_extraction(TINY_DATA, backbone="test_resnet", **TINY).path
    assert not final.exists()
    with h5py.File(partial_path(final), "r") as handle:
        assert handle["train"].attrs["n_done"] == 32
    resumed = subprocess.run([sys.executable, "-c", KILLED_EXTRACT, "0"], env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and Path(resumed.stdout.strip()) == final
    assert verify_file(final) == []
    fresh = featx.extract(TINY_DATA, backbone="test_resnet", **TINY, cache_dir=Path(os.environ["FEATX_CACHE_DIR"]) / "fresh")
    np.testing.assert_array_equal(featx.load_features(final, "train")[0], featx.load_features(fresh, "train")[0])


# --------------------------------------------------------------------------- image files


def mixed_folder(root: Path) -> Path:
    """Small and large images, RGB, grey, palette and RGBA, JPEG and PNG, one batch."""
    specs = [
        ((32, 32), "RGB", ".jpg"),
        ((37, 20), "L", ".png"),
        ((400, 300), "RGB", ".jpg"),
        ((32, 32), "P", ".png"),
        ((300, 500), "RGBA", ".png"),
        ((24, 24), "RGB", ".png"),
    ]
    for split in ("train", "test"):
        for index, (size, mode, ext) in enumerate(specs):
            write_image(root / split / ("a" if index % 2 else "b") / f"{index}{ext}", size=size, mode=mode, seed=index)
    return root


@pytest.mark.parametrize("workers", [0, 1])
def test_images_of_any_size_and_mode_match_the_reference_transform(tmp_path: Path, workers: int) -> None:
    from PIL import Image
    from timm.data import create_transform

    root = mixed_folder(tmp_path / "mixed")
    dataset = f"imagefolder:{root}"
    options = {"weights": "random", "image_size": 64, "batch_size": 6, "num_workers": workers}
    path = featx.extract(dataset, backbone="test_resnet", **options)
    x, y, classes = featx.load_features(path, "test", dataset=None)
    assert classes == ["a", "b"] and x.shape[0] == 6
    plan = plan_extraction(dataset, backbone="test_resnet", **options)
    model = create_backbone(plan.backbone, plan.weights, image_size=(64, 64))
    transform = create_transform(**plan.data_config.timm_kwargs())
    with torch.inference_mode():
        images = torch.stack([transform(Image.open(f).convert("RGB")) for f in plan.dataset.splits["test"].files])
        expected = model(images).numpy()
    assert cosines(x, expected).min() > 0.9999, cosines(x, expected)
    np.testing.assert_array_equal(y, plan.dataset.splits["test"].labels)


@pytest.mark.parametrize("workers", [0, 1])
def test_an_unreadable_image_is_named_and_leaves_no_cache_file(tmp_path: Path, workers: int) -> None:
    root = write_image_folder(tmp_path / "pets", per_class={"train": 5, "test": 2})
    broken = root / "train" / "dog" / "train_002.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ImageReadError, match="train_002.png"):
        featx.extract(f"imagefolder:{root}", backbone="test_resnet", weights="random", image_size=32, batch_size=4, num_workers=workers)
    assert cache_files() == []


# --------------------------------------------------------------------------- API and CLI


def test_api_accepts_a_config_and_rejects_unknown_options() -> None:
    config = ExtractConfig(backbone="test_resnet", weights="random", image_size=32, limit=40)
    assert featx.extract(TINY_DATA, config, batch_size=16) == featx.extract(TINY_DATA, backbone="test_resnet", **TINY)
    with pytest.raises(UnknownNameError, match="did you mean image_size"):
        featx.extract(TINY_DATA, backbone="test_resnet", imagesize=32)
    assert ExtractConfig(backbone="test_resnet", mean="0.5,0.4,0.3", std=0.25).std == (0.25, 0.25, 0.25)
    assert ExtractConfig.from_mapping({"backbone": "test_resnet", "mean": [0.1, 0.2, 0.3]}).mean == (0.1, 0.2, 0.3)
    with pytest.raises(ConfigError, match="batch_size: must be at least 1"):
        featx.extract(TINY_DATA, config, batch_size=0)
    with pytest.raises(UnknownNameError, match="batch_size: unknown key"):  # how it runs is not what it extracts
        ExtractConfig(backbone="test_resnet", batch_size=16)
    with pytest.raises(UnknownNameError, match="unknown precision 'fp64'"):
        ExtractConfig(backbone="test_resnet", precision="fp64")


def test_importing_featx_does_not_import_torch() -> None:
    code = "import sys, featx; featx.extract; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_cli_extract_prints_the_path_then_hits_the_cache() -> None:
    runner = CliRunner()
    args = ["extract", "--backbone", "test_resnet", "--dataset", "digits", "--weights", "random", "--image-size", "32", "--limit", "20"]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    path = Path(first.stdout.strip())
    assert path.is_file() and path.parent.name == "digits"
    second = runner.invoke(main, args)
    assert second.exit_code == 0 and second.stdout.strip() == str(path) and "cache hit" in second.stderr


def test_cli_help_names_the_classic_backbones() -> None:
    result = CliRunner().invoke(main, ["extract", "--help"])
    assert result.exit_code == 0
    for name in ("vgg16", "vgg19", "inception_v3", "resnet50", "imagefolder:PATH", "--weights", "--precision"):
        assert name in result.output


def bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    corrupt = write_image_folder(tmp_path / "corrupt", per_class={"train": 2, "test": 1})
    (corrupt / "test" / "cat" / "test_000.png").write_bytes(b"garbage")
    malformed = tmp_path / "malformed"
    (malformed / "cat").mkdir(parents=True)
    (malformed / "notes.txt").write_text("no images here")
    return {
        "unknown backbone": (["--backbone", "resnet-50", "--dataset", "digits"], "did you mean resnet50"),
        "missing data dir": (
            [
                "--backbone",
                "test_resnet",
                "--weights",
                "random",
                "--dataset",
                "cifar10",
                "--data-dir",
                str(tmp_path / "none"),
                "--no-download",
            ],
            "cifar-10-python.tar.gz",
        ),
        "malformed data dir": (
            ["--backbone", "test_resnet", "--weights", "random", "--dataset", f"imagefolder:{malformed}"],
            "has no class folders",
        ),
        "unreadable image": (
            ["--backbone", "test_resnet", "--weights", "random", "--image-size", "32", "--dataset", f"imagefolder:{corrupt}"],
            "test_000.png",
        ),
        "missing weights file": (
            ["--backbone", "test_resnet", "--dataset", "digits", "--weights", str(tmp_path / "w.safetensors")],
            "or random (random initialisation",
        ),
        "no pretrained weights offline": (
            ["--backbone", "test_resnet", "--dataset", "digits"],
            "a path to a local .safetensors or .pth checkpoint",
        ),
        "cuda without CUDA": (["--backbone", "test_resnet", "--dataset", "digits", "--device", "cuda"], "CUDA is not available"),
        "bad mean": (["--backbone", "test_resnet", "--dataset", "digits", "--mean", "1,2"], "three numbers"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "unknown backbone",
        "missing data dir",
        "malformed data dir",
        "unreadable image",
        "missing weights file",
        "no pretrained weights offline",
        "cuda without CUDA",
        "bad mean",
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path: Path, case: str) -> None:
    if case == "cuda without CUDA" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    args, expected = bad_inputs(tmp_path)[case]
    result = CliRunner().invoke(main, ["extract", *args])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("featx: error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert cache_files() == []


def test_cli_debug_shows_the_traceback() -> None:
    result = CliRunner().invoke(main, ["--debug", "extract", "--backbone", "resnet-50", "--dataset", "digits"])
    assert result.exit_code != 0 and isinstance(result.exception, UnknownNameError)
