"""``featx run``: the task graph, the serial executor, cheap reruns, failures, the executor seam, the CLI."""

from __future__ import annotations

import json
import os
import pickle
import textwrap
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

import featx
from featx.cli import main
from featx.runner.graph import Outcome, TaskGraph, execute_serial, run_task
from featx.runner.pipeline import plan_pipeline, run_pipeline
from featx.runner.spec import PipelineSpec, load_pipeline

TINY = """
name: tiny
description: two tiny timm models on 60 digits
dataset: {name: digits, limit: 60}
extract: {image_size: 32, weights: random, batch_size: 32}
backbones: [test_resnet, test_efficientnet]
fit: {cv: 3, n_jobs: 1}
classifiers:
  - {name: logreg, grid: {C: [0.1, 1]}}
  - {name: knn, grid: {n_neighbors: [1, 3], weights: [uniform], metric: [euclidean]}}
pca: {per_class: 5}
"""


def reports() -> Path:
    return Path(os.environ["FEATX_REPORTS_DIR"])


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(TINY))
    return path


@pytest.fixture
def spec(tiny: Path) -> PipelineSpec:
    return load_pipeline(tiny)


def test_the_plan_is_one_extraction_per_backbone_then_its_fits_and_pca(spec: PipelineSpec) -> None:
    graph = plan_pipeline(spec)
    assert [t.key for t in graph.tasks] == [
        "extract:test_resnet",
        "fit:test_resnet:logreg",
        "fit:test_resnet:knn",
        "pca:test_resnet:standard",
        "extract:test_efficientnet",
        "fit:test_efficientnet:logreg",
        "fit:test_efficientnet:knn",
        "pca:test_efficientnet:standard",
    ]
    assert all(t.deps == (f"extract:{t.key.split(':')[1]}",) for t in graph.tasks if t.kind != "extract")
    assert [len(graph.of_kind(k)) for k in ("extract", "fit", "pca")] == [2, 4, 2]
    assert not Path(os.environ["FEATX_CACHE_DIR"]).exists() and not reports().exists()  # planning reads and writes nothing
    pickle.loads(pickle.dumps(graph))  # tasks travel to other processes (a Dask or process-pool executor)


def test_a_graph_refuses_a_dependency_that_does_not_come_first(spec: PipelineSpec) -> None:
    tasks = plan_pipeline(spec).tasks
    with pytest.raises(featx.FeatxError, match="depends on extract:test_resnet, which is not an earlier task"):
        TaskGraph((tasks[1], tasks[0]))


def test_run_extracts_fits_draws_and_reports(spec: PipelineSpec) -> None:
    result = run_pipeline(spec)
    assert result.ok and result.counts() == {"extract": {"done": 2}, "fit": {"done": 4}, "pca": {"done": 2}}
    records = result.records
    assert [(r.features.backbone, r.clf) for r in records] == [
        ("test_resnet", "logreg"),
        ("test_resnet", "knn"),
        ("test_efficientnet", "logreg"),
        ("test_efficientnet", "knn"),
    ]
    assert all(r.features.n_train == 60 and r.cv == 3 and r.features.attrs["weights_mode"] == "random" for r in records)
    assert result.report is not None and result.report.html == reports() / "index.html" and result.report.n_runs == 4
    assert result.report.random_weights
    manifest = json.loads(result.manifest.read_text())
    assert result.manifest == reports() / "pipelines" / "tiny.json"
    assert manifest["name"] == "tiny" and manifest["command"].startswith("featx run ") and len(manifest["tasks"]) == 8
    assert {t["status"] for t in manifest["tasks"]} == {"done"}
    summary = result.summary()
    assert "test_resnet [RANDOM WEIGHTS]" in summary and "logreg" in summary and " *" in summary
    assert "extractions: 2 done; fits: 4 done; PCA plots: 2 done" in summary
    html = result.report.html.read_text()
    assert "tiny" in html and "featx run" in html  # the pipeline is named under "How this was made"


