"""Exception types that mark user-facing errors (bad input, bad configuration).

The command line prints these as one line and exits non-zero; anything else is a bug and
keeps its traceback.
"""

__all__ = [
    "CalibrationNotFoundError",
    "ConfigError",
    "InputDataError",
    "PathEscapeError",
    "ServerUnavailableError",
    "SvomflowError",
]


class SvomflowError(Exception):
    """Base class of the errors that a user can cause and fix (shown without traceback)."""


class ConfigError(SvomflowError):
    """A configuration file, key or value is invalid; the message names the dotted key."""


class InputDataError(SvomflowError):
    """An input file is missing, unreadable, truncated or not of the expected kind."""


class PathEscapeError(SvomflowError):
    """A value used to build an output path would leave the output root."""


class CalibrationNotFoundError(SvomflowError):
    """No calibration file satisfies a CALDB selection."""


class ServerUnavailableError(SvomflowError):
    """The Prefect server a command needs does not answer and cannot be started."""
