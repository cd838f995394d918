"""Error types. A `CompressError` is a user mistake: the CLI prints its message on one line."""

from __future__ import annotations


class CompressError(Exception):
    """A problem the user can fix (bad input, missing file, unknown name).

    The message says what is wrong and how to fix it; the CLI prints it without a traceback.
    """


class ConfigError(CompressError, ValueError):
    """A configuration file or flag is invalid."""


class UnknownNameError(CompressError, KeyError):
    """A name (model, dataset, method, ...) is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataNotFoundError(CompressError, FileNotFoundError):
    """A dataset could not be found where the toolkit looked."""


class ModelFileError(CompressError, OSError):
    """A model file is missing, truncated or not a compress model file."""


class TrainingDivergedError(CompressError, RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


class OutputWriteError(CompressError, OSError):
    """A file cannot be written where the user asked (no space left, not a folder, read-only)."""
