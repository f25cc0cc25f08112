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
