"""featx on a Dask cluster: a LocalCluster of two worker processes on 127.0.0.1 (shared by
the module's tests). Cluster fits equal local fits exactly; sharded extraction equals the
unsharded one row for row, also when a worker process is killed in the middle; errors
are clear and fast. Only loopback addresses are ever used."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("distributed")

from distributed import Client, LocalCluster, get_task_stream

import featx
import featx.cluster as cluster
from featx import cache as cachefile
from featx.cache.shards import ShardSpec
from featx.cli import main
from featx.cluster import scheduler as connection
from featx.core.errors import ConfigError, DatasetError, SchedulerError
from featx.extraction.config import ExtractConfig, ExtractRequest
from featx.extraction.engine import plan_extraction
from featx.fitting.config import FitConfig
from featx.fitting.records import RunRecord, iter_records, load_model

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "tcp://127.0.0.1:"
#: the whole digits data set (1,437 + 360 images) at 48 px: enough rows for shards
DIGITS_DATA = "digits"
DIGITS = {"weights": "random", "image_size": 48, "batch_size": 16}  # ExtractConfig fields and extract's options


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[LocalCluster]:
    saved = dict(os.environ)  # the nannies set OMP_NUM_THREADS=1 & co. here, for the workers they spawn
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0") as local:
        yield local
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def client(dask_cluster: LocalCluster) -> Iterator[Client]:
    with Client(dask_cluster) as connected:
        yield connected


@pytest.fixture(scope="module")
def digits_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The unsharded extraction of :data:`DIGITS`, here in the test process."""
    path = featx.extract(DIGITS_DATA, backbone="test_resnet", **DIGITS, cache_dir=tmp_path_factory.mktemp("reference"))
    return {split: featx.load_features(path, split)[:2] for split in ("train", "test")}


def cache_root() -> Path:
    return Path(os.environ["FEATX_CACHE_DIR"])


