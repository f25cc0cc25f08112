"""Throughput and memory of ``featx extract`` against the naive loop the seed teams wrote.

Both sides get the same model (random weights: throughput does not depend on them), the
same image files and the same device, and run one after the other in fresh processes:

* naive: a Dataset that opens each image with PIL, resizes it to the input size,
  ``ToTensor`` + ``Normalize`` (torchvision), a default ``DataLoader``, fp32, NCHW,
  features collected in a list.
* featx: ``featx.extract`` on the same files as an image folder (uint8 batches decoded
  in workers, resized and normalised on the device, channels-last, autocast, features
  written to the HDF5 cache), end to end, with ``--force``.

Then featx alone on growing numbers of images, to show that its peak memory does not
grow with the data set. Each run prints a JSON line; the end is a table.

``--malloc both`` runs every featx measurement twice, side by side: with glibc's malloc
as it is (``FEATX_MALLOC_TUNING=0``) and as featx tunes it (the default; see
:mod:`featx.extraction.allocator`), with the CPU time spent in the kernel, the minor page
faults and the peak memory of each, and the memory one batch's forward pass takes (the
bound the tuning must keep its extra peak memory under).

Examples::

    # this 2-core CPU
    PYTHONPATH=. python3 benchmarks/extract_bench.py --model resnet18 --image-size 112 --n-images 2000 --precision fp32,bf16
    # glibc malloc as it is against featx's tuning, EfficientNet-Lite0 at 224 px
    flock /tmp/featx-bench.lock python3 benchmarks/extract_bench.py --input /tmp/featx-data/cifar10-jpg --model tf_efficientnet_lite0 \
        --image-size 224 --n-images 1000 --malloc both --repeat 3 --naive-images 0 --memory-sizes ""
    # a GPU box, all 60,000 CIFAR-10 JPEGs
    unzip -q ../shared/data/cifar10-jpg.zip -d /tmp/featx-data
    PYTHONPATH=. python3 benchmarks/extract_bench.py --input /tmp/featx-data/cifar10-jpg --model resnet50 \\
        --image-size 224 --n-images 60000 --device cuda --precision bf16 --naive-images 5000 --memory-sizes ""
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED_ZIP = ROOT.parent / "shared" / "data" / "cifar10-jpg.zip"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


# --------------------------------------------------------------------------- input images


def find_images(folder: Path) -> list[Path]:
    """Every image under ``folder`` (``<split>/<class>/*`` or ``<class>/*``), sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def resolve_input(input_path: str | None, scratch: Path, n_images: int) -> Path:
    """A folder of images: the one given, the shared CIFAR-10 zip unpacked, or synthetic JPEGs."""
    if input_path:
        path = Path(input_path).expanduser()
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as zipped:
                zipped.extractall(scratch / "input")
            return scratch / "input"
        return path
    if SHARED_ZIP.exists():
        with zipfile.ZipFile(SHARED_ZIP) as zipped:
            zipped.extractall(scratch / "input")
        return scratch / "input"
    return synthetic_images(scratch / "input", n_images)


def synthetic_images(folder: Path, n_images: int) -> Path:
    """32x32 JPEGs of smooth noise in ten class folders (when no real images are there)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(n_images):
        small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        target = folder / "train" / f"class{index % 10}" / f"{index:06d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(small).resize((32, 32), Image.BILINEAR).save(target, quality=90)
    return folder


def bench_folder(source: Path, n_images: int, scratch: Path) -> tuple[Path, list[Path]]:
    """An image folder of exactly ``n_images`` files (symlinks, cycling the source when it has
    fewer): 5/6 in train/, 1/6 in test/, classes kept. Returns it and its files in order."""
    files = find_images(source)
    if not files:
        raise SystemExit(f"no images under {source}")
    if n_images == len(files) and (source / "train").is_dir() and (source / "test").is_dir():
        return source, files
    folder = scratch / f"bench-{n_images}"
    if folder.exists():
        shutil.rmtree(folder)
    n_test = max(1, n_images // 6)
    chosen: list[Path] = []
    for index in range(n_images):
        original = files[index % len(files)]
        split = "test" if index >= n_images - n_test else "train"
        link = folder / split / original.parent.name / f"{index:06d}{original.suffix}"
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(original.resolve(), link)
        chosen.append(link)
    return folder, chosen


# --------------------------------------------------------------------------- one measured run (child process)


def peak_rss_bytes() -> dict[str, int]:
    """Peak resident memory of this process, and the largest of its finished child processes
    (DataLoader workers; also short helper forks such as the ``ldconfig`` call made while
    importing torch, which count the parent's shared pages)."""
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return {
        "peak_rss_main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale,
        "peak_rss_children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale,
    }


def cpu_usage() -> dict[str, float]:
    """CPU seconds in user space and in the kernel, and minor page faults, of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"user_seconds": usage.ru_utime, "kernel_seconds": usage.ru_stime, "minor_faults": usage.ru_minflt}


def run_batch(args: argparse.Namespace) -> dict[str, Any]:
    """The memory one batch's forward pass takes: peak RSS growth over one batch, malloc untouched."""
    import torch

    from featx.extraction.backbones import resolve_backbone, resolve_data_config
    from featx.extraction.models import create_backbone, fold_batchnorm
    from featx.extraction.weights import resolve_weights

    backbone = resolve_backbone(args.model)
    size = resolve_data_config(backbone, image_size=args.image_size).size
    model = fold_batchnorm(create_backbone(backbone, resolve_weights("random", backbone), image_size=size)).to(
        memory_format=torch.channels_last
    )
    images = torch.rand(args.batch_size or 32, 3, *size).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(images[:1])
        before = peak_rss_bytes()["peak_rss_main"]
        model(images)
    return {"batch_bytes": peak_rss_bytes()["peak_rss_main"] - before, "batch_size": len(images)}


def run_featx(args: argparse.Namespace) -> dict[str, Any]:
    import featx
    from featx.cache import read_info

    started, usage = time.perf_counter(), cpu_usage()
    path = featx.extract(
        f"imagefolder:{args.folder}",
        backbone=args.model,
        weights="random",
        image_size=args.image_size,
        device=args.device,
        precision=args.precision,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        cache_dir=args.cache_dir,
        force=True,
    )
    wall = time.perf_counter() - started
    info = read_info(path)
    images = sum(s.n_rows for s in info.splits.values())
    seconds = sum(s.seconds for s in info.splits.values())
    return {
        "images": images,
        "seconds": seconds,
        "images_per_second": images / seconds,
        "wall_seconds": wall,
        "device": next(iter(info.splits.values())).device,
        "precision": info.attrs.get("precision"),
        **{name: value - usage[name] for name, value in cpu_usage().items()},
        **peak_rss_bytes(),
    }


def run_naive(args: argparse.Namespace) -> dict[str, Any]:
    """The seed teams' loop: PIL resize per image, ToTensor/Normalize, fp32, default DataLoader."""
    import numpy as np
    import timm
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    files = [Path(line) for line in Path(args.file_list).read_text().splitlines()]
    config = timm.data.resolve_data_config({}, model=timm.create_model(args.model, pretrained=False))
    size = args.image_size or config["input_size"][-1]
    transform = transforms.Compose(
        [transforms.Resize((size, size)), transforms.ToTensor(), transforms.Normalize(config["mean"], config["std"])]
    )

    class Images(Dataset):
        def __len__(self) -> int:
            return len(files)

        def __getitem__(self, index: int) -> Any:
            return transform(Image.open(files[index]).convert("RGB")), 0

    device = torch.device(
        "cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else args.device if args.device != "auto" else "cpu"
    )
    torch.manual_seed(0)
    model = timm.create_model(args.model, pretrained=False, num_classes=0).eval().to(device)
    started = time.perf_counter()
    features = []
    with torch.no_grad():
        for images, _ in DataLoader(Images(), batch_size=args.batch_size or 64, num_workers=args.naive_workers):
            features.append(model(images.to(device)).cpu().numpy())
    result = np.concatenate(features)
    seconds = time.perf_counter() - started
    return {
        "images": len(result),
        "seconds": seconds,
        "images_per_second": len(result) / seconds,
        "wall_seconds": seconds,
        "device": str(device),
        "precision": "fp32",
        **peak_rss_bytes(),
    }


# --------------------------------------------------------------------------- driver


def child(kind: str, args: argparse.Namespace, *, env_overrides: dict[str, str] | None = None, **overrides: Any) -> dict[str, Any]:
    """Run one measurement in a fresh process (so peak memory is its own)."""
    options = {**vars(args), **overrides, "child": kind}
    command = [sys.executable, __file__, "--child-json", json.dumps(options, default=str)]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env_overrides or {})}
    print(f"# {kind}: {overrides.get('label', '')}", file=sys.stderr, flush=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["label"] = overrides.get("label", kind)
    print(json.dumps(result), flush=True)
    return result


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput (the upper one of an even count), labelled with the spread."""
    ordered = sorted(runs, key=lambda r: r["images_per_second"])
    chosen = dict(ordered[len(ordered) // 2])
    if len(runs) > 1:
        chosen["label"] += f" [median of {len(runs)}: {ordered[0]['images_per_second']:,.1f}..{ordered[-1]['images_per_second']:,.1f}]"
    return chosen


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.0f} MiB"


def table(rows: list[dict[str, Any]]) -> str:
    headers = [
        "run",
        "images",
        "images/s",
        "seconds",
        "wall s",
        "user s",
        "kernel s",
        "minor faults",
        "peak RSS main",
        "peak RSS children",
        "device",
    ]
    body = [
        [
            r["label"],
            f"{r['images']:,}",
            f"{r['images_per_second']:,.1f}",
            f"{r['seconds']:.1f}",
            f"{r['wall_seconds']:.1f}",
            f"{r['user_seconds']:.1f}" if "user_seconds" in r else "-",
            f"{r['kernel_seconds']:.1f}" if "kernel_seconds" in r else "-",
            f"{r['minor_faults']:,}" if "minor_faults" in r else "-",
            mib(r["peak_rss_main"]),
            mib(r["peak_rss_children"]),
            r["device"],
        ]
        for r in rows
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *body)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("Examples::")[1]
    )
    parser.add_argument("--model", default="resnet18", help="timm model name [resnet18]")
    parser.add_argument("--image-size", type=int, default=None, help="input edge [the model's]")
    parser.add_argument("--n-images", type=int, default=2000, help="images for the featx throughput runs [2000]")
    parser.add_argument("--naive-images", type=int, default=None, help="images for the naive run [--n-images]; 0 skips it")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda[:i]")
    parser.add_argument("--precision", default="auto", help="featx precision(s), comma-separated: auto, fp32, bf16, fp16")
    parser.add_argument("--batch-size", type=int, default=None, help="both sides [featx: 256 CUDA / 32 CPU; naive: 64]")
    parser.add_argument("--num-workers", type=int, default=None, help="featx decoding workers [featx's default]")
    parser.add_argument("--naive-workers", type=int, default=2, help="naive DataLoader workers [2]")
    parser.add_argument("--memory-sizes", default="10000,50000", help="featx runs for peak memory, comma-separated image counts; '' skips")
    parser.add_argument(
        "--memory-model", default="test_resnet", help="model of the memory runs [test_resnet: memory is about the data path]"
    )
    parser.add_argument("--memory-image-size", type=int, default=64, help="input edge of the memory runs [64]")
    parser.add_argument(
        "--repeat", type=int, default=1, help="measure each throughput run this many times, alternating sides; report the median [1]"
    )
    parser.add_argument(
        "--malloc",
        choices=("on", "off", "both"),
        default="on",
        help="featx's malloc tuning: on (its default), off, or both side by side [on]",
    )
    parser.add_argument("--input", default=None, help="image folder or .zip [../shared/data/cifar10-jpg.zip, else synthetic 32x32 JPEGs]")
    parser.add_argument("--json-out", default=None, help="also write every result here")
    parser.add_argument("--child-json", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child_json:  # one measured run, in a fresh process
        options = argparse.Namespace(**json.loads(args.child_json))
        runner = {"featx": run_featx, "naive": run_naive, "batch": run_batch}[options.child]
        print(json.dumps(runner(options)))
        return

    scratch = Path(tempfile.mkdtemp(prefix="featx-bench-"))
    try:
        sizes = [int(s) for s in args.memory_sizes.split(",") if s.strip()]
        source = resolve_input(args.input, scratch, max([args.n_images, *sizes]))
        runs: dict[str, list[dict[str, Any]]] = {}
        naive_n = args.n_images if args.naive_images is None else args.naive_images
        file_list = scratch / "naive-files.txt"
        if naive_n:
            file_list.write_text("\n".join(str(f) for f in bench_folder(source, naive_n, scratch)[1]))
        folder, _ = bench_folder(source, args.n_images, scratch)
        for _ in range(args.repeat):  # alternate the sides, so that load from elsewhere hits both
            if naive_n:
                label = f"naive reference fp32 ({args.naive_workers} workers)"
                runs.setdefault(label, []).append(child("naive", args, file_list=str(file_list), label=label))
            for precision in [p.strip() for p in args.precision.split(",") if p.strip()]:
                for tuned in {"on": (True,), "off": (False,), "both": (False, True)}[args.malloc]:
                    label = f"featx {precision}" + ("" if args.malloc != "both" else ", malloc tuned" if tuned else ", malloc as it is")
                    runs.setdefault(label, []).append(
                        child(
                            "featx",
                            args,
                            env_overrides={"FEATX_MALLOC_TUNING": "1" if tuned else "0"},
                            folder=str(folder),
                            precision=precision,
                            cache_dir=str(scratch / "cache"),
                            label=label,
                        )
                    )
        results = [median_run(label_runs) for label_runs in runs.values()]
        batch = child("batch", args, env_overrides={"FEATX_MALLOC_TUNING": "0"}, label="one batch") if args.malloc == "both" else None
        memory = []
        for size in sizes:
            memory_folder, _ = bench_folder(source, size, scratch)
            memory.append(
                child(
                    "featx",
                    args,
                    folder=str(memory_folder),
                    model=args.memory_model,
                    image_size=args.memory_image_size,
                    precision=args.precision.split(",")[0],
                    cache_dir=str(scratch / "cache"),
                    label=f"featx memory, {size:,} images",
                )
            )
            shutil.rmtree(memory_folder, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    import timm
    import torch

    where = args.input or (SHARED_ZIP if SHARED_ZIP.exists() else "synthetic 32x32 JPEGs")
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    print(
        f"featx extract benchmark, {_dt.date.today().isoformat()}, {cpu_name()} ({os.cpu_count()} CPUs){gpu}, "
        f"python {platform.python_version()}, torch {torch.__version__}, timm {timm.__version__}"
    )
    print(f"model {args.model} at {args.image_size or 'its own size'}, batch {args.batch_size or 'default'}; input {where}")
    print(table(results))
    if batch is not None:
        default = next(r for r in results if "malloc as it is" in r["label"])
        tuned = next(r for r in results if "malloc tuned" in r["label"])
        print(
            f"malloc tuning: {tuned['images_per_second'] / default['images_per_second']:.2f}x the images/s; peak RSS "
            f"{mib(tuned['peak_rss_main'] - default['peak_rss_main'])} more, against {mib(batch['batch_bytes'])} for one batch "
            f"of {batch['batch_size']} (its forward pass)"
        )
    naive = next((r for r in results if r["label"].startswith("naive")), None)
    if naive:
        for run in results:
            if run is not naive:
                print(
                    f"speed-up of {run['label'].split(' [')[0]} over the naive reference: {run['images_per_second'] / naive['images_per_second']:.2f}x"
                )
    if memory:
        print()
        print(f"memory ({args.memory_model} at {args.memory_image_size}):")
        print(table(memory))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"throughput": results, "all_runs": runs, "memory": memory}, indent=2))


if __name__ == "__main__":
    main()
