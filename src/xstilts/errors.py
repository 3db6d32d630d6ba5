"""One error type for everything a user can get wrong.

The CLI turns an :class:`XstiltsError` into a single line on stderr and a non-zero exit,
so every reader and validator raises it with the file and line it was looking at.
"""

from __future__ import annotations

from pathlib import Path


class XstiltsError(Exception):
    """A user-facing error: bad input, bad config, missing files."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line is not None else f"{self.path}: "
        return (where + self.message).replace("\n", " ")


class DataError(XstiltsError):
    """A data file is missing, empty or malformed."""


class ConfigError(XstiltsError):
    """The experiment config names an unknown key, has a bad value, or is inconsistent."""


class TrainingError(XstiltsError):
    """Training diverged (NaN/inf loss) or could not proceed."""


def one_line(exc: BaseException) -> str:
    """Any exception as the single line the CLI prints and the store records for a failed run.

    An OSError (full disk, permissions) is a user-facing condition too: name the file and the
    reason, as a shell would, rather than a traceback.
    """
    if isinstance(exc, XstiltsError):
        return exc.one_line()
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