def test_a_rerun_builds_no_model_and_fits_nothing(spec: PipelineSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    first = run_pipeline(spec, report=False)
    assert first.ok

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished pipeline must not redo this")

    import featx.extraction.models
    import featx.fitting.projection
    import featx.fitting.protocol

    monkeypatch.setattr(featx.extraction.models, "create_backbone", forbidden)
    monkeypatch.setattr(featx.fitting.protocol, "_cross_validate", forbidden)
    monkeypatch.setattr(featx.fitting.projection, "_scatter_figure", forbidden)
    again = run_pipeline(spec)
    assert again.ok and again.counts() == {"extract": {"cached": 2}, "fit": {"cached": 4}, "pca": {"cached": 2}}
    assert [r.run_key for r in again.records] == [r.run_key for r in first.records]
    assert again.report is not None and again.report.n_runs == 4


@pytest.mark.slow
def test_force_refits_and_force_extract_extracts_again(spec: PipelineSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    run_pipeline(spec, report=False)
    forced = run_pipeline(spec, force=True, report=False)
    assert forced.counts() == {"extract": {"cached": 2}, "fit": {"done": 4}, "pca": {"done": 2}}
    again = run_pipeline(spec, force_extract=True, report=False)
    assert again.counts() == {"extract": {"done": 2}, "fit": {"done": 4}, "pca": {"done": 2}}


def test_a_failed_extraction_skips_its_fits_and_the_rest_runs(spec: PipelineSpec, tmp_path: Path) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    bad = spec.backbones[1].replace(config=spec.backbones[1].config.replace(weights=str(broken)))
    result = run_pipeline(PipelineSpec(name="half", dataset=spec.dataset, backbones=(spec.backbones[0], bad), classifiers=spec.classifiers))
    assert not result.ok
    statuses = {key: outcome.status for key, outcome in result.outcomes.items()}
    assert statuses["extract:test_efficientnet"] == "failed" and "cannot load weights" in result.outcomes["extract:test_efficientnet"].error
    assert statuses["fit:test_efficientnet:logreg"] == statuses["pca:test_efficientnet:standard"] == "skipped"
    assert {statuses[k] for k in statuses if "test_resnet" in k} == {"done"}
    assert result.report is not None and result.report.n_runs == 2  # the report shows what exists
    summary = result.summary()
    assert "FAILED: extract test_efficientnet" in summary and "SKIPPED: fit logreg on test_efficientnet" in summary


def thread_pool_executor(graph: TaskGraph) -> dict[str, Outcome]:
    """A concurrent executor built on the seam: submit each task once its dependencies' futures exist."""
    futures: dict[str, Future[Outcome]] = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for task in graph.tasks:
            deps = [futures[d] for d in task.deps]
            futures[task.key] = pool.submit(lambda t=task, ds=deps: run_task(t, *(d.result() for d in ds)))
        return {key: future.result() for key, future in futures.items()}


@pytest.mark.slow
def test_another_executor_plugs_into_the_seam(spec: PipelineSpec) -> None:
    serial = run_pipeline(spec, report=False)
    seen: list[int] = []

    def executor(graph: TaskGraph) -> dict[str, Outcome]:
        seen.append(len(graph))
        return thread_pool_executor(graph)

    concurrent = run_pipeline(spec, executor=executor, force=True)
    assert seen == [8] and concurrent.ok
    assert [(r.run_key, r.test_accuracy) for r in concurrent.records] == [(r.run_key, r.test_accuracy) for r in serial.records]


def test_an_executor_that_forgets_a_task_is_an_error(spec: PipelineSpec) -> None:
    with pytest.raises(featx.FeatxError, match="no outcome for"):
        run_pipeline(spec, executor=lambda graph: {})


def test_execute_serial_returns_every_outcome_in_order(spec: PipelineSpec) -> None:
    graph = plan_pipeline(spec.with_overrides(backbones=["test_resnet"]))
    outcomes = execute_serial(graph)
    assert list(outcomes) == [t.key for t in graph.tasks] and all(o.ok and o.seconds >= 0 for o in outcomes.values())
    assert isinstance(outcomes["extract:test_resnet"].value, Path)


def test_cli_run_prints_the_summary_then_the_report_path(tiny: Path) -> None:
    result = CliRunner().invoke(main, ["-q", "run", str(tiny), "--limit", "40", "--backbone", "test_resnet", "--clf", "knn"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert Path(lines[-1]) == reports() / "index.html" and Path(lines[-1]).is_file()
    assert any(line.startswith("test_resnet [RANDOM WEIGHTS]") for line in lines) and "fits: 1 done" in result.stdout
    manifest = json.loads((reports() / "pipelines" / "tiny.json").read_text())
    assert (
        manifest["command"]
        == f"featx run {tiny} --limit 40 --backbone test_resnet --clf knn --cache-dir {os.environ['FEATX_CACHE_DIR']} --reports-dir {reports()}"
    )
    assert manifest["spec"]["backbones"][0]["limit"] == 40


def test_cli_dry_run_says_what_is_cached_up_to_date_or_to_do(tiny: Path) -> None:
    def states() -> dict[str, str]:
        result = CliRunner().invoke(main, ["-q", "run", str(tiny), "--dry-run"])
        assert result.exit_code == 0, result.output
        assert "tiny: 8 tasks on digits" in result.stdout
        rows = [line.split("  ", 1) for line in result.stdout.splitlines() if line.startswith(("extract:", "fit:", "pca:"))]
        return {key.strip(): state.strip() for key, state in rows}

    before = states()
    assert before["extract:test_efficientnet"] == "to do" and before["fit:test_efficientnet:knn"] == "to do (after its extraction)"
    assert not reports().exists()
    done = CliRunner().invoke(main, ["-q", "run", str(tiny), "--backbone", "test_resnet", "--clf", "logreg", "--no-report"])
    assert done.exit_code == 0, done.output
    after = states()
    assert after["extract:test_resnet"] == "cached" and after["fit:test_resnet:logreg"] == "up to date"
    assert after["fit:test_resnet:knn"] == "to do" and after["pca:test_resnet:standard"] == "up to date"
    assert after["extract:test_efficientnet"] == "to do"


def test_dry_run_counts_curves_as_to_do_after_their_extraction(tmp_path: Path) -> None:
    from featx.runner.pipeline import plan_pipeline, task_states
    from featx.runner.spec import load_pipeline

    path = tmp_path / "curves.yaml"
    path.write_text(textwrap.dedent(TINY) + "curves: [{clf: logreg, shots: '1,5', repeats: 2}]\n")
    states = task_states(plan_pipeline(load_pipeline(path)))
    curves = {key: state for key, state in states.items() if key.startswith("curve:")}
    assert curves == {"curve:test_resnet:0": "to do (after its extraction)", "curve:test_efficientnet:0": "to do (after its extraction)"}


def test_cli_run_retargets_the_data_set(tiny: Path, tmp_path: Path) -> None:
    from tests.fakes import write_image_folder

    folder = write_image_folder(tmp_path / "pets", per_class={"train": 6, "test": 3})
    result = CliRunner().invoke(
        main, ["-q", "run", str(tiny), "--dataset", f"imagefolder:{folder}", "--backbone", "test_resnet", "--clf", "logreg"]
    )
    assert result.exit_code == 0, result.output
    (record,) = featx.iter_records()
    assert record.features.dataset == "pets" and record.class_names == ["cat", "dog", "owl"]


def test_cli_bad_pipeline_is_one_line_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent(TINY).replace("image_size: 32", "image_size: -1"))
    result = CliRunner().invoke(main, ["run", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"featx: error: {bad}: extract.image_size: must be at least 1, got -1"
    assert not reports().exists()


def test_cli_run_with_a_failed_task_exits_2_after_the_report(tiny: Path) -> None:
    result = CliRunner().invoke(main, ["-q", "run", str(tiny), "--weights", "pretrained", "--backbone", "test_resnet"])
    assert result.exit_code == 2
    assert "FAILED: extract test_resnet" in result.stdout and "cannot get pretrained weights" in result.stdout
    assert "featx: error: 4 of 4 tasks did not succeed" in result.stderr


def test_the_facade_exports_the_new_verbs_as_functions() -> None:
    import featx.reporting.render
    import featx.runner.demo_run
    import featx.runner.pipeline

    assert {"report", "run_pipeline", "load_pipeline", "PipelineSpec", "demo"} <= set(dir(featx))
    assert featx.report is featx.reporting.render.report and featx.demo is featx.runner.demo_run.demo  # functions, not modules
    assert featx.run_pipeline is run_pipeline and featx.load_pipeline is load_pipeline
