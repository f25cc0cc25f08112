"""The report in a real browser: headless Chromium renders it, and the DOM and a screenshot are checked.

Skipped when no Chromium is installed (``.ci/run`` installs it where it can).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import featx
from tests.browser import dump_dom, find_chromium, screenshot
from tests.reportdata import two_backbones

pytestmark = pytest.mark.browser

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (install the chromium package)")


@pytest.fixture
def page() -> Path:
    two_backbones()
    return featx.report().html


def attribute(dom: str, name: str) -> str:
    match = re.search(rf'<body[^>]* {name}="([^"]*)"', dom)
    assert match, f"{name} not on <body>: the probe did not run"
    return match.group(1)


@needs_chromium
def test_the_browser_decodes_every_plot_and_nothing_overflows_at_desktop_width(page: Path) -> None:
    dom = dump_dom(CHROMIUM, page, width=1280)
    assert attribute(dom, "data-probed") == "yes"
    n_images = int(attribute(dom, "data-images"))
    assert n_images == 6 * 2 + 2 * 2
    natural = [int(w) for w in re.findall(r'data-natural-width="(\d+)"', dom)]
    rendered = [int(w) for w in re.findall(r'data-rendered-width="(\d+)"', dom)]
    assert len(natural) == n_images and min(natural) > 300  # every PNG decoded
    viewport = int(attribute(dom, "data-viewport-width"))
    assert int(attribute(dom, "data-scroll-width")) <= viewport  # no horizontal scrolling of the page
    assert max(rendered) <= 1240 and min(rendered[:n_images]) >= 250  # plots sized to the column, not shrunk to nothing
    # the comparison table as the browser parsed it: 2 rows x 3 classifiers, one best cell
    table = re.search(r'<table class="comparison".*?</table>', dom, re.S)
    assert table
    assert len(re.findall(r"data-test-accuracy=", table.group(0))) == 6 and 'data-best="true"' in table.group(0)
    assert re.findall(r'data-backbone="([^"]+)"', table.group(0)) == ["resnet50.tv_in1k", "vgg16"]
    assert attribute(dom, "data-banner-colour") == "rgb(179, 38, 30)"


@needs_chromium
def test_a_screenshot_shows_the_page_with_the_random_weights_banner(page: Path, tmp_path: Path) -> None:
    shot = screenshot(CHROMIUM, page, tmp_path / "report.png", width=1280, height=2000)
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape == (2000, 1280, 3)
    assert image.std() > 20 and len(np.unique(image.reshape(-1, 3), axis=0)) > 200  # not blank
    top = image[:400]
    banner = np.all(np.abs(top.astype(int) - (179, 38, 30)) <= 2, axis=-1)
    assert banner.sum() > 50_000  # the red banner near the top: about 1,200 px wide, several lines tall
    highlighted = np.all(np.abs(image.astype(int) - (255, 241, 184)) <= 2, axis=-1)
    assert highlighted.sum() > 5_000  # the best cell's yellow


@needs_chromium
def test_runs_are_collapsed_the_contents_jump_to_them_and_the_evidence_renders(tmp_path: Path) -> None:
    """Issue 13 and 16: tied cells marked, the curve plot and the error strips decoded, the
    runs collapsed by default, and a link from the contents opens the run it jumps to."""
    from featx.extraction.thumbnails import row_thumbnails
    from featx.fitting.config import FitConfig
    from featx.fitting.curves import CurveConfig, curve
    from tests.reportdata import digits_backbone

    two_backbones()
    digits = digits_backbone()
    curve(digits, CurveConfig(fit=FitConfig(clf="logreg", grid={"C": [0.1, 1.0]}, cv=3), shots="1,5,full", repeats=2), dataset=None)
    page = featx.report(thumbnails=row_thumbnails).html
    dom = dump_dom(CHROMIUM, page, width=1280)
    assert attribute(dom, "data-probed") == "yes"
    n_runs = int(attribute(dom, "data-runs"))
    assert n_runs == 8 and attribute(dom, "data-open-runs") == ""  # every run collapsed as the page opens
    toc = re.search(r'<nav class="toc".*?</nav>', dom, re.S)
    assert toc
    targets = re.findall(r'class="toc-run" href="#([^"]+)"', toc.group(0))
    assert len(targets) == n_runs and all('<details class="run-details' in dom and f'id="{t}"' in dom for t in targets)
    # tied cells are marked in the comparison tables
    assert 'data-tied="true"' in dom and "tied with best" in dom
    # the curve plot and the thumbnails decoded
    curves = re.search(r'<section id="curves-[^"]*" data-curves="true">.*?</section>', dom, re.S)
    assert curves and int(re.findall(r'data-natural-width="(\d+)"', curves.group(0))[0]) > 300
    strips = re.findall(r'<div class="strip" data-error-strip="true">.*?</div>\s*(?=<div class="strip"|<details|<h5|$)', dom, re.S)
    thumbs = re.findall(r'<figure class="thumb"><img [^>]*data-natural-width="(\d+)" data-rendered-width="(\d+)"', dom)
    assert strips and thumbs and all(int(n) == 64 and int(r) == 64 for n, r in thumbs)
    assert int(attribute(dom, "data-scroll-width")) <= int(attribute(dom, "data-viewport-width"))
    # opened at a run's anchor, the page opens that run (and no other)
    opened = dump_dom(CHROMIUM, page, width=1280, fragment=targets[-1])
    assert attribute(opened, "data-open-runs") == targets[-1]
