"""A fitted run as one TorchScript module: uint8 images in, class scores out.

:func:`compile_classifier` puts together, as a ``torch.jit.ScriptModule`` that plain
torch loads (``torch.jit.load``) without featx or timm:

* the preprocessing of :class:`~featx.extraction.preprocess.DevicePreprocess` written
  again in TorchScript (the geometry of :func:`~featx.extraction.dataconfig.plan_geometry`
  for any input size, antialiased resize, crop or pad, grey to RGB, normalisation);
* the frozen backbone, traced at the model's input size (the preprocessing always gives
  that size);
* the head (:mod:`featx.core.heads`): one linear layer (with a softmax for
  probabilities), or the k-NN vote over the stored training rows.

The module computes in float32. Its forward takes ``(n, height, width, channels)`` uint8
(channels 1 or 3; one ``(height, width, channels)`` image also works) and returns
``(n, n_classes)`` scores; ``classify`` also returns the labels, ``features`` the
backbone's features. Images larger than the model input are shrunk by torch's
antialiased resize here, where ``featx extract`` and ``featx predict`` use timm's PIL
transform: on such images the scores differ by a few grey levels' worth.
"""

# No ``from __future__ import annotations`` here: TorchScript reads the modules' attribute
# and method annotations at run time, and cannot resolve them as strings.

import math
import warnings
from typing import Any

import torch
import torch.nn.functional as F

from featx.core.heads import PROBABILITY, Head, LinearHead, NeighborsHead
from featx.extraction.dataconfig import DataConfig

# torch modes matching PIL's filters, as featx.extraction.preprocess uses them
_TORCH_MODE = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest-exact"}


