"""The ``cgaa`` command line: a thin shell that parses and delegates to the library.

Each sub-command lives in its own module ``cgaa.commands.<name>`` exposing
``register(subparsers)``; the module adds its parser and sets ``func`` to a callable
taking the parsed ``argparse.Namespace`` and returning an exit code. Heavy imports
(torch, openmm) happen inside those callables so ``cgaa --help`` stays fast.

Errors: an input error (:func:`input_error_message`) is one line ``cgaa COMMAND: error: ...``
and exit code 2; cgaa's own runtime errors (:func:`user_message`) one line and exit code 1; any
other exception is a bug: its traceback, one line saying so, exit code 1. ``cgaa --debug`` (or
``CGAA_DEBUG=1``) re-raises every error with its traceback.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import Optional, Sequence, Union

from cgaa._version import __version__

#: Sub-commands in the order of the data flow; modules that do not exist are skipped.
COMMANDS = (
    "build", "sample", "label", "train", "evaluate", "finetune", "deploy",
    "simulate", "replicas", "analyze", "bench", "demo",
)


class CLIError(Exception):
    """An error caused by the user's input: printed without a traceback, exit code 2."""


#: Environment variable that has the effect of ``cgaa --debug``.
DEBUG_ENV = "CGAA_DEBUG"


def debug_requested(flag: bool = False) -> bool:
    """Whether errors should be re-raised with their traceback (``--debug`` or CGAA_DEBUG=1)."""
    return bool(flag) or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def one_line(text: str) -> str:
    """``text`` on one line: its lines stripped and joined (messages of the libraries cgaa calls
    sometimes span several)."""
    parts = [line.strip() for line in str(text).splitlines() if line.strip()]
    return " ".join(parts)


def _yaml_message(err: Exception) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or getattr(err, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"not valid YAML ({where}{problem or one_line(str(err))})"


def _os_message(err: OSError) -> str:
    """'Permission denied: /path' instead of "[Errno 13] Permission denied: '/path'"."""
    if err.errno is not None and err.strerror and err.filename is not None:
        text = f"{err.strerror}: {err.filename}"
        if getattr(err, "filename2", None) is not None:
            text += f" -> {err.filename2}"
        if err.errno == errno.ENOSPC:
            text += " (free some space or write elsewhere)"
        return text
    return str(err)


def input_error_message(err: BaseException) -> Optional[str]:
    """The one-line message of an error caused by the user's input (a file, a flag, a config
    key), or None when ``err`` is something else (a bug, or a runtime failure).

    Input errors: :class:`CLIError`, ValueError (FrameError, bad configs, ...), OSError
    (FileNotFoundError, IsADirectoryError, PermissionError, no space left, ...), KeyError
    (missing config keys), EOFError (a truncated file), YAML errors, zip/pickle errors of model
    files and the parse errors of ASE and mdtraj that reach the CLI.
    """
    mod = type(err).__module__ or ""
    name = type(err).__name__
    if isinstance(err, CLIError):
        return str(err)
    if mod.startswith("yaml"):
        return _yaml_message(err)
    if isinstance(err, KeyError):
        key = err.args[0] if len(err.args) == 1 else err
        if isinstance(key, str) and " " in key:  # a sentence: cgaa's own message
            return one_line(key)
        return f"missing key {key!r} (if no input of yours lacks it, rerun with --debug and report the traceback)"
    if isinstance(err, OSError):
        return one_line(_os_message(err))
    if isinstance(err, (ValueError, EOFError)):
        return one_line(str(err)) or name
    if name in ("BadZipFile", "UnpicklingError") or mod.startswith(("ase.", "mdtraj")):
        return one_line(f"{name}: {err}")
    return None


def user_message(err: RuntimeError) -> Optional[str]:
    """The message of a runtime error meant for users, or None for a bug (traceback wanted).

    cgaa's own runtime errors (SimulationError, TrainingError, ...) are shown as they are;
    the model's input checks reach Python wrapped in a TorchScript traceback, of which only
    the final ``RuntimeError: ...`` line is shown.
    """
    if type(err).__module__.startswith("cgaa"):
        return str(err)
    text = str(err)
    marker = "builtins.RuntimeError: "
    if marker in text:
        return text.rsplit(marker, 1)[1].strip()
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cgaa",
        description=(
            "Coarse-grained all-atom (CGAA) machine-learning force fields for battery "
            "electrolytes: message passing on grains (molecules, ions), all-atom forces "
            "in OpenMM."
        ),
    )
    parser.add_argument("--version", action="version", version=f"cgaa {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help=f"re-raise any error with its full traceback (also: {DEBUG_ENV}=1); without it "
                             "an input error is one line naming the file and what in it is wrong (exit 2)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        modname = f"cgaa.commands.{name}"
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as err:
            if err.name == modname:
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 1
    debug = debug_requested(getattr(args, "debug", False))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"cgaa {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            raise
        # Input errors: say what is wrong, name the culprit, no traceback.
        message = input_error_message(err)
        if message is not None:
            print(f"cgaa {args.command}: error: {message}", file=sys.stderr)
            return 2
        if isinstance(err, RuntimeError):
            message = user_message(err)
            if message is not None:
                print(f"cgaa {args.command}: error: {message}", file=sys.stderr)
                return 1
        # A bug: the traceback, and what to do with it.
        traceback.print_exc()
        print(f"cgaa {args.command}: internal error ({type(err).__name__}), a bug in cgaa: please report it with "
              f"the traceback above (`cgaa --debug {args.command} ...` re-raises it, e.g. for a debugger)",
              file=sys.stderr)
        return 1


def check_output_file(path: Union[str, Path], flag: str = "-o") -> Path:
    """The output file ``path`` of a command, checked before any work is done: CLIError naming
    ``flag`` when it is a directory or its folder does not exist (a typo there would otherwise
    cost a whole run, or create a stray folder)."""
    path = Path(path)
    if path.is_dir():
        raise CLIError(f"{flag} {path}: is a directory; give a file name (inside it, if it is meant to hold the file)")
    parent = path.parent
    if not parent.exists():
        raise CLIError(f"{flag} {path}: folder {parent} does not exist (create it first: mkdir -p {parent})")
    if not parent.is_dir():
        raise CLIError(f"{flag} {path}: {parent} is not a folder")
    return path


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
