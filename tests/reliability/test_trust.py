"""Nothing silently wrong: every attribute a reader uses is checked when a cache file is
opened (a wrong one is a featx error naming the attribute and the file), run records and
PCA plots are keyed by what the features are (their checksums), not by the ``key`` a file
claims, a key given twice in a pipeline file is an error naming both lines, and a checkpoint
file is loaded strictly (a known wrapping unwrapped, and the cache file says so)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import featx
from featx.cache import load_features, open_features, read_info
from featx.cache.layout import split_checksums
from featx.cli import main
from featx.core.errors import CacheError, FeatxError
from tests.reliability.support import TINY, TINY_ARGS, TINY_DATA, assert_one_line_error

KEY = "0123456789abcdef"
FIT = ["--clf", "logreg", "--C-grid", "1", "--cv", "2", "--n-jobs", "1"]


def set_attr(name: str, value: object, group: str = "/") -> Callable[[h5py.File], None]:
    def change(handle: h5py.File) -> None:
        handle[group].attrs[name] = value

    return change


def replace_dataset(name: str, data: np.ndarray) -> Callable[[h5py.File], None]:
    def change(handle: h5py.File) -> None:
        del handle[name]
        handle[name] = data

    return change


#: case -> (the change, the attribute or dataset the error must name)
BAD_ATTRIBUTES: dict[str, tuple[Callable[[h5py.File], None], str]] = {
    "class_names not JSON": (set_attr("class_names", "cat,dog,airplane"), "attribute class_names"),
    "format_version 'one'": (set_attr("format_version", "one"), "attribute format_version"),
    "format_version a fraction": (set_attr("format_version", 1.5), "attribute format_version"),
    "class_names a JSON number": (set_attr("class_names", "[1, 2, 3]"), "attribute class_names"),
    "class_names twice the same": (set_attr("class_names", '["cat", "cat", "dog"]'), "attribute class_names"),
    "fewer class_names than labels": (set_attr("class_names", '["cat", "dog"]'), "attribute class_names"),
    "n_done text": (set_attr("n_done", "abc", "train"), "attribute train/n_done"),
    "n_done beyond the rows": (set_attr("n_done", 10_000, "train"), "attribute train/n_done"),
    "complete text": (set_attr("complete", "yes", "test"), "attribute test/complete"),
    "seconds negative": (set_attr("seconds", -1.0, "train"), "attribute train/seconds"),
    "checksum not hexadecimal": (set_attr("features_sha256", "abc", "train"), "attribute train/features_sha256"),
    "feature_dim disagrees": (set_attr("feature_dim", 999), "attribute feature_dim"),
    "mean text": (set_attr("mean", "abc"), "attribute mean"),
    "features of one dimension": (replace_dataset("train/features", np.zeros(64, dtype=np.float32)), "train/features"),
    "features of three dimensions": (replace_dataset("train/features", np.zeros((64, 5, 8), dtype=np.float32)), "train/features"),
    "labels of floats": (replace_dataset("train/labels", np.zeros(64, dtype=np.float64)), "train/labels"),
}


@pytest.mark.parametrize("name", list(BAD_ATTRIBUTES))
def test_an_attribute_of_the_wrong_type_or_shape_is_a_featx_error_naming_it_and_the_file(feature_file, name: str) -> None:
    change, named = BAD_ATTRIBUTES[name]
    path = feature_file(key=KEY, n_train=64, n_test=32, dim=40)
    with h5py.File(path, "r+") as handle:
        change(handle)
    with pytest.raises(FeatxError) as raised:  # the Python API: a featx error, never ValueError or TypeError
        for split in ("train", "test"):
            load_features(path, split)
    assert isinstance(raised.value, CacheError) and named in str(raised.value) and str(path) in str(raised.value)
    runner = CliRunner()
    assert_one_line_error(runner.invoke(main, ["fit", "--features", str(path), *FIT]), named, path.name)
    listed = runner.invoke(main, ["cache", "ls", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout)["state"].startswith("damaged"), listed.output
    assert runner.invoke(main, ["cache", "rm", KEY]).exit_code == 0 and not path.exists()


def test_class_names_written_as_an_hdf5_string_array_by_another_tool_are_read(feature_file) -> None:
    path = feature_file(key=KEY, n_train=30, n_test=15, dim=4)
    with h5py.File(path, "r+") as handle:
        handle.attrs["class_names"] = np.array([b"cat", b"dog", b"owl"])
    assert read_info(path).class_names == ["cat", "dog", "owl"]
    assert load_features(path, "train")[2] == ["cat", "dog", "owl"]


# --------------------------------------------------------------------------- keyed by what the features are


def edited_copy(genuine: Path, copy: Path) -> Path:
    """A copy of ``genuine`` with other features under the same ``key`` attribute, its
    checksums recomputed (a careful edit: every read of it passes)."""
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(genuine, copy)
    with h5py.File(copy, "r+") as handle:
        rng = np.random.default_rng(7)
        for split in ("train", "test"):
            group = handle[split]
            group["features"][...] = rng.normal(size=group["features"].shape).astype(np.float32)
            group.attrs["features_sha256"], group.attrs["labels_sha256"] = split_checksums(group)
    assert open_features(copy).key == open_features(genuine).key
    return copy


def test_an_edited_copy_under_the_same_key_never_passes_for_the_genuine_entry(feature_file, tmp_path: Path) -> None:
    genuine = feature_file(key=KEY, n_train=60, n_test=30, dim=6, separation=4.0)
    copy = edited_copy(genuine, tmp_path / "edited" / genuine.name)
    config = {"clf": "logreg", "grid": {"C": [1.0]}, "cv": 2, "n_jobs": 1}
    poisoned = featx.fit(copy, **config)
    fresh = featx.fit(genuine, save=False, **config)
    assert poisoned.test_accuracy != fresh.test_accuracy and poisoned.run_key != fresh.run_key
    again = featx.fit(genuine, skip_existing=True, **config)  # must not return the copy's record
    assert again.test_accuracy == fresh.test_accuracy and again.features.content == fresh.features.content
    assert featx.fit(copy, skip_existing=True, **config).test_accuracy == poisoned.test_accuracy
    page = featx.report().html.read_text()  # two rows, not one cell holding the newest of both
    assert page.count('data-backbone="synthetic') == 2


def test_pca_plots_of_an_edited_copy_are_not_taken_for_the_genuine_ones(feature_file, tmp_path: Path) -> None:
    genuine = feature_file(key=KEY, n_train=60, n_test=30, dim=6)
    copy = edited_copy(genuine, tmp_path / "edited" / genuine.name)
    drawn = featx.pca(copy)
    again = featx.pca(genuine, skip_existing=True)
    assert not again.reused and drawn.summary_json == again.summary_json
    assert json.loads(again.summary_json.read_text())["features"]["path"] == str(genuine)
    assert featx.pca(genuine, skip_existing=True).reused


# --------------------------------------------------------------------------- duplicate keys in a pipeline file

PIPELINE = "dataset: digits\nbackbones: [test_resnet]\nclassifiers: [logreg]\n"


@pytest.mark.parametrize(
    ("text", "key", "lines"),
    [
        pytest.param(PIPELINE + "classifiers: [knn]\n", "'classifiers'", "lines 3 and 4", id="classifiers twice"),
        pytest.param(
            "dataset: digits\nbackbones: [test_resnet]\nclassifiers:\n  - name: logreg\n    grid:\n      C: [1]\n      C: [2]\n",
            "'C'",
            "lines 6 and 7",
            id="a grid parameter twice",
        ),
        pytest.param(
            "dataset: {name: digits, limit: 5, limit: 50}\nbackbones: [test_resnet]\nclassifiers: [logreg]\n",
            "'limit'",
            "lines 1 and 1",
            id="twice in a flow mapping",
        ),
        pytest.param("fit: {cv: 2}\n" + PIPELINE + "fit:\n  cv: 3\n", "'fit'", "lines 1 and 5", id="a section twice"),
    ],
)
def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path: Path, text: str, key: str, lines: str) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    assert_one_line_error(CliRunner().invoke(main, ["run", str(path), "--dry-run"]), "duplicate key", key, lines, "twice.yaml")


def test_a_merge_key_may_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "merged.yaml"
    path.write_text("base: &base {cv: 2, seed: 1}\n" + PIPELINE.replace("dataset", "fit: {<<: *base, cv: 3}\ndataset", 1))
    from featx.core.yamlfile import load_yaml_file

    assert load_yaml_file(path)["fit"] == {"cv": 3, "seed": 1}


# --- checkpoint files: loaded strictly, a known wrapping unwrapped and said so ---------------


def state_dict_of_a_trained_model() -> dict[str, torch.Tensor]:
    import timm

    torch.manual_seed(7)
    return dict(timm.create_model("test_resnet", pretrained=False).state_dict())


def save_checkpoint(path: Path, content: object) -> Path:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(content, str(path))  # type: ignore[arg-type]
    else:
        torch.save(content, path)
    return path


def extract_with(weights: Path) -> Path:
    return featx.extract(TINY_DATA, backbone="test_resnet", **{**TINY, "weights": str(weights)})


def prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + name: tensor for name, tensor in state.items()}


#: case -> (file name, what the file holds, given the model's tensors; what the record must say)
WRAPPED: dict[str, tuple[str, Callable[[dict[str, torch.Tensor]], object], str]] = {
    "Lightning: 'model.' under 'state_dict'": (
        "lightning.ckpt",
        lambda state: {"epoch": 3, "global_step": 120, "state_dict": prefixed("model.", state)},
        "tensors read from its 'state_dict' entry; prefix 'model.' stripped",
    ),
    "DistributedDataParallel: 'module.'": ("ddp.pth", lambda state: prefixed("module.", state), "prefix 'module.' stripped"),
    "torch.compile: '_orig_mod.'": ("compiled.safetensors", lambda state: prefixed("_orig_mod.", state), "prefix '_orig_mod.' stripped"),
    "{'model': ...} beside an optimizer, DDP inside": (
        "trainer.pth",
        lambda state: {"model": prefixed("module.", state), "optimizer": {"lr": 0.1}, "epoch": 9},
        "tensors read from its 'model' entry; prefix 'module.' stripped",
    ),
}


@pytest.mark.parametrize("case", list(WRAPPED))
def test_a_wrapped_checkpoint_gives_the_model_s_own_features_and_the_record_says_how(tmp_path: Path, case: str) -> None:
    name, wrap, said = WRAPPED[case]
    state = state_dict_of_a_trained_model()
    plain = extract_with(save_checkpoint(tmp_path / "plain.safetensors", state))
    wrapped = extract_with(save_checkpoint(tmp_path / name, wrap(state)))
    assert wrapped != plain  # another file, another key
    for split in ("train", "test"):
        np.testing.assert_array_equal(load_features(wrapped, split)[0], load_features(plain, split)[0])
    with h5py.File(wrapped, "r") as handle, h5py.File(plain, "r") as original:
        assert handle.attrs["weights_loading"] == f"{said}; classifier head (1000 classes) dropped"
        assert original.attrs["weights_loading"] == "classifier head (1000 classes) dropped"


def test_a_checkpoint_without_a_head_or_with_another_number_of_classes_loads(tmp_path: Path) -> None:
    state = state_dict_of_a_trained_model()
    plain = extract_with(save_checkpoint(tmp_path / "plain.safetensors", state))
    headless = extract_with(save_checkpoint(tmp_path / "headless.pth", {k: v for k, v in state.items() if not k.startswith("fc.")}))
    fine_tuned = {**state, "fc.weight": torch.zeros(10, state["fc.weight"].shape[1]), "fc.bias": torch.zeros(10)}
    ten = extract_with(save_checkpoint(tmp_path / "ten.pth", fine_tuned))
    for path in (headless, ten):
        np.testing.assert_array_equal(load_features(path, "test")[0], load_features(plain, "test")[0])
    with h5py.File(headless, "r") as handle, h5py.File(ten, "r") as other:
        assert handle.attrs["weights_loading"] == ""
        assert other.attrs["weights_loading"] == "classifier head (10 classes) dropped"


#: case -> (what the file holds, given the model's tensors; texts the one error line must hold)
MISFITS: dict[str, tuple[Callable[[dict[str, torch.Tensor]], object], tuple[str, ...]]] = {
    "junk keys and some missing": (
        lambda state: {**dict(list(state.items())[5:]), "junk.a": torch.zeros(1), "junk.b": torch.zeros(2)},
        (
            "5 of the model's tensors not in the file (conv1.0.weight,",
            "and 1 more",
            "2 tensor(s) in the file the model does not have (junk.a, junk.b)",
        ),
    ),
    "a prefix featx does not know": (
        lambda state: prefixed("backbone.", state),
        (
            "of the model's tensors not in the file (conv1.0.weight,",
            "tensor(s) in the file the model does not have (backbone.conv1.0.weight,",
        ),
    ),
    "a prefix on some keys only": (
        lambda state: {**prefixed("model.", dict(list(state.items())[:3])), **dict(list(state.items())[3:])},
        ("3 of the model's tensors not in the file", "(model.conv1.0.weight,"),
    ),
    "a tensor of another shape": (
        lambda state: {**state, "conv1.0.weight": torch.zeros(3, 3, 3, 3)},
        ("1 of another shape (conv1.0.weight [3, 3, 3, 3] in the file, [16, 3, 3, 3] in the model)",),
    ),
    "no tensors by name": (lambda state: [1, 2, 3], ("holds list, not a model's tensors by name",)),
    "a dictionary of other things": (lambda state: {"epoch": 3, "lr": 0.1}, ("not a model's tensors by name",)),
}


@pytest.mark.parametrize("case", list(MISFITS))
def test_a_checkpoint_that_does_not_fit_is_one_line_naming_the_first_keys(tmp_path: Path, case: str) -> None:
    content, expected = MISFITS[case]
    path = save_checkpoint(tmp_path / "misfit.pth", content(state_dict_of_a_trained_model()))
    args = [*TINY_ARGS[:2], "--weights", str(path), *TINY_ARGS[4:]]
    result = CliRunner().invoke(main, ["extract", *args])
    line = assert_one_line_error(result, str(path), *expected)
    assert len(line) < 800, line
    assert not list((tmp_path / "features").rglob("*.h5"))  # nothing written, nothing partial
