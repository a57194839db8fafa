"""The errors of snetx.dataset (no torch import: the registry and readers use them)."""

__all__ = ["DatasetError", "DatasetNotFoundError", "DatasetCorruptError"]


class DatasetError(Exception):
    """A dataset that cannot be used: missing or corrupted files."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset's files are not on disk and could not be downloaded."""


class DatasetCorruptError(DatasetError, ValueError):
    """A dataset file is on disk but damaged: the message names the file and the fault."""
