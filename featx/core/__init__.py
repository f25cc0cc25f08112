"""The core: what every stage uses and nothing else.

It owns the error family (:mod:`~featx.core.errors`), the default folders and file-name
rules (:mod:`~featx.core.paths`), atomic file writes (:mod:`~featx.core.atomic`), file
locks (:mod:`~featx.core.locks`), hashing and canonical JSON (:mod:`~featx.core.hashing`),
the validation layer of every config (:mod:`~featx.core.schema`), user-facing output
(:mod:`~featx.core.console`), name registries (:mod:`~featx.core.registry`), the
matplotlib canvas (:mod:`~featx.core.figures`) and the test-only fault hook
(:mod:`~featx.core.faults`).

Import rule: the core imports nothing from featx but :mod:`featx._version`; every other
subpackage may import it.
"""
