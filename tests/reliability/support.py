"""Helpers of the reliability suite: the real ``featx`` command in a subprocess (always
with a timeout, so that a hang fails the test instead of blocking it), the one-line error
contract, and processes paused and resumed at fault points (:mod:`featx.core.faults`)."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 180
#: a tiny, fast extraction: 40 digits per split, batches of 16 (three per split)
TINY_DATA = "digits"
TINY = {"weights": "random", "image_size": 32, "limit": 40, "batch_size": 16}  # ExtractConfig fields and extract's options
TINY_ARGS = [
    "--backbone",
    "test_resnet",
    "--weights",
    "random",
    "--image-size",
    "32",
    "--dataset",
    "digits",
    "--limit",
    "40",
    "--batch-size",
    "16",
]


def featx_env(fault: str | None = None, **extra: str) -> dict[str, str]:
    """The test's environment (its cache and reports dirs) for a featx subprocess."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **extra}
    env.pop("FEATX_FAULT", None)
    if fault:
        env["FEATX_FAULT"] = fault
    return env


def featx(*args: str, fault: str | None = None, timeout: float = TIMEOUT, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m featx ARGS`` to the end (a hang past ``timeout`` fails the test)."""
    return subprocess.run(
        [sys.executable, "-m", "featx", *args], env=featx_env(fault, **extra), capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str] | object, *expected: str) -> str:
    """Exit status 2, exactly one ``featx: error:`` line holding every ``expected`` text, no traceback."""
    returncode = getattr(result, "returncode", getattr(result, "exit_code", None))
    stderr = str(result.stderr)
    assert returncode == 2, f"exit status {returncode}\n{stderr}"
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("featx: error:")]
    assert len(errors) == 1, stderr
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


class Running:
    """A ``python -m featx ARGS`` started in the background: stdout to a file, stderr lines
    collected by a thread so that a test can wait for one (:meth:`wait_for`)."""

    def __init__(self, *args: str, fault: str | None = None) -> None:
        self._stdout = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "featx", *args], env=featx_env(fault), stdout=self._stdout, stderr=subprocess.PIPE, text=True
        )
        self._lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._queue.put(line)
        self._queue.put(None)

    def wait_stopped(self, timeout: float = TIMEOUT) -> None:
        """Wait until the process has stopped itself (SIGSTOP at a fault point)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"exited {self.process.returncode} before its fault point"
            state = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "T":
                return
            time.sleep(0.05)
        raise AssertionError(f"process {self.process.pid} did not reach its fault point in {timeout} s")

    def wait_for(self, text: str, timeout: float = TIMEOUT) -> None:
        """Block until a stderr line containing ``text`` arrives (fails on timeout or end of output)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line with {text!r} in {timeout} s: {''.join(self._lines)}") from None
            if line is None:
                raise AssertionError(f"output ended without {text!r}: {''.join(self._lines)}")
            self._lines.append(line)
            if text in line:
                return

    def finish(self, timeout: float = TIMEOUT) -> tuple[int, str, str]:
        """Resume the process if it is stopped, wait for it: ``(exit status, stdout, stderr)``."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
        returncode = self.process.wait(timeout=timeout)
        self._thread.join(timeout=timeout)
        while not self._queue.empty():
            line = self._queue.get()
            if line is not None:
                self._lines.append(line)
        self._stdout.seek(0)
        return returncode, self._stdout.read(), "".join(self._lines)

    def kill(self) -> None:
        """Clean up after a failed test."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@contextlib.contextmanager
def processes() -> Iterator[list[Running]]:
    """A list to put :class:`Running` processes in; whatever still runs at the end is killed."""
    started: list[Running] = []
    try:
        yield started
    finally:
        for running in started:
            running.kill()


def assert_same_features(path: Path, reference: Path) -> None:
    """Both splits of ``path`` equal ``reference``'s exactly."""
    from featx.cache import load_features

    for split in ("train", "test"):
        x, y, _ = load_features(path, split)
        x_ref, y_ref, _ = load_features(reference, split)
        np.testing.assert_array_equal(x, x_ref)
        np.testing.assert_array_equal(y, y_ref)
