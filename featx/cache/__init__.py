"""The feature cache: the HDF5 format that is the contract between stage one and stage two.

It owns the file layout and its names (:mod:`~featx.cache.layout`: entry names, attribute
names, the checksum recipe), the crash-safe writer (:mod:`~featx.cache.writer`), the
reader with the one trust check (:mod:`~featx.cache.reader`), listing, finding and
removing entries (:mod:`~featx.cache.manage`), and sharded entries stitched from shard
files without copying (:mod:`~featx.cache.shards`). Stage two reads any file that follows
the layout, whoever wrote it; nothing here imports torch.

Import rule: the cache imports only :mod:`featx.core`.
"""

from __future__ import annotations

from featx.cache.layout import FORMAT_VERSION, SPLITS, EntryName, cache_key, entry_path, partial_path, shards_dir
from featx.cache.manage import entry_lock, find_entry, list_entries, remove_entry
from featx.cache.reader import (
    CacheInfo,
    SplitInfo,
    is_trusted,
    load_features,
    open_features,
    read_info,
    read_split,
    resolve_features,
    verify_file,
)
from featx.cache.writer import CacheWriter, SplitPlan, write_features

__all__ = [
    "FORMAT_VERSION",
    "SPLITS",
    "CacheInfo",
    "CacheWriter",
    "EntryName",
    "SplitInfo",
    "SplitPlan",
    "cache_key",
    "entry_lock",
    "entry_path",
    "find_entry",
    "is_trusted",
    "list_entries",
    "load_features",
    "open_features",
    "partial_path",
    "read_info",
    "read_split",
    "remove_entry",
    "resolve_features",
    "shards_dir",
    "verify_file",
    "write_features",
]
