"""Real pretrained features on real images: what featx gives on CIFAR-10, end to end.

For each backbone (default: EfficientNet-Lite0 and -Lite2 with the ImageNet weights of
their pip packages, converted by featx), ``featx.extract`` on the CIFAR-10 JPEGs at the
model's native size with the whole image (``crop_pct 1.0``), then ``featx.fit`` of
LinearSVC, logistic regression and k-NN with their default grids and 5-fold CV on the
train split, scored once on the test split. Prints one JSON line per step and a table at
the end: test accuracy with the chosen parameters, extraction images/s, fit seconds.
Extractions are cached (``--cache-dir``): a rerun refits only.

``--limit N`` takes a class-balanced subset of N images per split (the accuracy tier's
protocol); ``--contrast`` adds the random-weights twin and the model fed 32 px images
without resizing, the two baselines pretrained features must beat.

Run it alone (it uses every core)::

    unzip -q ../shared/data/cifar10-jpg.zip -d /tmp/featx-data
    flock /tmp/featx-bench.lock python benchmarks/pretrained_bench.py --input /tmp/featx-data/cifar10-jpg
    flock /tmp/featx-bench.lock python benchmarks/pretrained_bench.py --input /tmp/featx-data/cifar10-jpg \\
        --backbones tf_efficientnet_lite0 --limit 200 --cv 3 --classifiers logreg --contrast
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CLASSIFIERS = ("linearsvc", "logreg", "knn")


def extract_step(args: argparse.Namespace, backbone: str, label: str, **config: Any) -> tuple[Path, dict[str, Any]]:
    import featx
    from featx.cache import read_info

    started = time.perf_counter()
    path = featx.extract(
        f"imagefolder:{args.input}",
        backbone=backbone,
        crop_pct=1.0,
        limit=args.limit,
        cache_dir=args.cache_dir,
        device=args.device,
        batch_size=args.batch_size,
        **config,
    )
    info = read_info(path)
    result = {
        "step": "extract",
        "label": label,
        "backbone": backbone,
        "weights": info.attrs.get("weights"),
        "input_size": list(info.attrs.get("input_size", [])),
        "mean": list(info.attrs.get("mean", [])),
        "feature_dim": info.attrs.get("feature_dim"),
        "rows": {name: s.n_rows for name, s in info.splits.items()},
        "seconds": sum(s.seconds for s in info.splits.values()),
        "images_per_second": {name: s.images_per_second for name, s in info.splits.items()},
        "wall_seconds_this_call": time.perf_counter() - started,
        "path": str(path),
    }
    print(json.dumps(result), flush=True)
    return path, result


def fit_step(args: argparse.Namespace, path: Path, label: str, clf: str) -> dict[str, Any]:
    import featx

    record = featx.fit(str(path), clf=clf, cv=args.cv, dataset=None, reports_dir=args.reports_dir, n_jobs=args.n_jobs)
    result = {
        "step": "fit",
        "label": label,
        "clf": clf,
        "test_accuracy": record.test_accuracy,
        "cv_best_score": record.cv_best_score,
        "best_params": record.best_params,
        "grid": record.grid,
        "search_seconds": record.search_seconds,
        "fit_seconds": record.fit_seconds,
        "predict_seconds": record.predict_seconds,
        "total_seconds": record.total_seconds,
    }
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("Run it")[1]
    )
    parser.add_argument("--input", required=True, help="the CIFAR-10 image folder (train/<class>/*.jpg, test/<class>/*.jpg)")
    parser.add_argument("--backbones", default="tf_efficientnet_lite0,tf_efficientnet_lite2", help="comma-separated timm names")
    parser.add_argument("--classifiers", default=",".join(CLASSIFIERS), help="comma-separated [linearsvc,logreg,knn]")
    parser.add_argument("--limit", type=int, default=None, help="class-balanced subset of N images per split [all]")
    parser.add_argument("--cv", type=int, default=5, help="folds [5]")
    parser.add_argument("--contrast", action="store_true", help="also random weights and 32 px un-resized input")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--n-jobs", type=int, default=-1)
    parser.add_argument("--cache-dir", default="/tmp/featx-pretrained-bench/features")
    parser.add_argument("--reports-dir", default="/tmp/featx-pretrained-bench/reports")
    parser.add_argument("--json-out", default=None, help="also write every result here")
    args = parser.parse_args()

    from featx.core.console import setup_logging

    setup_logging(0)
    print(f"# {_dt.datetime.now().isoformat(timespec='seconds')}, {platform.node()}, {os.cpu_count()} CPUs", flush=True)
    classifiers = [c for c in args.classifiers.split(",") if c]
    results: list[dict[str, Any]] = []
    for backbone in [b for b in args.backbones.split(",") if b]:
        runs = [(f"{backbone} pretrained", {"weights": "pretrained"})]
        if args.contrast:
            runs += [
                (f"{backbone} random weights", {"weights": "random"}),
                (f"{backbone} 32 px un-resized", {"weights": "pretrained", "image_size": 32}),
            ]
        for label, config in runs:
            path, extracted = extract_step(args, backbone, label, **config)
            results.append(extracted)
            for clf in classifiers:
                results.append(fit_step(args, path, label, clf))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    print()
    print("| features | classifier | test accuracy | chosen | CV | search s | refit s | images/s (train) |")
    print("|---|---|---|---|---|---|---|---|")
    rates = {r["label"]: r["images_per_second"].get("train", 0.0) for r in results if r["step"] == "extract"}
    for r in results:
        if r["step"] == "fit":
            chosen = ", ".join(f"{k}={v}" for k, v in r["best_params"].items())
            print(
                f"| {r['label']} | {r['clf']} | {r['test_accuracy'] * 100:.2f}% | {chosen} | {r['cv_best_score'] * 100:.2f}% "
                f"| {r['search_seconds']:.0f} | {r['fit_seconds']:.0f} | {rates[r['label']]:.1f} |"
            )


if __name__ == "__main__":
    main()
