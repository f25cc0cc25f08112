"""The featx exception family.

Library code raises these; only the CLI turns them into one line on stderr and exit
status 2. Every message is written for the user: what was wrong and what to do.
"""

from __future__ import annotations


class FeatxError(Exception):
    """Base class of every error featx reports to the user."""


class ConfigError(FeatxError):
    """An option, grid spec or pipeline file is invalid.

    Attributes:
        problem: what is wrong, without saying where.
        field: the config field it is about (``cv``, ``grid.C``, ``image_size``), or "".
        path: where the config sits in a pipeline file (``classifiers[0]``), or "".

    ``str(error)`` is ``path.field: problem``; the CLI shows the field as its flag instead
    (:meth:`located`), a pipeline file shows its key path.
    """

    def __init__(self, problem: str, *, field: str = "", path: str = "") -> None:
        self.problem = problem
        self.field = field
        self.path = path
        super().__init__(self._text())

    def _text(self) -> str:
        where = ".".join(part for part in (self.path, self.field) if part)
        return f"{where}: {self.problem}" if where else self.problem

    def located(self, path: str) -> ConfigError:
        """The same error with ``path`` put before its location (a pipeline's key path)."""
        joined = ".".join(part for part in (path, self.path) if part).replace(".[", "[")
        return type(self)(self.problem, field=self.field, path=joined)

    def __reduce__(self) -> tuple[object, ...]:  # keyword-only fields survive pickling (Dask, joblib)
        return (_rebuild_config_error, (type(self), self.problem, self.field, self.path))


def _rebuild_config_error(cls: type[ConfigError], problem: str, field: str, path: str) -> ConfigError:
    return cls(problem, field=field, path=path)


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


class BusyError(FeatxError):
    """Another process holds the lock of a file featx is asked to write or remove."""


class CacheBusyError(CacheError, BusyError):
    """Another process holds the lock on a cache entry."""


class WriteError(FeatxError):
    """An output file (cache entry, run record, model, report) cannot be written: the
    disk is full, or the folder is not writable. What was there before is untouched."""


class ForeignFileError(FeatxError):
    """featx was asked to delete or write over a file it did not write (a user's own data,
    another kind of featx file, a folder, a link); it leaves the file as it is."""


class FitError(FeatxError):
    """Stage two cannot fit or score on the given features."""


class ReportError(FeatxError):
    """The report cannot be built from the run records."""


class SchedulerError(FeatxError):
    """A Dask scheduler cannot be reached or used."""


class PredictError(FeatxError):
    """A fitted run cannot be used to label new images or be exported (its record, its
    model or its backbone's weights are not what they were when it was fitted)."""
