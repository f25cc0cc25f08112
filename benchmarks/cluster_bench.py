"""featx on Dask: what a cluster costs and what it ships, measured.

Four parts (``--parts``, default all), each printing a table and JSON lines:

* ``fit``: ``featx.fit`` of linearsvc, logreg and knn on the 20,000 x 1,024 synthetic
  benchmark features (``fit_bench.synthetic_features``; 5,000 test rows, 10 classes,
  5-fold CV, the fit_bench grids) run here (``n_jobs=-1``: joblib processes) and on a
  ``local:N`` LocalCluster (folds as Dask tasks); wall seconds and their split, and the
  largest difference between the two runs' CV scores (must be 0).
* ``overhead``: on the same cluster, the round trip of an empty task, the throughput of
  many small tasks, the time to scatter the feature matrix (and keep a second copy),
  and the bytes that go over the network per fold task, per fold result and per refit
  result.
* ``stitch``: writing N synthetic shard files of a CIFAR-sized entry (60,000 x 2,048),
  stitching them (virtual datasets + checksums read through them), and reading the
  train split through the stitched file against a plain file of the same numbers.
* ``extract``: ``featx extract`` of real CIFAR-10 JPEGs (the shared zip, unpacked to a
  temporary folder) here against ``--scheduler local:N --shards S``.

Run it alone (it uses every core)::

    unzip -q ../shared/data/cifar10-jpg.zip -d /tmp/featx-data
    flock /tmp/featx-bench.lock python benchmarks/cluster_bench.py --input /tmp/featx-data/cifar10-jpg --json /tmp/cluster.json
    flock /tmp/featx-bench.lock python benchmarks/cluster_bench.py --parts overhead,stitch --quick
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fit_bench import C_GRID, K_GRID, synthetic_features  # noqa: E402

GRIDS: dict[str, dict[str, list[Any]]] = {
    "linearsvc": {"C": list(C_GRID)},
    "logreg": {"C": list(C_GRID)},
    "knn": {"n_neighbors": list(K_GRID), "weights": ["uniform"], "metric": ["euclidean"]},
}


def noop(value: int) -> int:
    """An empty task."""
    return value


def emit(part: str, **figures: Any) -> dict[str, Any]:
    row = {"part": part, **figures}
    print(json.dumps(row, default=str), flush=True)
    return row


# --------------------------------------------------------------------------- fit


def bench_fit(client: Any, path: Path, clfs: list[str], work: Path) -> list[dict[str, Any]]:
    import featx

    rows = []
    for clf in clfs:
        runs = {}
        for where in ("local", "cluster"):
            start = time.perf_counter()
            record = featx.fit(
                path,
                clf=clf,
                grid=GRIDS[clf],
                cv=5,
                seed=0,
                n_jobs=-1,
                reports_dir=work / where,
                client=client if where == "cluster" else None,
            )
            runs[where] = (time.perf_counter() - start, record)
        (local_s, local), (cluster_s, remote) = runs["local"], runs["cluster"]
        difference = max(abs(a - b) for p, q in zip(local.cv_results, remote.cv_results) for a, b in zip(p.fold_scores, q.fold_scores))
        rows.append(
            emit(
                "fit",
                clf=clf,
                local_s=local_s,
                cluster_s=cluster_s,
                local_search_s=local.search_seconds,
                cluster_search_s=remote.search_seconds,
                local_refit_s=local.fit_seconds,
                cluster_refit_s=remote.fit_seconds,
                read_s=local.read_seconds,
                cv_best=local.cv_best_score,
                test_accuracy=(local.test_accuracy, remote.test_accuracy),
                max_cv_difference=difference,
            )
        )
    return rows


# --------------------------------------------------------------------------- overhead


def bench_overhead(client: Any, arrays: dict[str, tuple[np.ndarray, np.ndarray]], work: Path) -> dict[str, Any]:
    import cloudpickle
    from distributed import wait

    from featx.cluster import executor as cluster
    from featx.fitting.classifiers import build_pipeline, get_classifier
    from featx.fitting.search import score_fold, stratified_folds

    for index in range(20):  # warm up: connections, imports on the workers
        client.submit(noop, index, pure=False).result()
    latencies = []
    for index in range(300):
        start = time.perf_counter()
        client.submit(noop, index, pure=False).result()
        latencies.append(time.perf_counter() - start)
    start = time.perf_counter()
    futures = client.map(noop, range(2000), pure=False)
    wait(futures)
    many = time.perf_counter() - start
    del futures

    (X, y), (X_test, y_test) = arrays["train"], arrays["test"]
    fresh = [X + np.float32(0), y.copy()]  # new bytes: nothing cached on the workers
    start = time.perf_counter()
    scattered = client.scatter(fresh, hash=True)
    scatter_s = time.perf_counter() - start
    start = time.perf_counter()
    client.replicate(scattered, n=2)
    replicate_s = time.perf_counter() - start
    del scattered
    start = time.perf_counter()
    shared = cluster.share(client, X - np.float32(0), y.copy(), X_test, y_test)
    share_s = time.perf_counter() - start

    spec = get_classifier("logreg")
    pipeline = build_pipeline(spec, scale="standard", pca=None, seed=0)
    folds = stratified_folds(y, 5, 0)
    points = [{"C": c} for c in C_GRID]
    task_bytes = len(cloudpickle.dumps((score_fold, 0, pipeline, spec.searcher, folds[0], points)))
    start = time.perf_counter()
    result = client.submit(score_fold, 0, pipeline, spec.searcher, shared[0], shared[1], folds[0], points, pure=False).result()
    fold_s = time.perf_counter() - start
    row = emit(
        "overhead",
        task_round_trip_ms_median=1e3 * statistics.median(latencies),
        task_round_trip_ms_p90=1e3 * sorted(latencies)[int(0.9 * len(latencies))],
        tasks_per_second_2000_at_once=2000 / many,
        scatter_train_s=scatter_s,
        replicate_to_second_worker_s=replicate_s,
        share_train_and_test_s=share_s,
        train_mb=(X.nbytes + y.nbytes) / 1e6,
        test_mb=(X_test.nbytes + y_test.nbytes) / 1e6,
        fold_task_bytes=task_bytes,
        fold_result_bytes=len(pickle.dumps(result)),
        logreg_fold_seconds=fold_s,
        fold_compute_seconds=result.seconds,
    )
    refit_sizes = {}
    for record_file in sorted((work / "cluster").rglob("*.joblib")):
        import joblib

        refit_sizes[record_file.name.split("__")[2]] = len(pickle.dumps(joblib.load(record_file)))
    if refit_sizes:
        row["refit_result_bytes"] = refit_sizes
        emit("overhead", refit_result_bytes=refit_sizes)
    return row


# --------------------------------------------------------------------------- stitch


def bench_stitch(work: Path, *, n_train: int, n_test: int, dim: int, count: int) -> dict[str, Any]:
    from featx import cache as cachefile
    from featx.cache.shards import ShardSpec, stitch

    rng = np.random.default_rng(0)
    arrays = {
        split: (rng.random((n, dim), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64))
        for split, n in (("train", n_train), ("test", n_test))
    }
    sizes = {"train": n_train, "test": n_test}
    final = work / "stitch" / "bench" / "synthetic__00000000feedbeef.h5"
    start = time.perf_counter()
    for index in range(count):
        shard = ShardSpec(index, count)
        part = {split: (x[slice(*shard.rows(len(y)))], y[slice(*shard.rows(len(y)))]) for split, (x, y) in arrays.items()}
        cachefile.write_features(
            shard.path(final),
            part,
            class_names=[str(c) for c in range(10)],
            attrs={"key": "00000000feedbeef", "backbone": "synthetic", "dataset": "bench", **shard.attrs(sizes)},
        )
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    stitch(final, count)
    stitch_s = time.perf_counter() - start
    plain = cachefile.write_features(
        work / "stitch" / "plain" / "synthetic__00000000feedbeef.h5", arrays, class_names=[str(c) for c in range(10)]
    )
    reads = {}
    for name, path in (("stitched", final), ("plain", plain)):
        timings = []
        for _ in range(3):
            start = time.perf_counter()
            cachefile.read_split(path, "train")
            timings.append(time.perf_counter() - start)
        reads[name] = min(timings)
    return emit(
        "stitch",
        shards=count,
        rows=n_train + n_test,
        dim=dim,
        data_mb=sum(x.nbytes for x, _ in arrays.values()) / 1e6,
        write_shards_s=write_s,
        stitch_s=stitch_s,
        stitched_file_kb=final.stat().st_size / 1e3,
        read_train_stitched_s=reads["stitched"],
        read_train_plain_s=reads["plain"],
    )


# --------------------------------------------------------------------------- extract


def bench_extract(
    work: Path, *, source: str | None, model: str, image_size: int, n_images: int, workers: int, shards: list[int]
) -> list[dict[str, Any]]:
    from extract_bench import bench_folder, resolve_input

    import featx
    from featx.cache import read_info
    from featx.cluster import executor as cluster
    from featx.extraction.engine import ExtractConfig

    folder, _ = bench_folder(resolve_input(source, work, n_images), n_images, work)
    config = ExtractConfig(
        backbone=model,
        dataset=f"imagefolder:{folder}",
        weights="random",
        image_size=image_size,
        precision="fp32",
        force=True,
        cache_dir=work / "features",
    )
    rows = []
    featx.extract(dataclasses.replace(config, limit=100, force=False, cache_dir=work / "warm"))  # imports torch here
    start = time.perf_counter()
    path = featx.extract(config)
    rows.append(_extract_row("here, 1 process", n_images, time.perf_counter() - start, read_info(path)))
    with cluster.connect(f"local:{workers}") as client:
        cluster.extract_on_cluster(
            client, dataclasses.replace(config, limit=100, force=False, cache_dir=work / "warm"), shards=workers
        )  # and on the workers
        for count in shards:
            start = time.perf_counter()
            path = cluster.extract_on_cluster(client, config, shards=count)
            rows.append(_extract_row(f"local:{workers}, {count} shards", n_images, time.perf_counter() - start, read_info(path)))
    return rows


def _extract_row(label: str, n_images: int, seconds: float, info: Any) -> dict[str, Any]:
    compute = sum(split.seconds for split in info.splits.values())
    return emit(
        "extract",
        run=label,
        images=n_images,
        wall_s=seconds,
        images_per_second_wall=n_images / seconds,
        compute_s_summed_over_shards=compute,
        device=info.splits["train"].device,
    )


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="fit,overhead,stitch,extract", help="comma list of fit, overhead, stitch, extract")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the local:N cluster")
    parser.add_argument("--clf", default="linearsvc,logreg,knn")
    parser.add_argument("--quick", action="store_true", help="4,000 x 256 features, small stitch and extract, for iterating")
    parser.add_argument(
        "--input", help="images for the extract part: a folder or a .zip (default: the shared CIFAR-10 zip, unpacked to a temporary folder)"
    )
    parser.add_argument("--extract-model", default="resnet18")
    parser.add_argument("--extract-size", type=int, default=112)
    parser.add_argument("--extract-images", type=int, default=2400)
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    n_train, n_test, dim = (4_000, 1_000, 256) if args.quick else (20_000, 5_000, 1_024)

    from featx.cache import write_features
    from featx.cluster import executor as cluster
    from featx.core.console import setup_logging

    setup_logging(-1)
    work = Path(tempfile.mkdtemp(prefix="featx-cluster-bench-"))
    import distributed
    import sklearn

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}, distributed {distributed.__version__}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    try:
        if "fit" in parts or "overhead" in parts:
            arrays = synthetic_features(n_train, n_test, dim, 10, seed=0)
            path = write_features(
                work / "bench" / "synthetic__0123456789abcdef.h5",
                arrays,
                class_names=[f"class_{i}" for i in range(10)],
                attrs={"backbone": "synthetic", "dataset": "bench"},
            )
            start = time.perf_counter()
            with cluster.connect(f"local:{args.workers}") as client:
                rows.append(
                    emit("cluster", workers=args.workers, start_s=time.perf_counter() - start, summary=cluster.cluster_summary(client))
                )
                if "fit" in parts:
                    rows += bench_fit(client, path, args.clf.split(","), work)
                if "overhead" in parts:
                    rows.append(bench_overhead(client, arrays, work))
        if "stitch" in parts:
            shape = (5_000, 1_000, 512) if args.quick else (50_000, 10_000, 2_048)
            rows.append(bench_stitch(work, n_train=shape[0], n_test=shape[1], dim=shape[2], count=8))
        if "extract" in parts:
            images = 600 if args.quick else args.extract_images
            rows += bench_extract(
                work,
                source=args.input,
                model=args.extract_model,
                image_size=args.extract_size,
                n_images=images,
                workers=args.workers,
                shards=[args.workers, 4 * args.workers],
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