class ScriptedPreprocess(torch.nn.Module):
    """uint8 ``(n, h, w, 1|3)`` -> model input ``(n, 3, H, W)`` float32, for any ``h`` x ``w``."""

    scale: torch.Tensor
    shift: torch.Tensor
    mean_fill: torch.Tensor

    def __init__(self, config: DataConfig) -> None:
        super().__init__()
        self.out_h, self.out_w = config.size
        self.crop_pct = float(config.crop_pct)
        self.crop_mode = config.crop_mode
        self.mode = _TORCH_MODE[config.interpolation]
        self.antialias = self.mode != "nearest-exact"
        std = torch.tensor(config.std, dtype=torch.float32)
        mean = torch.tensor(config.mean, dtype=torch.float32)
        self.register_buffer("scale", (1.0 / (255.0 * std)).view(1, 3, 1, 1))
        self.register_buffer("shift", (-mean / std).view(1, 3, 1, 1))
        self.register_buffer("mean_fill", torch.tensor([float(round(255 * m)) for m in config.mean]).view(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.dim() == 3:
            pixels = pixels.unsqueeze(0)
        if pixels.dtype != torch.uint8 or pixels.dim() != 4 or (pixels.shape[3] != 1 and pixels.shape[3] != 3):
            raise ValueError("expected uint8 images shaped (n, height, width, 1 or 3)")
        images = pixels.permute(0, 3, 1, 2)
        height, width = int(images.shape[2]), int(images.shape[3])
        resize_h, resize_w, top, left = self.geometry(height, width)
        if resize_h == height and resize_w == width:
            resized = images.float()
        elif images.device.type == "cpu":  # uint8 resize: PIL's rounding, as on the CPU in featx
            resized = F.interpolate(images, size=[resize_h, resize_w], mode=self.mode, antialias=self.antialias).float()
        else:
            resized = F.interpolate(images.float(), size=[resize_h, resize_w], mode=self.mode, antialias=self.antialias)
            resized = resized.round().clamp(0.0, 255.0)
        placed = self.crop_or_pad(resized, top, left)
        if placed.shape[1] == 1:
            placed = placed.expand(-1, 3, -1, -1)
        return (placed * self.scale + self.shift).contiguous()

    @torch.jit.export
    def geometry(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(resize_h, resize_w, top, left)`` as :func:`featx.extraction.dataconfig.plan_geometry`."""
        # int() around floor and round: TorchScript's round() returns a float
        scale_h = int(math.floor(self.out_h / self.crop_pct))  # noqa: RUF046
        scale_w = int(math.floor(self.out_w / self.crop_pct))  # noqa: RUF046
        if self.crop_mode == "squash":
            resize_h, resize_w = scale_h, scale_w
        elif self.crop_mode == "center" and scale_h == scale_w:
            if width <= height:
                resize_h, resize_w = int(scale_h * height / width), scale_h
            else:
                resize_h, resize_w = scale_h, int(scale_h * width / height)
        else:
            ratio_h, ratio_w = height / scale_h, width / scale_w
            ratio = max(ratio_h, ratio_w) if self.crop_mode == "border" else min(ratio_h, ratio_w)
            resize_h, resize_w = max(1, int(round(height / ratio))), max(1, int(round(width / ratio)))  # noqa: RUF046
        return resize_h, resize_w, self.offset(resize_h, self.out_h), self.offset(resize_w, self.out_w)

    def offset(self, image: int, crop: int) -> int:
        if crop > image:
            return -((crop - image) // 2)
        return int(round((image - crop) / 2.0))  # noqa: RUF046

    def crop_or_pad(self, images: torch.Tensor, top: int, left: int) -> torch.Tensor:
        out_h, out_w = self.out_h, self.out_w
        height, width = int(images.shape[2]), int(images.shape[3])
        if top >= 0 and left >= 0:
            return images[:, :, top : top + out_h, left : left + out_w]
        pad_with_mean = self.crop_mode == "border"
        if pad_with_mean and images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        canvas = torch.zeros((images.shape[0], images.shape[1], out_h, out_w), dtype=images.dtype, device=images.device)
        if pad_with_mean:
            canvas = canvas + self.mean_fill
        src_top, dst_top = max(top, 0), max(-top, 0)
        src_left, dst_left = max(left, 0), max(-left, 0)
        rows, cols = min(height - src_top, out_h - dst_top), min(width - src_left, out_w - dst_left)
        canvas[:, :, dst_top : dst_top + rows, dst_left : dst_left + cols] = images[
            :, :, src_top : src_top + rows, src_left : src_left + cols
        ]
        return canvas


class ScriptedLinearHead(torch.nn.Module):
    """:class:`~featx.core.heads.LinearHead`: (unit rows), one linear layer, (softmax)."""

    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, head: LinearHead) -> None:
        super().__init__()
        self.normalize = bool(head.normalize)
        self.softmax = head.score == PROBABILITY
        self.register_buffer("weight", torch.tensor(head.weight, dtype=torch.float32))
        self.register_buffer("bias", torch.tensor(head.bias, dtype=torch.float32))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features.float()
        if self.normalize:
            x = _unit_rows(x)
        scores = F.linear(x, self.weight, self.bias)
        return torch.softmax(scores, dim=1) if self.softmax else scores


class ScriptedNeighborsHead(torch.nn.Module):
    """:class:`~featx.core.heads.NeighborsHead`: scikit-learn's k-NN ``predict_proba``."""

    scale: torch.Tensor
    shift: torch.Tensor
    projection: torch.Tensor
    offset: torch.Tensor
    points: torch.Tensor
    points_unit: torch.Tensor
    train_labels: torch.Tensor

    def __init__(self, head: NeighborsHead) -> None:
        super().__init__()
        self.normalize = bool(head.normalize)
        self.project = head.projection is not None
        self.n_classes = int(head.n_classes)
        self.k = int(head.n_neighbors)
        self.distance_weights = head.weights == "distance"
        self.metric = head.metric
        dim = len(head.scale)
        projection = head.projection if head.projection is not None else torch.zeros((0, dim))
        offset = head.offset if head.offset is not None else torch.zeros(0)
        self.register_buffer("scale", torch.tensor(head.scale, dtype=torch.float32))
        self.register_buffer("shift", torch.tensor(head.shift, dtype=torch.float32))
        self.register_buffer("projection", torch.as_tensor(projection, dtype=torch.float32))
        self.register_buffer("offset", torch.as_tensor(offset, dtype=torch.float32))
        train = torch.tensor(head.train, dtype=torch.float32)
        self.register_buffer("points", train)  # not "train": that is nn.Module.train()
        self.register_buffer("points_unit", _unit_rows(train) if head.metric == "cosine" else torch.zeros((0, train.shape[1])))
        self.register_buffer("train_labels", torch.tensor(head.train_labels, dtype=torch.int64))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features.float()
        if self.normalize:
            x = _unit_rows(x)
        x = x * self.scale + self.shift
        if self.project:
            x = F.linear(x, self.projection, self.offset)
        if self.metric == "cosine":
            distances = 1.0 - _unit_rows(x) @ self.points_unit.T
        elif self.metric == "manhattan":
            distances = torch.cdist(x, self.points, p=1.0)
        else:
            distances = torch.cdist(x, self.points, p=2.0, compute_mode="donot_use_mm_for_euclid_dist")
        nearest, index = torch.topk(distances, self.k, dim=1, largest=False, sorted=True)
        labels = self.train_labels[index]
        if self.distance_weights:
            zero = nearest == 0
            votes = torch.where(zero.any(dim=1, keepdim=True), zero.float(), 1.0 / nearest)
        else:
            votes = torch.ones_like(nearest)
        scores = torch.zeros((x.shape[0], self.n_classes), dtype=torch.float32, device=x.device)
        scores = scores.scatter_add(1, labels, votes)
        total = scores.sum(dim=1, keepdim=True)
        return scores / torch.where(total == 0, torch.ones_like(total), total)


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows divided by their Euclidean length; zero rows stay zero (scikit-learn's ``normalize``)."""
    norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    return x / torch.where(norms == 0, torch.ones_like(norms), norms)


class ScriptedClassifier(torch.nn.Module):
    """Preprocessing, backbone and head: uint8 images -> class scores."""

    def __init__(
        self, preprocess: ScriptedPreprocess, backbone: torch.nn.Module, head: torch.nn.Module, class_names: list[str], score: str
    ) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.backbone = backbone
        self.head = head
        self.class_names: list[str] = list(class_names)
        self.score_kind: str = score

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(n, n_classes)`` scores: probabilities, or decision values (see ``score_kind``)."""
        return self.head(self.features(images))

    @torch.jit.export
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's ``(n, D)`` features."""
        return self.backbone(self.preprocess(images)).flatten(1).float()

    @torch.jit.export
    def classify(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(labels, scores)``: each image's class index (the highest score, the first on ties) and its scores."""
        scores = self.forward(images)
        return scores.argmax(dim=1), scores


def compile_classifier(model: torch.nn.Module, config: DataConfig, head: Head, class_names: list[str]) -> Any:
    """The TorchScript module of a backbone (on the CPU, float32), its data config and a head.

    Args:
        model: the frozen backbone, giving ``(n, D)`` features for ``(n, 3, H, W)`` input.
        config: its data config.
        head: the folded classifier.
        class_names: the run's class names (kept in the module as ``class_names``).

    Returns:
        A ``torch.jit.ScriptModule`` (save it with ``torch.jit.save``).
    """
    model = model.to("cpu", torch.float32).eval()
    height, width = config.size
    example = torch.zeros((2, 3, height, width), dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notices and tracer warnings on shape asserts
        traced = torch.jit.trace(model, example, check_trace=False)
        scripted_head = ScriptedLinearHead(head) if isinstance(head, LinearHead) else ScriptedNeighborsHead(head)
        module = ScriptedClassifier(ScriptedPreprocess(config), traced, scripted_head, class_names, head.score)
        return torch.jit.script(module.eval())


def save_scripted(module: Any, path: str) -> None:
    """``torch.jit.save`` without its deprecation notice."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(module, path)
