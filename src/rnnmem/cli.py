"""rnnmem: one sub-command per pipeline job. The commands, their arguments and their job functions are declared
once, in rnnmem.commands; this module builds the parser from that table and runs the chosen job."""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from rnnmem import __version__
from rnnmem.commands import BY_NAME, COMMANDS, PAIRED, Command
from rnnmem.core.errors import DEBUG_ENV, RnnmemError, debug_requested


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Parser(argparse.ArgumentParser):
    """Usage errors in the pipeline's one-line form: ``rnnmem <command>: error: <argument>: <what is wrong>``."""

    def error(self, message: str) -> NoReturn:
        required = "the following arguments are required: "
        if message.startswith(required):
            message = f"{message[len(required):]}: required (see {self.prog} --help)"
        elif message.startswith("argument "):
            message = message[len("argument "):]
        self.exit(2, f"{self.prog}: error: {_one_line(message)}\n")


def _description(command: Command) -> str:
    text = command.help
    if command.params_keys:
        text += f" --params is a JSON object with the keys: {', '.join(command.params_keys)}."
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rnnmem", description=__doc__)
    parser.add_argument("--version", action="version", version=f"rnnmem {__version__}")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads of the job: torch's, or the processes that parse chorale files (default 1)")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of an anticipated error too (or set {DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=_description(command))
        for a in command.args:
            p.add_argument(a.option, dest=a.dest, **a.kwargs)
    return parser


def job_function(command: Command) -> Callable[..., Any]:
    """The command's job function (imports its module: torch, music21 … as that branch needs)."""
    module, name = command.function.split(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> int:
    """Run one command. An anticipated error (RnnmemError, or an OSError naming a file: missing input, disk full,
    read-only folder, no permission) ends it with one line on stderr, ``rnnmem <command>: error: <file or key>:
    <what is wrong>``, and exit status 1; --debug or RNNMEM_DEBUG=1 prints the traceback before that line. Any other
    exception is a bug: its traceback shows."""
    args = build_parser().parse_args(argv)
    debug = args.debug or debug_requested()
    command = BY_NAME[args.command]
    os.environ.setdefault("NUMBA_NUM_THREADS", str(max(1, args.threads)))  # the compiled kernels' threads
    if command.torch:
        from rnnmem.core.runtime import configure_torch  # loads torch: after the arguments are known to be usable

        configure_torch(args.threads)
    try:
        return _run(command, args)
    except RnnmemError as error:
        return _fail(args.command, str(error), debug)
    except OSError as error:
        if error.filename is None:
            raise  # no file to name: not anticipated, keep the traceback
        return _fail(args.command, _os_message(error), debug)


def _os_message(error: OSError) -> str:
    """``<file>: <strerror>`` (``<file> -> <file2>: …`` for a failed rename or copy)."""
    names = str(error.filename) + (f" -> {error.filename2}" if error.filename2 is not None else "")
    return f"{names}: {error.strerror or error}"


def _fail(command: str, message: str, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(f"rnnmem {command}: error: {_one_line(message)}", file=sys.stderr)
    return 1


def _run(command: Command, args: argparse.Namespace) -> int:
    values = vars(args)
    if all(name in command.dests for name in PAIRED) and len(values["models"]) != len(values["specs"]):
        print(f"rnnmem {command.name}: error: --models, --specs: need the same number of files", file=sys.stderr)
        return 2
    function = job_function(command)
    accepted = inspect.signature(function).parameters
    function(**{name: value for name, value in values.items() if name in accepted})
    return 0
