"""Headless Chromium for the report checks: find it, dump a page's DOM, take a screenshot.

Used by ``tests/test_report_browser.py`` and ``docs/screenshot.py``. Chromium is looked
up as ``$FEATX_CHROMIUM``, then ``chromium``, ``chromium-browser``, ``google-chrome`` on
the PATH; without one the browser tests skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# offline, no profile, no first-run or background traffic: it only renders the file it is given
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)

#: appended to a copy of the page by :func:`dump_dom`: records what the browser made of it as attributes
PROBE = """<script>
window.addEventListener("load", () => {
  const body = document.body, images = Array.from(document.images);
  // the runs are collapsed <details>: count them as the page opened, then open every one to measure what they hold
  const runs = Array.from(document.querySelectorAll("details.run-details"));
  body.setAttribute("data-runs", String(runs.length));
  body.setAttribute("data-open-runs", runs.filter((d) => d.open).map((d) => d.id).join(" "));
  for (const details of document.querySelectorAll("details")) details.open = true;
  for (const img of images) {
    img.setAttribute("data-natural-width", String(img.naturalWidth));
    img.setAttribute("data-rendered-width", String(Math.round(img.getBoundingClientRect().width)));
  }
  body.setAttribute("data-images", String(images.length));
  body.setAttribute("data-viewport-width", String(window.innerWidth));
  body.setAttribute("data-scroll-width", String(document.documentElement.scrollWidth));
  for (const [i, table] of Array.from(document.querySelectorAll("table.comparison")).entries()) {
    table.setAttribute("data-rendered-width", String(Math.round(table.getBoundingClientRect().width)));
  }
  const banner = document.getElementById("random-weights-banner");
  if (banner) body.setAttribute("data-banner-colour", getComputedStyle(banner).backgroundColor);
  body.setAttribute("data-probed", "yes");
});
</script>
"""


def find_chromium() -> str | None:
    """The Chromium executable, or None."""
    explicit = os.environ.get("FEATX_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(chromium: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="featx-chromium-") as profile:
        return subprocess.run(
            [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
            env={**os.environ, "HOME": profile},
        )


def dump_dom(chromium: str, page: Path, *, width: int = 1280, height: int = 2000, fragment: str = "") -> str:
    """The DOM of ``page`` (opened at ``#fragment`` when given) after the browser loaded it, with :data:`PROBE`'s attributes."""
    with tempfile.TemporaryDirectory(prefix="featx-probe-") as folder:
        probed = Path(folder) / "probed.html"
        probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
        done = _run(
            chromium,
            f"--window-size={width},{height}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            probed.as_uri() + (f"#{fragment}" if fragment else ""),
        )
    return done.stdout


def screenshot(chromium: str, page: Path, out: Path, *, width: int = 1280, height: int = 2000) -> Path:
    """A ``width`` x ``height`` PNG of the top of ``page``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(chromium, f"--window-size={width},{height}", "--virtual-time-budget=10000", f"--screenshot={out}", page.resolve().as_uri())
    return out
