"""The one error type the command line turns into a one-line message instead of a traceback."""

from __future__ import annotations


class RnnmemError(Exception):
    """An anticipated failure the user can act on (bad input file, bad config value, corrupt or foreign file).

    ``str(error)`` must read ``<file or key>: <what is wrong>``; the CLI prints it as
    ``rnnmem <command>: error: <file or key>: <what is wrong>``.
    """
