"""Stage one's model throughput on in-memory uint8 batches, as CIFAR-10 reaches the device.

The images are random uint8 32 x 32 RGB arrays (throughput does not depend on the pixels,
nor on the weights: random ones), sent to the device in pinned batches, resized and
normalised there, and run through the frozen backbone under the chosen precision by
featx's own pure extraction function (``featx.extraction.engine.extract_features``), the
same path ``featx extract`` takes for CIFAR. Nothing is written; a first batch warms up.

    PYTHONPATH=. python3 benchmarks/throughput_bench.py --model resnet50 --image-size 224 --n-images 60000 --device cuda --precision bf16
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--n-images", type=int, default=60_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    import torch

    from featx.core.devices import describe_device, resolve_device
    from featx.extraction.backbones import resolve_backbone, resolve_data_config
    from featx.extraction.batches import PixelBatch, PixelGroup
    from featx.extraction.devices import resolve_precision
    from featx.extraction.engine import extract_features
    from featx.extraction.models import create_backbone, fold_batchnorm
    from featx.extraction.preprocess import DevicePreprocess
    from featx.extraction.weights import resolve_weights

    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    backbone = resolve_backbone(args.model)
    config = resolve_data_config(backbone, image_size=args.image_size)
    model = fold_batchnorm(create_backbone(backbone, resolve_weights("random", backbone), image_size=config.size))
    model = model.to(device).to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    preprocess = DevicePreprocess(config, device)
    pixels = torch.from_numpy(np.random.default_rng(0).integers(0, 256, size=(args.batch_size, 32, 32, 3), dtype=np.uint8))
    if device.type == "cuda":
        pixels = pixels.pin_memory()

    def batches(n_images: int) -> list[PixelBatch]:
        out = []
        for start in range(0, n_images, args.batch_size):
            size = min(args.batch_size, n_images - start)
            out.append(PixelBatch(start=start, size=size, groups=[PixelGroup(rows=torch.arange(size), pixels=pixels[:size])]))
        return out

    for _ in extract_features(model, batches(args.batch_size * 2), preprocess=preprocess, precision=precision):
        pass  # warm-up: cuDNN's algorithm search, allocator
    work = batches(args.n_images)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    dim = 0
    for features in extract_features(model, work, preprocess=preprocess, precision=precision):
        dim = features.shape[1]
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    figures = {
        "model": args.model,
        "image_size": args.image_size,
        "n_images": args.n_images,
        "batch_size": args.batch_size,
        "device": describe_device(device),
        "precision": precision,
        "feature_dim": dim,
        "seconds": seconds,
        "images_per_second": args.n_images / seconds,
    }
    print(json.dumps(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
