"""The featx exception family.

Library code raises these; only the CLI turns them into one line on stderr and exit
status 2. Every message is written for the user: what was wrong and what to do.
"""

from __future__ import annotations


class FeatxError(Exception):
    """Base class of every error featx reports to the user."""


class ConfigError(FeatxError):
    """An option, grid spec or pipeline file is invalid."""


class UnknownNameError(ConfigError):
    """A name (backbone, dataset, classifier, ...) is not in its registry."""


class DatasetError(FeatxError):
    """A data set is missing, malformed or cannot be downloaded."""


class ImageReadError(DatasetError):
    """An image file cannot be decoded; the message names the file."""


class WeightsError(FeatxError):
    """Backbone weights cannot be obtained."""


class DeviceError(FeatxError):
    """The requested compute device is not available."""


class CacheError(FeatxError):
    """A feature cache file is missing, incomplete, damaged or from another format."""


class CacheBusyError(CacheError):
    """Another process holds the lock on a cache entry."""


class WriteError(FeatxError):
    """An output file (cache entry, run record, model, report) cannot be written: the
    disk is full, or the folder is not writable. What was there before is untouched."""


class FitError(FeatxError):
    """Stage two cannot fit or score on the given features."""


class ReportError(FeatxError):
    """The report cannot be built from the run records."""


class SchedulerError(FeatxError):
    """A Dask scheduler cannot be reached or used."""
