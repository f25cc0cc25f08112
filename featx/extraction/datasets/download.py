"""Fetch a data set file from its canonical address, verified by checksum, or say where to put it.

Downloads go to ``<dest>.download`` beside the target, are checked against the published
MD5 (the checksum the data set authors and torchvision publish), and are renamed into
place only when they match, so a broken or interrupted download never passes for data.
Nothing is downloaded when ``download=False``; then, as when there is no network, the
error names the file, the address and the folder to put it in.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from featx.core.console import progress
from featx.core.errors import DatasetError

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30.0
BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class Resource:
    """One downloadable file: its name on disk, where it is published, its MD5."""

    filename: str
    urls: Sequence[str]
    md5: str


def file_md5(path: Path) -> str:
    """Hex MD5 of a file, read in 1 MiB blocks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(resource: Resource, folder: Path, *, download: bool, what: str, alternative: str = "") -> Path:
    """Return ``folder/resource.filename``, downloading and verifying it when missing.

    Args:
        resource: the file to fetch.
        folder: where it lives (created when a download starts).
        download: whether a missing file may be downloaded.
        what: the data set's name, for messages ("cifar10").
        alternative: a hint naming another accepted form, e.g. an extracted folder.

    Returns:
        The path of the verified file.

    Raises:
        DatasetError: the file is missing and cannot be downloaded (offline, refused,
            checksum mismatch); the message says where to put it.
    """
    target = folder / resource.filename
    if target.is_file():
        return target
    place = f"put {resource.filename} (from {resource.urls[0]}) at {target}{alternative}, or pass --data-dir"
    if not download:
        raise DatasetError(f"{what}: {target} not found and downloading is off; {place}")
    failures: list[str] = []
    for url in resource.urls:
        try:
            _download(url, target, resource.md5)
            return target
        except _DownloadFailed as failure:
            failures.append(f"{url}: {failure}")
            log.warning("%s: download from %s failed: %s", what, url, failure)
    raise DatasetError(f"{what}: {target} not found and downloading it failed ({'; '.join(failures)}); {place}")


class _DownloadFailed(Exception):
    """One address did not deliver a verified file."""


def _download(url: str, target: Path, md5: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".download")
    digest = hashlib.md5(usedforsecurity=False)
    log.info("downloading %s to %s", url, target)
    try:
        with contextlib.ExitStack() as stack:
            response = stack.enter_context(urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS))
            total = int(response.headers.get("Content-Length") or 0) or None
            out = stack.enter_context(open(temporary, "wb"))
            bar = stack.enter_context(progress(total=total, desc=f"download {target.name}", unit="B"))
            for block in iter(lambda: response.read(BLOCK_BYTES), b""):
                out.write(block)
                digest.update(block)
                bar.update(len(block))
    except (urllib.error.URLError, OSError, ValueError) as error:
        temporary.unlink(missing_ok=True)
        reason = getattr(error, "reason", None) or error
        raise _DownloadFailed(f"no connection or refused ({reason})") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if digest.hexdigest() != md5:
        temporary.unlink(missing_ok=True)
        raise _DownloadFailed(f"checksum mismatch (MD5 {digest.hexdigest()}, expected {md5})")
    os.replace(temporary, target)
