"""The GPU check (`benchmarks/gpu_check.sh`) runs once on a lent accelerator whose minutes
are few: its `--smoke` run (the same steps, tiny, on the CPU) must go through here first,
and a failing step must show in its exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def gpu_check(out: Path, python: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OUT": str(out), "PYTHON": python}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_the_gpu_check_runs_every_step_on_a_cpu(tmp_path: Path) -> None:
    done = gpu_check(tmp_path, sys.executable, "--smoke")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "done: 0 step(s) failed" in (tmp_path / "log.txt").read_text()
    for dim in (24, 48):
        figures = json.loads((tmp_path / f"fit_{dim}.json").read_text())
        assert figures["shape"] == [1500, dim] and set(figures["classifiers"]) == {"linearsvc", "logreg", "knn"}
        assert all(entry["featx"]["solver"] == "torch" for entry in figures["classifiers"].values())
    for model, dim in (("resnet50", 2048), ("vgg16", 4096)):
        figures = json.loads((tmp_path / f"throughput_{model}.json").read_text())
        assert figures["n_images"] == 8 and figures["feature_dim"] == dim and figures["images_per_second"] > 0


def test_the_gpu_check_counts_its_failed_steps(tmp_path: Path) -> None:
    done = gpu_check(tmp_path, "false", "--smoke")
    # the test tier, two fits and two throughput runs fail; the machine summary is not a step
    assert done.returncode == 5, done.stdout[-4000:]
    assert (tmp_path / "log.txt").read_text().count("FAILED (status 1)") == 5
