"""The ``cgaa`` command line: a thin shell that parses and delegates to the library.

Each sub-command lives in its own module ``cgaa.commands.<name>`` exposing
``register(subparsers)``; the module adds its parser and sets ``func`` to a callable
taking the parsed ``argparse.Namespace`` and returning an exit code. Heavy imports
(torch, openmm) happen inside those callables so ``cgaa --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from cgaa._version import __version__

#: Sub-commands in the order of the data flow; modules that do not exist are skipped.
COMMANDS = (
    "build", "sample", "label", "train", "evaluate", "finetune", "deploy",
    "simulate", "analyze", "bench", "demo",
)


class CLIError(Exception):
    """An error caused by the user's input: printed without a traceback, exit code 2."""


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
    try:
        return int(args.func(args) or 0)
    except (CLIError, FileNotFoundError, ValueError) as err:
        # Input errors: say what is wrong, name the culprit, no traceback.
        print(f"cgaa {args.command}: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        message = user_message(err)
        if message is None:
            raise
        print(f"cgaa {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"cgaa {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