def assert_same_features(path: Path, reference: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Row for row: the same labels, the same features (computed by other processes with
    other thread counts, so equal to float32 rounding)."""
    for split, (x_ref, y_ref) in reference.items():
        x, y, _ = featx.load_features(path, split)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_allclose(x, x_ref, rtol=1e-5, atol=1e-6)


def assert_same_fit(ours: RunRecord, theirs: RunRecord) -> None:
    assert [p.params for p in ours.cv_results] == [p.params for p in theirs.cv_results]
    assert [p.fold_scores for p in ours.cv_results] == [p.fold_scores for p in theirs.cv_results]
    assert ours.best_params == theirs.best_params and ours.cv_best_score == theirs.cv_best_score
    assert ours.test_accuracy == theirs.test_accuracy and ours.confusion_matrix == theirs.confusion_matrix
    # the run key hashes what the features are (their checksums): features extracted by other
    # processes equal the reference to float32 rounding, and bitwise only by chance
    assert (ours.run_key == theirs.run_key) == (ours.features.content == theirs.features.content)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --------------------------------------------------------------------------- connecting


def test_the_cluster_listens_on_loopback_only(client: Client) -> None:
    assert client.scheduler.address.startswith(LOOPBACK)
    assert all(worker.startswith(LOOPBACK) for worker in client.scheduler_info(n_workers=-1)["workers"])


def test_scheduler_addresses() -> None:
    assert connection.SchedulerAddress.parse("local:3").local_workers == 3
    assert connection.SchedulerAddress.parse("local").local_workers == len(os.sched_getaffinity(0))
    assert connection.SchedulerAddress.parse("tcp://127.0.0.1:8786").local_workers is None
    assert connection.SchedulerAddress.parse("scheduler.json").scheduler_file == Path("scheduler.json")
    for bad in ("local:0", "local:x", " "):
        with pytest.raises(ConfigError):
            connection.SchedulerAddress.parse(bad)


def test_an_unreachable_scheduler_is_a_clear_error_within_seconds() -> None:
    address = f"{LOOPBACK}{free_port()}"
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["fit", "--features", "x.h5", "--clf", "logreg", "--scheduler", address])
    assert time.perf_counter() - started < connection.CONNECT_TIMEOUT + 5
    assert result.exit_code == 2 and result.output.count("\n") == 1 and address in result.output
    assert "cannot reach the Dask scheduler" in result.output and "dask scheduler" in result.output


def test_a_scheduler_without_workers_is_a_clear_error() -> None:
    with LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0") as empty:
        with pytest.raises(SchedulerError, match="has no workers"):
            with cluster.connect(empty.scheduler_address, worker_timeout=0.5):
                pass


def test_connecting_checks_the_workers_run_this_featx(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    with cluster.connect(client.scheduler.address) as connected:
        assert cluster.describe(connected) == f"{client.scheduler.address} (2 workers, 2 threads)"
        assert connection.gpu_resources(connected) is None  # no worker advertises a GPU
    monkeypatch.setattr(connection, "__version__", "0.0-other")
    with pytest.raises(SchedulerError, match="another featx version than this one \\(0.0-other\\)"):
        with cluster.connect(client.scheduler.address):
            pass


def test_local_n_starts_a_loopback_cluster_and_closes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    with cluster.connect("local:1") as client:
        assert client is not None and client.scheduler.address.startswith(LOOPBACK)
        summary = cluster.cluster_summary(client)
        assert summary["workers"] == 1 and summary["threads"] == 1
        assert all(worker.startswith(LOOPBACK) for worker in client.scheduler_info(n_workers=-1)["workers"])
    assert client.status == "closed" and os.environ["OMP_NUM_THREADS"] == "7"  # what the nanny set is undone
    with cluster.connect(None) as nothing:  # no address, no FEATX_SCHEDULER: no cluster
        assert nothing is None


def test_tasks_get_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers have another working directory (and, elsewhere, another environment)."""
    monkeypatch.chdir(tmp_path)
    request = cluster.portable_request(
        ExtractRequest(
            dataset="imagefolder:pets", config=ExtractConfig(backbone="resnet50", weights="w.pth"), options={"cache_dir": "features"}
        )
    )
    assert request.dataset == f"imagefolder:{tmp_path / 'pets'}" and request.config.weights == str(tmp_path / "w.pth")
    assert request.options.cache_dir == str(tmp_path / "features") and Path(str(request.options.data_dir)).is_absolute()
    plain = ExtractRequest(dataset="cifar10", config=ExtractConfig(backbone="resnet50", weights="random"))
    assert cluster.portable_request(plain).dataset == "cifar10"


def test_without_a_scheduler_nothing_imports_dask(feature_file: Callable[..., Path]) -> None:
    """Plain ``featx fit`` and ``featx extract`` in a fresh interpreter never import dask."""
    path = feature_file()
    script = textwrap.dedent(
        f"""
        import sys
        from featx.cli import main
        for args in (["fit", "--features", {str(path)!r}, "--clf", "logreg", "--C-grid", "1", "--cv", "3", "--n-jobs", "1"],
                     ["extract", "--backbone", "test_resnet", "--weights", "random", "--image-size", "32", "--dataset", "digits", "--limit", "20"]):
            try:
                main(["-q", *args])
            except SystemExit as stop:
                assert stop.code in (0, None), stop.code
        print("DASK", sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed")))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(cluster.SCHEDULER_ENV, None)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "DASK []" in done.stdout, done.stdout


# --------------------------------------------------------------------------- fitting on the cluster


@pytest.mark.parametrize(
    ("clf", "grid"),
    [
        ("linearsvc", {"C": [0.01, 0.1, 1.0]}),
        ("logreg", {"C": [0.01, 1.0]}),
        ("knn", {"n_neighbors": [1, 5, 9], "weights": ["uniform", "distance"]}),
    ],
)
def test_cluster_fit_equals_local_fit(client: Client, feature_file: Callable[..., Path], clf: str, grid: dict) -> None:
    path = feature_file(n_train=240, n_test=90, dim=12, n_classes=4, separation=0.7, seed=3)
    config = FitConfig(clf=clf, grid=grid, cv=4)
    local = featx.fit(path, config, reports_dir=cache_root().parent / "local", n_jobs=1)
    with cluster.fold_work_on(client) as environment:  # the folds as Dask tasks, through joblib's Dask backend
        remote = featx.fit(path, config, n_jobs=-1, environment=environment)
    assert_same_fit(remote, local)
    assert remote.environment["dask"]["workers"] == 2 and "dask" not in local.environment
    X_test, _, _ = featx.load_features(path, "test")
    np.testing.assert_array_equal(load_model(remote).predict(X_test), load_model(local, cache_root().parent / "local").predict(X_test))


def test_cli_fit_on_the_scheduler_named_by_the_environment(
    client: Client, feature_file: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = feature_file(n_train=120, n_test=60, dim=8, separation=1.0)
    local = featx.fit(path, clf="logreg", grid={"C": "0.1,1"}, cv=3, save=False)
    monkeypatch.setenv(cluster.SCHEDULER_ENV, client.scheduler.address)
    result = CliRunner().invoke(
        main, ["fit", "--features", str(path), "--clf", "logreg", "--C-grid", "0.1,1", "--cv", "3", "--n-jobs", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    remote = RunRecord.from_dict(json.loads(result.stdout))
    assert_same_fit(remote, local)
    assert remote.environment["dask"]["scheduler"] == client.scheduler.address
    assert "fold work runs as Dask tasks" in result.stderr


# --------------------------------------------------------------------------- extraction on the cluster


def test_sharded_extraction_equals_the_unsharded_one(client: Client, digits_reference, monkeypatch: pytest.MonkeyPatch) -> None:
    config = ExtractConfig(backbone="test_resnet", weights="random", image_size=48)
    path = cluster.extract_on_cluster(client, DIGITS_DATA, config, shards=3, batch_size=16)
    assert path == plan_extraction(DIGITS_DATA, config).path  # the unsharded key and place
    info = cachefile.read_info(path)
    assert info.stitched and [f.name for f in info.shard_files] == [f"shard-{k}-of-3.h5" for k in range(3)]
    assert cachefile.verify_file(path) == []
    assert_same_features(path, digits_reference)
    stamps = [f.stat().st_mtime_ns for f in info.shard_files]
    assert cluster.extract_on_cluster(client, DIGITS_DATA, config, shards=3, batch_size=16) == path  # a cache hit: no shard recomputed
    assert [f.stat().st_mtime_ns for f in info.shard_files] == stamps
    monkeypatch.setattr("featx.extraction.models.create_backbone", lambda *a, **k: pytest.fail("built a model on a cache hit"))
    assert featx.extract(DIGITS_DATA, config) == path  # and so is a plain extract here


def test_a_worker_killed_during_a_sharded_extraction(client: Client, digits_reference) -> None:
    config = ExtractConfig(backbone="test_resnet", weights="random", image_size=48)
    final = plan_extraction(DIGITS_DATA, config).path
    future = cluster.submit_extract(client, DIGITS_DATA, config, shards=2, batch_size=2)
    victim = _kill_a_worker_writing_a_shard(client, final)
    path = cluster.result_of(future)
    assert path == final and victim.exists()  # the killed worker's shard was finished all the same
    assert cachefile.verify_file(path) == []
    assert_same_features(path, digits_reference)
    assert not list(cachefile.shards_dir(final).glob("*.partial.h5"))


def _kill_a_worker_writing_a_shard(client: Client, final: Path, *, timeout: float = 120.0) -> Path:
    """SIGKILL the worker process that is writing a shard file, once its rows started to
    land; return that shard's (final) file, which must not exist yet at that moment."""
    pids = client.run(os.getpid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        partials = list(cachefile.shards_dir(final).glob("shard-*.partial.h5"))
        for worker, keys in client.processing().items():
            running = [key for key in keys if "shard-" in str(key)]
            if partials and running:
                index = int(str(running[0]).split("shard-")[1].split("-of-")[0])
                victim = ShardSpec(index, 2).path(final)
                if cachefile.partial_path(victim).exists() and not victim.exists():
                    os.kill(pids[worker], signal.SIGKILL)
                    return victim
        time.sleep(0.02)
    pytest.fail("no shard task was seen writing its file")


def test_a_featx_error_in_a_task_is_raised_as_itself(client: Client, tmp_path: Path) -> None:
    config = ExtractConfig(backbone="test_resnet", weights="random")
    with pytest.raises(DatasetError, match="does not exist"):
        cluster.extract_on_cluster(client, f"imagefolder:{tmp_path / 'absent'}", config, shards=2)
    result = CliRunner().invoke(
        main,
        [
            "extract",
            "--backbone",
            "test_resnet",
            "--weights",
            "random",
            "--dataset",
            f"imagefolder:{tmp_path / 'absent'}",
            "--scheduler",
            client.scheduler.address,
            "--shards",
            "2",
        ],
    )
    assert result.exit_code == 2 and "does not exist" in result.output and "Traceback" not in result.output
    assert not cache_root().exists() or not any(cache_root().rglob("*.h5"))


# --------------------------------------------------------------------------- featx run on the cluster

PIPELINE = """
name: tiny-cluster
dataset: {name: digits, limit: 60}
extract: {image_size: 32, weights: random, batch_size: 16}
backbones: [test_resnet, test_efficientnet]
fit: {cv: 3}
classifiers:
  - {name: logreg, grid: {C: [0.1, 1]}}
  - {name: knn, grid: {n_neighbors: [1, 3], weights: [uniform], metric: [euclidean]}}
pca: {per_class: 5}
"""


@pytest.mark.parametrize("shards", [None, 2])
def test_run_on_the_cluster_equals_the_serial_run(client: Client, tmp_path: Path, shards: int | None) -> None:
    """Every task of a pipeline on the cluster (both backbones at once, fits as fold
    tasks, extractions as shard tasks): the same outcomes, records and report as serially;
    a rerun on the cluster computes nothing."""
    from featx.runner.pipeline import run_pipeline
    from featx.runner.spec import load_pipeline

    pipeline = tmp_path / "tiny.yaml"
    pipeline.write_text(textwrap.dedent(PIPELINE))
    serial = run_pipeline(load_pipeline(pipeline), cache_dir=tmp_path / "serial-cache", reports_dir=tmp_path / "serial-reports")

    options = ["--scheduler", client.scheduler.address, "--cache-dir", str(tmp_path / "cache"), "--reports-dir", str(tmp_path / "reports")]
    options += ["--shards", str(shards)] if shards else []
    with get_task_stream(client) as stream:
        result = CliRunner().invoke(main, ["run", str(pipeline), *options])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "reports" / "index.html").is_file() and "Traceback" not in result.output
    if not shards:  # the two backbones' extractions ran at the same time, one on each worker
        workers = {
            backbone: event["worker"]
            for event in stream.data
            for backbone in ("test_resnet", "test_efficientnet")
            if event["key"].startswith(f"featx-extract-{backbone}-")
        }
        assert workers["test_resnet"] != workers["test_efficientnet"]
        # and the scheduler had both processing at once (its own log: no wall-clock race on a
        # busy machine, where a worker process may wait for a core after receiving its task)
        spans = client.run_on_scheduler(_processing_spans, "featx-extract-")
        (enter_a, leave_a), (enter_b, leave_b) = (spans[key] for key in sorted(spans))
        assert max(enter_a, enter_b) < min(leave_a, leave_b), spans
    manifest = json.loads((tmp_path / "reports" / "pipelines" / "tiny-cluster.json").read_text())
    assert {task["key"]: task["status"] for task in manifest["tasks"]} == dict.fromkeys(serial.outcomes, "done")

    cluster_records = {(r.features.backbone, r.clf): r for r in iter_records(tmp_path / "reports")}
    assert len(cluster_records) == len(serial.records) == 4
    for record in serial.records:
        theirs = cluster_records[(record.features.backbone, record.clf)]
        assert theirs.environment["dask"]["workers"] == 2
        assert_same_fit(theirs, record)
    if shards:
        entries = list((tmp_path / "cache").glob("*/*.h5"))
        assert len(entries) == 2 and all(cachefile.read_info(p).stitched for p in entries)

    rerun = CliRunner().invoke(main, ["run", str(pipeline), *options])
    assert rerun.exit_code == 0, rerun.output
    manifest = json.loads((tmp_path / "reports" / "pipelines" / "tiny-cluster.json").read_text())
    assert {task["status"] for task in manifest["tasks"]} == {"cached"}


def test_a_failed_extraction_on_the_cluster_skips_its_fits_only(client: Client, tmp_path: Path) -> None:
    """A checkpoint that is not one fails its backbone's extraction on a worker; the other
    backbone's tasks still run, and the command ends with exit status 2 naming the file."""
    (tmp_path / "damaged.safetensors").write_bytes(b"not a checkpoint")
    pipeline = tmp_path / "broken.yaml"
    pipeline.write_text(
        textwrap.dedent(PIPELINE).replace(
            "[test_resnet, test_efficientnet]", f"[test_resnet, {{name: test_efficientnet, weights: {tmp_path / 'damaged.safetensors'}}}]"
        )
    )
    result = CliRunner().invoke(main, ["run", str(pipeline), "--scheduler", client.scheduler.address, "--no-report"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    manifest = json.loads((reports_root() / "pipelines" / "tiny-cluster.json").read_text())
    statuses = {task["key"]: task["status"] for task in manifest["tasks"]}
    assert statuses["extract:test_resnet"] == "done" and statuses["fit:test_resnet:logreg"] == "done"
    assert statuses["extract:test_efficientnet"] == "failed" and statuses["fit:test_efficientnet:knn"] == "skipped"
    assert "damaged.safetensors" in result.output


def test_shards_without_a_scheduler_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEATX_SCHEDULER", raising=False)
    pipeline = tmp_path / "tiny.yaml"
    pipeline.write_text(textwrap.dedent(PIPELINE))
    result = CliRunner().invoke(main, ["run", str(pipeline), "--shards", "2"])
    assert result.exit_code == 2 and "--shards N needs a Dask scheduler" in result.output


def _processing_spans(prefix: str, dask_scheduler: object = None) -> dict[str, tuple[float, float]]:
    """Runs on the scheduler: when each task whose key starts with ``prefix`` entered and left
    the processing state (from the scheduler's transition log)."""
    spans: dict[str, list[float]] = {}
    for transition in dask_scheduler.transition_log:  # type: ignore[attr-defined]
        key = str(transition.key)
        if key.startswith(prefix) and "attempt" not in key:
            span = spans.setdefault(key, [float("inf"), float("inf")])
            if transition.finish == "processing":
                span[0] = min(span[0], transition.timestamp)
            elif transition.start == "processing":
                span[1] = min(span[1], transition.timestamp)
    return {key: (enter, leave) for key, (enter, leave) in spans.items()}


def reports_root() -> Path:
    return Path(os.environ["FEATX_REPORTS_DIR"])
