"""Synthetic shapes: 1,800 colour 64 x 64 images of six shapes, drawn on the spot, no download.

Each image is one shape (circle, ring, square, triangle, star, cross) of a random colour,
size, rotation and position on a random two-colour gradient with pixel noise. Telling
them apart takes what ImageNet features have and raw pixels lack: shape, whatever the
colour and the place. Made for ``featx demo``, where a pretrained backbone, its
random-weights twin and the raw pixels are compared offline (see ``benchmarks/RESULTS.md``).

The images are drawn deterministically (a fixed seed; 1,200 train, 600 test, classes
balanced) in about a second; the fingerprint is the sha256 of the pixels and labels, so a
Pillow or numpy that drew them differently would give other cache keys, never other
features under the same key.
"""

from __future__ import annotations

import functools
import hashlib
import math

import numpy as np

from featx.extraction.datasets.base import DatasetRequest, ImageDataset, ImageSplit

CLASSES = ("circle", "ring", "square", "triangle", "star", "cross")
SIZE = 64
N_TRAIN, N_TEST = 1200, 600
#: bumped when the drawing changes
GENERATOR = 1
_SUPERSAMPLE = 3


def load_shapes(request: DatasetRequest) -> ImageDataset:
    """The shapes data set: its fixed train and test splits (``request`` needs nothing)."""
    pixels, labels, fingerprint = _draw_all()
    return ImageDataset(
        name="shapes",
        class_names=CLASSES,
        splits={
            "train": ImageSplit(labels=labels[:N_TRAIN], pixels=pixels[:N_TRAIN]),
            "test": ImageSplit(labels=labels[N_TRAIN:], pixels=pixels[N_TRAIN:]),
        },
        identity={"dataset": "shapes", "format": "generated", "generator": GENERATOR, "fingerprint": fingerprint},
        location="featx.extraction.datasets.shapes (drawn, not read)",
    )


@functools.lru_cache(maxsize=1)
def _draw_all() -> tuple[np.ndarray, np.ndarray, str]:
    rng = np.random.default_rng(20261129)
    n = N_TRAIN + N_TEST
    labels = np.arange(n, dtype=np.int64) % len(CLASSES)
    pixels = np.stack([draw_shape(int(label), rng) for label in labels])
    fingerprint = hashlib.sha256(pixels.tobytes() + labels.tobytes()).hexdigest()
    pixels.setflags(write=False)
    return pixels, labels, fingerprint


def draw_shape(label: int, rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """One ``(size, size, 3)`` uint8 image of shape ``CLASSES[label]``."""
    from PIL import Image, ImageDraw

    big = size * _SUPERSAMPLE
    low, high = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = np.linspace(0.0, 1.0, size)
    t = ramp[None, :, None] if rng.random() < 0.5 else ramp[:, None, None]
    background = low * (1 - t) + high * t
    colour = rng.integers(0, 256, 3)
    while np.abs(colour - (low + high) / 2).sum() < 150:  # visible against the background
        colour = rng.integers(0, 256, 3)
    radius = big * rng.uniform(0.16, 0.32)
    cx, cy = rng.uniform(radius, big - radius, size=2)
    turn = rng.uniform(0, 2 * math.pi)
    mask = Image.new("L", (big, big))
    draw = ImageDraw.Draw(mask)
    name = CLASSES[label]
    if name == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=255)
    elif name == "ring":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=255, width=int(radius * 0.35))
    elif name == "square":
        draw.polygon(_star(cx, cy, radius * 1.1, 4, turn), fill=255)
    elif name == "triangle":
        draw.polygon(_star(cx, cy, radius * 1.2, 3, turn), fill=255)
    elif name == "star":
        draw.polygon(_star(cx, cy, radius * 1.2, 5, turn, inner=0.45), fill=255)
    else:  # cross: two bars
        half = radius * 0.35
        for angle in (turn, turn + math.pi / 2):
            dx, dy = math.cos(angle) * radius, math.sin(angle) * radius
            px, py = -math.sin(angle) * half, math.cos(angle) * half
            draw.polygon(
                [(cx - dx + px, cy - dy + py), (cx + dx + px, cy + dy + py), (cx + dx - px, cy + dy - py), (cx - dx - px, cy - dy - py)],
                fill=255,
            )
    alpha = np.asarray(mask.resize((size, size), Image.Resampling.BOX), dtype=np.float64)[:, :, None] / 255.0  # antialiased edges
    image = background * (1 - alpha) + colour * alpha + rng.normal(0.0, 12.0, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _star(cx: float, cy: float, radius: float, corners: int, turn: float, inner: float | None = None) -> list[tuple[float, float]]:
    """A regular polygon (or, with ``inner``, a star whose inner corners are at ``inner * radius``)."""
    steps = corners * (2 if inner else 1)
    points = []
    for i in range(steps):
        r = radius * inner if inner and i % 2 else radius
        angle = turn + 2 * math.pi * i / steps
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    return points
