"""A test-only fault hook: crash, fill the disk or pause at named points of a write.

The reliability suite (``tests/reliability/``) sets the environment variable
``FEATX_FAULT`` to make a real ``featx`` process fail at an exact, named point, instead
of killing it after a sleep and hoping::

    FEATX_FAULT=<point>[:<n>][:<action>]      e.g. cache.rows_written:3  cache.before_rename:1:enospc

When the code reaches :func:`fault_point` ``point`` for the ``n``-th time (default 1) in
this process, the action happens:

* ``kill`` (default): ``SIGKILL`` to this process (no cleanup, no ``finally``), like a
  power cut or the OOM killer;
* ``enospc``: raise ``OSError(ENOSPC)``, as a full disk does;
* ``stop``: ``SIGSTOP`` to this process, so that a test can start a rival process while
  this one holds a lock, then resume it with ``SIGCONT``.

Unset (always, outside the tests), a fault point costs one dictionary lookup. The points
are listed in :data:`POINTS`; an unknown point in ``FEATX_FAULT`` is ignored, so that a
typo in a test shows up as a process that was not killed.
"""

from __future__ import annotations

import errno
import os
import signal

ENV = "FEATX_FAULT"

#: every fault point in featx, and where it is
POINTS: dict[str, str] = {
    "extract.model_loaded": "the backbone is built, the entry's lock not yet taken",
    "extract.locked": "the entry's lock is held, nothing written yet",
    "cache.rows_flushed": "a batch of rows is written and flushed, its n_done not yet updated",
    "cache.rows_written": "a batch of rows and its n_done are flushed",
    "cache.split_complete": "a split is marked complete (checksums recorded)",
    "cache.before_rename": "every split is complete and the partial file closed, not yet renamed",
    "cache.after_rename": "the final file is renamed into place, the directory not yet synced",
    "shards.stitch_written": "the stitched entry is written to its temporary file, not yet renamed",
    "atomic.before_replace": "an atomically written file (record, model, report) is complete under its temporary name",
    "records.locked": "the run record's lock is held, neither the model nor the record written yet",
}

_hits: dict[str, int] = {}


def fault_point(point: str) -> None:
    """Trigger the fault ``FEATX_FAULT`` asks for when it names ``point`` (a test hook).

    Raises:
        OSError: ``ENOSPC``, when the action is ``enospc``.
    """
    spec = os.environ.get(ENV)
    if not spec:
        return
    name, _, rest = spec.partition(":")
    if name != point:
        return
    count, _, action = rest.partition(":")
    _hits[point] = _hits.get(point, 0) + 1
    if _hits[point] != (int(count) if count.isdigit() else 1):
        return
    if action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC) + f" (injected at {point})")
    os.kill(os.getpid(), signal.SIGSTOP if action == "stop" else signal.SIGKILL)
