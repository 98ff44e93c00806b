"""What every benchmark report carries (machine, date, versions, command) and its output
as JSON, Markdown tables and PNG plots, all written atomically."""
from __future__ import annotations

import datetime
import json
import math
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

from cgaa.core.fileio import atomic_path, write_text_atomic
from cgaa.openmm.torchforce import import_openmmtorch

PathLike = Union[str, Path]


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (or platform.processor())."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def available_cores() -> int:
    """Cores this process may run on (sched_getaffinity), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def total_memory_gib() -> float:
    """Physical memory of the machine, GiB."""
    try:
        import psutil

        return psutil.virtual_memory().total / 2 ** 30
    except Exception:  # pragma: no cover - psutil is a dependency
        return float("nan")


def gpu_name() -> Optional[str]:
    """Name of CUDA device 0, or None."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # pragma: no cover
        pass
    return None


def versions() -> Dict[str, str]:
    """Versions of python, cgaa, torch, e3nn, openmm, openmmtorch (and sevenn if installed)."""
    out = {"python": platform.python_version()}
    from importlib import metadata

    for mod in ("cgaa", "torch", "e3nn", "openmm", "openmmtorch", "sevenn"):
        try:
            if mod == "openmmtorch":  # through cgaa, which drops its simtk deprecation notice

                m = import_openmmtorch()
            else:
                m = __import__(mod)
            v = getattr(m, "__version__", None)
            if v is None:
                v = _distribution_version(mod, metadata)
            out[mod] = str(v)
        except Exception:
            if mod != "sevenn":
                out[mod] = "not importable"
    return out


# module -> the distributions that may provide it (openmmtorch comes as "openmmtorch" (1.5 on PyPI, conda-forge)
# and as "acellera-openmmtorch-cu13"/"-cpu" from PyPI)
_DISTRIBUTIONS = {"openmmtorch": ("openmmtorch", "acellera-openmmtorch-cu13", "acellera-openmmtorch-cpu")}


def _distribution_version(mod: str, metadata) -> str:
    """Version of the installed distribution providing module ``mod`` (PackageNotFoundError if none)."""
    names = _DISTRIBUTIONS.get(mod, (mod,))
    for name in names:
        try:
            dist = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        return dist if name == mod else f"{dist} ({name})"
    raise metadata.PackageNotFoundError(mod)


def machine_info() -> Dict[str, Any]:
    """The machine a benchmark ran on: CPU model, cores, memory, GPU, OS."""
    return {"cpu": cpu_model(), "cores": available_cores(), "memory_GiB": round(total_memory_gib(), 1),
            "gpu": gpu_name(), "os": f"{platform.system()} {platform.release()}", "hostname_hidden": True}


def now_utc() -> str:
    """Current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def command_line(argv: Optional[Sequence[str]] = None) -> str:
    """The command that produced a report (``cgaa ...`` when run through the CLI)."""
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name in ("cgaa", "__main__.py"):
        argv[0] = "cgaa"
    return " ".join(shlex.quote(a) for a in argv)


def header(mode: str, command: Optional[str] = None) -> Dict[str, Any]:
    """Common report header: mode, date, command, machine, versions."""
    return {"mode": mode, "date": now_utc(), "command": command or command_line(),
            "machine": machine_info(), "versions": versions(), "load_average_at_start": load_average()}


def load_average() -> Optional[list]:
    """1, 5 and 15 minute load averages (other work on the machine skews timings)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _clean(x: Any) -> Any:
    """JSON-safe copy: NaN/inf → None, numpy scalars → Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        try:
            x = x.item()
        except Exception:
            pass
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json(path: PathLike, data: Dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON (NaN → null), atomically."""
    return write_text_atomic(path, json.dumps(_clean(data), indent=1) + "\n")


def fmt(x: Any, digits: int = 3) -> str:
    """A number for a Markdown table (``—`` for missing)."""
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(x):
        return "—"
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1000 or a < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def markdown_table(header_row: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header_row) + " |", "|" + "|".join("---" for _ in header_row) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(fmt(v) if not isinstance(v, str) else v for v in r) + " |")
    return "\n".join(lines)


def save_figure(fig, path: PathLike) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def header_markdown(rep: Dict[str, Any]) -> str:
    """Markdown lines naming the command, machine, date and versions of a report."""
    m = rep.get("machine", {})
    v = rep.get("versions", {})
    vs = ", ".join(f"{k} {val}" for k, val in v.items())
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU"
    return (f"Command: `{rep.get('command')}`  \n"
            f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_GiB')} GiB{gpu}; "
            f"{m.get('os')}; load average at start {rep.get('load_average_at_start')}  \n"
            f"Date: {rep.get('date')}  \nVersions: {vs}")


__all__ = ["available_cores", "command_line", "cpu_model", "fmt", "header", "header_markdown",
           "machine_info", "markdown_table", "now_utc", "save_figure", "versions", "write_json"]


def write_outputs(rep: Dict[str, Any], out_dir: Union[str, Path], stem: str, markdown, plot) -> Dict[str, Path]:
    """``stem``.json, ``stem``.md (from ``markdown(rep)``) and ``stem``.png (from
    ``plot(rep, path)``, if it draws one) in ``out_dir``, all written atomically."""
    out = Path(out_dir)
    files = {"json": write_json(out / f"{stem}.json", rep),
             "markdown": write_text_atomic(out / f"{stem}.md", markdown(rep).rstrip("\n") + "\n")}
    png = plot(rep, out / f"{stem}.png")
    if png:
        files["png"] = png
    return files
