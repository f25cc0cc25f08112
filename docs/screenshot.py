"""Render a report in headless Chromium and save the top of it as docs/report.png.

    PYTHONPATH=. python docs/screenshot.py reports/index.html [docs/report.png]

The image is cut to the first HEIGHT pixels of a 1280 px wide window and reduced to a
256-colour palette, which keeps it under 300 KB.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PIL import Image

from tests.browser import find_chromium, screenshot

WIDTH, HEIGHT = 1280, 1500


def main(page: Path, out: Path) -> None:
    chromium = find_chromium()
    if chromium is None:
        sys.exit("no Chromium found (install the chromium package, or set FEATX_CHROMIUM)")
    with tempfile.TemporaryDirectory() as folder:
        shot = screenshot(chromium, page, Path(folder) / "full.png", width=WIDTH, height=HEIGHT)
        image = Image.open(shot).convert("RGB")
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)
    print(f"{out}: {out.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2] if len(sys.argv) > 2 else "docs/report.png"))
