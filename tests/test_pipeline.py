"""Pipeline files: the shipped ones parse offline, and every mistake names its key path."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest
import yaml

from featx.core.errors import ConfigError
from featx.extraction.backbones import resolve_backbone
from featx.extraction.weight_packages import packages_for
from featx.fitting.classifiers import Scale
from featx.fitting.projection import PcaConfig
from featx.runner.spec import load_pipeline, parse_pipeline

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "featx" / "runner" / "pipelines" / "demo.yaml"  # inside the package, so that a wheel has it
SHIPPED = sorted([*(ROOT / "pipelines").glob("*.yaml"), DEMO])

BASE = """
dataset: digits
extract: {image_size: 32, weights: random}
backbones: [test_resnet, {name: test_vit, image_size: 32}]
classifiers:
  - {name: logreg, grid: {C: [1e-3, 0.1]}}
  - {name: knn, grid: {n_neighbors: [1, 3], weights: [uniform]}}
"""


def parse(change: str = "") -> object:
    data = yaml.safe_load(BASE)
    data.update(yaml.safe_load(change) or {})
    return parse_pipeline(data)


def test_the_three_shipped_pipelines_exist() -> None:
    assert {p.name for p in SHIPPED} >= {"cifar10-classic.yaml", "cifar10-modern.yaml", "demo.yaml"}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_pipelines_parse_and_every_backbone_has_pretrained_weights_in_timm(path: Path) -> None:
    spec = load_pipeline(path)
    assert spec.name == path.stem and spec.description and spec.pca is not None
    assert {c.clf for c in spec.classifiers} == {"linearsvc", "logreg", "knn"}
    for request in spec.backbones:
        config = request.config
        backbone = resolve_backbone(config.backbone)  # offline: timm's registry, no model built
        assert request.dataset == spec.dataset
        if backbone.is_pixels or config.weights == "random":  # the demo's baselines: raw pixels, a random-weights twin
            assert path.stem in {"demo", "cifar10-transfer"}, f"{config.backbone} is a baseline in {path.name}"
            continue
        assert backbone.weights_source, f"{config.backbone} has no pretrained weights in timm"
        assert config.weights == "pretrained"
    for config in spec.classifiers:
        assert all(len(values) >= 1 for values in config.resolved_grid.values())


def test_the_classic_pipeline_is_the_seed_comparison_with_careful_grids() -> None:
    spec = load_pipeline(ROOT / "pipelines" / "cifar10-classic.yaml")
    assert spec.dataset == "cifar10"
    assert [resolve_backbone(r.config.backbone).architecture for r in spec.backbones] == ["vgg16", "vgg19", "inception_v3", "resnet50"]
    assert all(r.config.image_size is None for r in spec.backbones)  # each at its native input size
    grids = {c.clf: c.resolved_grid for c in spec.classifiers}
    for clf in ("linearsvc", "logreg"):
        c_values = grids[clf]["C"]
        assert len(c_values) >= 10 and round(math.log10(max(c_values) / min(c_values)), 9) >= 5  # several decades
    assert len(grids["knn"]["n_neighbors"]) >= 6 and set(grids["knn"]["weights"]) == {"uniform", "distance"}
    assert all(c.cv == 5 for c in spec.classifiers)


def test_the_modern_pipeline_has_a_self_supervised_or_clip_vit_and_a_convnext() -> None:
    names = [r.config.backbone for r in load_pipeline(ROOT / "pipelines" / "cifar10-modern.yaml").backbones]
    assert any("dinov2" in n or "clip" in n for n in names) and any(n.startswith("convnext") for n in names)


def test_the_demo_pipeline_needs_no_download_and_shows_pretrained_against_random_and_pixels() -> None:
    spec = load_pipeline(DEMO)
    assert spec.dataset == "shapes" and all((r.config.image_size or 224) <= 64 for r in spec.backbones)
    rows = [(r.config.backbone, r.config.weights) for r in spec.backbones]
    assert rows == [("tf_efficientnet_lite0", "pretrained"), ("tf_efficientnet_lite0", "random"), ("pixels", "pretrained")]
    assert packages_for("tf_efficientnet_lite0", "")  # its pretrained weights come from a weights package (featx[demo])


def test_a_pipeline_becomes_the_stages_own_configs() -> None:
    spec = parse("""
    dataset: {name: digits, limit: 50, seed: 3, test_fraction: 0.25}
    fit: {cv: 4, scale: l2}
    classifiers: [linearsvc, {name: knn, scale: none, pca: 8, grid: {n_neighbors: "1,5", metric: [cosine]}}]
    pca: {per_class: 30, seed: 2}
    """)
    first, second = (r.config for r in spec.backbones)
    assert (first.backbone, first.image_size, first.weights, first.limit, first.seed, first.test_fraction) == (
        "test_resnet",
        32,
        "random",
        50,
        3,
        0.25,
    )
    assert second.backbone == "test_vit" and all(r.dataset == "digits" for r in spec.backbones)
    svc, knn = spec.classifiers
    assert (svc.clf, svc.cv, svc.scale, svc.resolved_grid["C"]) == ("linearsvc", 4, Scale.L2, (0.0001, 0.001, 0.01, 0.1, 1.0))
    assert (knn.cv, knn.scale, knn.pca, knn.resolved_grid["n_neighbors"], knn.resolved_grid["metric"]) == (
        4,
        Scale.NONE,
        8,
        (1, 5),
        ("cosine",),
    )
    assert spec.pca == PcaConfig(per_class=30, seed=2) and spec.scales == (Scale.L2, Scale.NONE)
    assert spec.name == "pipeline"


def test_yaml_1_1_exponents_and_spec_strings_are_numbers() -> None:
    spec = parse("""
    classifiers: [{name: logreg, grid: {C: [1e-4, 1.0e-2, "1"]}}, {name: linearsvc, grid: {C: "logspace:-2:0:3"}}]
    extract: {crop_pct: 1e-0, weights: random}
    """)
    assert spec.classifiers[0].resolved_grid["C"] == (0.0001, 0.01, 1.0)
    assert spec.classifiers[1].resolved_grid["C"] == (0.01, 0.1, 1.0)
    assert spec.backbones[0].config.crop_pct == 1.0


def test_no_pca_and_a_description() -> None:
    spec = parse("{pca: false, description: my run, name: exp1}")
    assert spec.pca is None and spec.description == "my run" and spec.name == "exp1"


BAD = {
    "unknown top-level key": ("{backbone: [vgg16]}", "backbone: unknown key; did you mean backbones"),
    "missing classifiers": ("{classifiers: null}", "classifiers: expected a non-empty list"),
    "unknown backbone": (
        "{backbones: [test_resnet, {name: resnet5o}]}",
        "backbones[1].name: unknown backbone 'resnet5o'; did you mean resnet50",
    ),
    "unknown tag": ("{backbones: [resnet50.nope]}", "backbones[0].name: resnet50 has no pretrained tag 'nope'"),
    "wrong type": (
        "{backbones: [test_resnet, {name: test_vit, image_size: big}]}",
        "backbones[1].image_size: expected a whole number or null, got 'big'",
    ),
    "bad value": ("{backbones: [test_resnet, {name: test_vit, image_size: -3}]}", "backbones[1].image_size: must be at least 1, got -3"),
    "misspelt key": ("{backbones: [{name: test_vit, imagesize: 32}]}", "backbones[0].imagesize: unknown key; did you mean image_size"),
    "per-backbone data option": ("{backbones: [{name: test_vit, limit: 5}]}", "backbones[0].limit: unknown key; set limit under dataset:"),
    "bad interpolation": (
        "{backbones: [{name: test_vit, interpolation: cubic}]}",
        "backbones[0].interpolation: interpolation 'cubic' is not supported",
    ),
    "bad default": ("{extract: {interpolation: cubic}}", "extract.interpolation: interpolation 'cubic'"),
    "bad device": ("{extract: {device: gpu}}", "extract.device: 'gpu' is not a device"),
    "missing weights file": (
        "{backbones: [{name: test_vit, weights: ./none.pth}]}",
        "backbones[0].weights: './none.pth' is neither pretrained, random",
    ),
    "bad precision": ("{extract: {precision: fp8}}", "extract.precision: unknown precision 'fp8'"),
    "duplicate backbone": ("{backbones: [test_resnet, test_resnet]}", "backbones[1]: the same backbone and options as backbones[0]"),
    "unknown classifier": ("{classifiers: [{name: logreg2}]}", "classifiers[0].name: unknown classifier 'logreg2'; did you mean logreg"),
    "bad grid value": ("{classifiers: [{name: logreg, grid: {C: [-1, 1]}}]}", "classifiers[0].grid.C: bad value '-1,1': -1 is not > 0"),
    "bad grid syntax": ("{classifiers: [{name: logreg, grid: {C: 'logspace:1:2'}}]}", "classifiers[0].grid.C: bad value 'logspace:1:2'"),
    "grid of nothing": ("{classifiers: [{name: logreg, grid: {C: []}}]}", "classifiers[0].grid.C: expected a non-empty list"),
    "unknown grid parameter": (
        "{classifiers: [{name: logreg, grid: {k: [1]}}]}",
        "classifiers[0].grid.k: unknown parameter of LogisticRegression 'k' (valid: C, class_weight, dual, fit_intercept, intercept_scaling, l1_ratio, max_iter, n_jobs, penalty, random_state, solver, tol, verbose, warm_start)",
    ),
    "bad choice": (
        "{classifiers: [{name: knn, grid: {metric: [cosine, hamming]}}]}",
        "classifiers[0].grid.metric: bad value 'cosine,hamming'",
    ),
    "bad cv": ("{classifiers: [{name: knn, cv: 1}]}", "classifiers[0].cv: must be at least 2, got 1"),
    "cv as text": ("{fit: {cv: five}}", "fit.cv: expected a whole number, got 'five'"),
    "grid under fit": ("{fit: {grid: {C: [1]}}}", "fit.grid: unknown key; a grid belongs to one classifier"),
    "bad scale": ("{classifiers: [{name: knn, scale: minmax}]}", "classifiers[0].scale: unknown scaling 'minmax'"),
    "two columns alike": (
        "{classifiers: [logreg, {name: logreg, grid: {C: [1]}}]}",
        "classifiers[1]: logreg with the same scale and pca as classifiers[0]",
    ),
    "unknown dataset": ("{dataset: cifar11}", "dataset.name: unknown dataset 'cifar11'; did you mean cifar10"),
    "image folder without path": ("{dataset: imagefolder}", "dataset.name: imagefolder needs a path"),
    "bad limit": ("{dataset: {name: digits, limit: 0}}", "dataset.limit: must be at least 1, got 0"),
    "misspelt dataset key": ("{dataset: {name: digits, limt: 5}}", "dataset.limt: unknown key; did you mean limit"),
    "bad pca": ("{pca: {per_class: 0}}", "pca.per_class: must be at least 1, got 0"),
    "pca as text": ("{pca: lots}", "pca: expected a mapping of per_class, seed"),
    "backbones not a list": ("{backbones: resnet50}", "backbones: expected a non-empty list, got 'resnet50'"),
    "entry not a mapping": ("{backbones: [[resnet50]]}", "backbones[0]: expected a mapping"),
    "bad mean": ("{extract: {mean: [a, b, c]}}", "extract.mean:"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_every_mistake_is_a_config_error_naming_its_key_path(case: str) -> None:
    change, expected = BAD[case]
    with pytest.raises(ConfigError) as caught:
        parse(change)
    assert expected in str(caught.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read pipeline file .*none.yaml"):
        load_pipeline(tmp_path / "none.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("dataset: [digits\n")
    with pytest.raises(ConfigError, match="broken.yaml is not valid YAML"):
        load_pipeline(broken)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(textwrap.dedent(BASE) + "pca: {per_clas: 3}\n")
    with pytest.raises(ConfigError, match=r"wrong.yaml: pca.per_clas: unknown key; did you mean per_class\?"):
        load_pipeline(wrong)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="dataset: missing"):
        load_pipeline(empty)


def test_overrides_retarget_a_pipeline_without_editing_it(tmp_path: Path) -> None:
    spec = parse()
    folder = tmp_path / "pets"
    changed = spec.with_overrides(
        dataset=f"imagefolder:{folder}",
        limit=10,
        weights="random",
        device="cpu",
        batch_size=8,
        n_jobs=1,
        backbones=["test_vit"],
        classifiers=["knn"],
    )
    assert changed.dataset == f"imagefolder:{folder}"
    (request,) = changed.backbones
    config = request.config
    assert (
        config.backbone,
        request.dataset,
        config.limit,
        config.weights,
        request.options.device,
        request.options.batch_size,
        config.image_size,
    ) == ("test_vit", f"imagefolder:{folder}", 10, "random", "cpu", 8, 32)
    assert [c.clf for c in changed.classifiers] == ["knn"] and changed.n_jobs == 1
    assert spec.with_overrides() == spec
    with pytest.raises(ConfigError, match="no backbone 'test_vitt'; did you mean test_vit"):
        spec.with_overrides(backbones=["test_vitt"])
    with pytest.raises(ConfigError, match="dataset: unknown dataset"):  # fields: the CLI shows their flags (--dataset)
        spec.with_overrides(dataset="cifar11")
    with pytest.raises(ConfigError, match="weights: 'nope.pth' is neither"):
        spec.with_overrides(weights="nope.pth")
    with pytest.raises(ConfigError, match="limit: must be at least 1"):
        spec.with_overrides(limit=0)


def test_mean_and_std_take_one_number_or_three() -> None:
    spec = parse("{extract: {mean: 0.5, std: [0.25, 0.25, 0.25], weights: random}}")
    assert spec.backbones[0].config.mean == (0.5, 0.5, 0.5) and spec.backbones[0].config.std == (0.25, 0.25, 0.25)


def test_a_curves_key_plans_a_curve_per_backbone() -> None:
    from featx.runner.pipeline import plan_pipeline

    spec = parse("""
    curves: [{clf: logreg, shots: "1,5,full", repeats: 3, grid: {C: [0.1, 1]}}]
    """)
    (config,) = spec.curves
    assert (config.fit.clf, config.shots, config.repeats, config.fit.grid["C"]) == ("logreg", (1, 5, "full"), 3, (0.1, 1.0))
    curves = plan_pipeline(spec).of_kind("curve")
    assert [t.key for t in curves] == ["curve:test_resnet:0", "curve:test_vit:0"] and curves[0].deps == ("extract:test_resnet",)
    assert spec.to_dict()["curves"][0]["shots"] == [1, 5, "full"]
    with pytest.raises(ConfigError, match=r"curves\[0\]\.shots"):
        parse("{curves: [{clf: logreg, shots: '0'}]}")
    with pytest.raises(ConfigError, match=r"curves\[0\].*unknown"):
        parse("{curves: [{clf: logreg, shot: 5}]}")
