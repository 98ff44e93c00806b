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


def test_a_bug_keeps_its_traceback_and_says_what_to_do(capsys, monkeypatch):
    """An exception that is no input error (a bug) prints its traceback and one line on what to do;
    --debug re-raises it."""
    import cgaa.commands.deploy as deploy

    def broken(args):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    real_register = deploy.register

    def register(sub):
        real_register(sub)
        sub.choices["deploy"].set_defaults(func=broken)

    monkeypatch.setattr(deploy, "register", register)
    assert main(["deploy", "x.pt", "-o", "y.pt"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "TypeError: unsupported operand" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("cgaa deploy: internal error (TypeError)") and "--debug" in last and "report" in last
    with pytest.raises(TypeError):
        main(["--debug", "deploy", "x.pt", "-o", "y.pt"])


def test_input_error_messages_are_one_line():
    import errno

    import yaml

    from cgaa.cli import input_error_message

    assert input_error_message(PermissionError(errno.EACCES, "Permission denied", "/x/run")) == \
        "Permission denied: /x/run"
    assert "No space left on device: /x/m.pt" in input_error_message(OSError(errno.ENOSPC, "No space left on device",
                                                                             "/x/m.pt"))
    assert input_error_message(ValueError("a\n  b")) == "a b"
    assert input_error_message(KeyError("density")).startswith("missing key 'density'")
    try:
        yaml.safe_load("a: [b\nc: d")
    except yaml.YAMLError as err:
        msg = input_error_message(err)
    assert msg.startswith("not valid YAML (line ") and "\n" not in msg
    assert input_error_message(TypeError("x")) is None and input_error_message(RuntimeError("x")) is None
