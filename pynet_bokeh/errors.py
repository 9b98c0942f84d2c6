"""The package's error kinds: one class per kind, each caught by every command.

Every command turns a `PynetBokehError` (and a missing file) into one line
`error: <message>`; messages name the file, flag or variable at fault and say what to do.
This module imports nothing of the project (bottom layer).
"""


class PynetBokehError(Exception):
    """Base of the errors a command reports as one `error: ...` line."""


class HandOffError(PynetBokehError, FileNotFoundError):
    """The previous level's or stage's weights, which a fresh run starts from, are missing."""


class WeightsMismatchError(PynetBokehError, ValueError):
    """A weights file does not fit the network (missing variable or layer, wrong shape)."""


class BadDataError(PynetBokehError, ValueError):
    """Input data (photos, depth maps, targets, sidecars) is missing, unreadable or malformed."""


class UsageError(PynetBokehError, ValueError):
    """A flag or argument is wrong; the message names it."""


class FolderNotWritableError(PynetBokehError, PermissionError):
    """An output folder cannot be written; found before any work starts."""
