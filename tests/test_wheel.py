"""The package as a user installs it: a wheel holds the demo pipeline and the report
template, and ``featx demo`` works from it (no checkout of the repository needed)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("featx-*.whl")
    return path


def test_the_wheel_holds_the_demo_pipeline_and_the_template(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"featx/runner/pipelines/demo.yaml", "featx/reporting/templates/report.html.j2", "featx/py.typed"} <= names
    assert not any(name.startswith(("tests/", "benchmarks/", "pipelines/")) for name in names)


@pytest.mark.timeout(1800)  # the whole demo: minutes, more on a busy machine
def test_featx_demo_runs_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    """Installed on its own (dependencies from this environment), run far from the checkout."""
    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "FEATX_CACHE_DIR": str(work / "features"), "FEATX_REPORTS_DIR": str(work / "reports")}
    where = subprocess.run([sys.executable, "-c", "import featx; print(featx.__file__)"], capture_output=True, text=True, env=env, cwd=work)
    assert where.stdout.startswith(str(target)), where.stdout + where.stderr  # the wheel's featx, not the checkout's
    demo = subprocess.run([sys.executable, "-m", "featx", "-q", "demo"], capture_output=True, text=True, env=env, cwd=work, timeout=1700)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert demo.stdout.strip().splitlines()[-1] == str(work / "reports" / "index.html")
    assert (work / "reports" / "index.html").is_file()
