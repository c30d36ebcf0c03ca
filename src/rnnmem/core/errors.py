"""The one error type the command line turns into a one-line message instead of a traceback."""

from __future__ import annotations

import os

DEBUG_ENV = "RNNMEM_DEBUG"  # RNNMEM_DEBUG=1 (or `rnnmem --debug`): the CLI shows tracebacks of anticipated errors


class RnnmemError(Exception):
    """An anticipated failure the user can act on (bad input file, bad config value, corrupt or foreign file).

    ``str(error)`` must read ``<file or key>: <what is wrong>``; the CLI prints it as
    ``rnnmem <command>: error: <file or key>: <what is wrong>``.
    """


class ConfigError(RnnmemError, ValueError):
    """The config is well-typed but inconsistent; the message names the key (raised by :mod:`rnnmem.config` when
    the Snakefile is parsed, and by jobs that interpret a setting)."""


class InputFileError(RnnmemError, ValueError):
    """An input file exists but is not what the job reads (not a table, columns missing, no rows); names the file."""


def debug_requested() -> bool:
    """Whether ``RNNMEM_DEBUG`` asks for tracebacks (any value but empty, ``0``, ``false``, ``no``)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")
