"""The CLI shell: help for every command, clean errors without tracebacks."""
from __future__ import annotations

import subprocess
import sys

import pytest

from cgaa.cli import COMMANDS, build_parser, main, user_message


def test_every_command_has_help(capsys):
    parser = build_parser()
    names = set(parser._subparsers._group_actions[0].choices)
    assert {"build", "sample", "label", "train", "evaluate", "finetune", "deploy", "simulate", "analyze",
            "bench", "demo"} <= names
    for name in names:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert "usage: cgaa " + name in capsys.readouterr().out


def test_user_errors_have_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cgaa", "train", str(tmp_path / "missing.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "missing.yaml" in proc.stderr and "Traceback" not in proc.stderr


def test_runtime_messages():
    class SimulationError(RuntimeError):
        pass

    SimulationError.__module__ = "cgaa.md.run"
    assert user_message(SimulationError("NaN energy at step 40")) == "NaN energy at step 40"
    wrapped = RuntimeError("The following operation failed in the TorchScript interpreter.\n...\n"
                           "builtins.RuntimeError: grain 3 (atoms 1 and 2, 12.0 A apart) is wider than half")
    assert user_message(wrapped).startswith("grain 3 (atoms 1 and 2")
    assert user_message(RuntimeError("some bug")) is None
    assert set(COMMANDS) >= {"train", "demo"}
