"""``cgaa label`` on Dask: the frames split into chunks, each chunk one task.

A task labels its frames with :func:`cgaa.teacher.label.label_frames` (the serial code: the same
checks, the same refused labels) and returns them as extxyz text; this process writes that text
atomically as the chunk's part file in ``OUTPUT.parts/`` the moment it arrives (a part file
that exists is a finished chunk), and when every chunk is done it joins the parts in frame order
into OUTPUT and removes the folder. extxyz writes each frame on its own, so the joined file
holds the very bytes :func:`cgaa.teacher.label.label_file` writes for a deterministic calculator.

Resumable: a rerun finds the part files of an interrupted run (``OUTPUT.parts/manifest.json``
says which input, calculator and options they belong to; another input is refused) and
submits only the missing chunks. A worker lost mid-chunk costs that chunk, which the scheduler
runs again elsewhere; a chunk's result is written once, however often its task ran.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from cgaa.core.extxyz import read_frames
from cgaa.core.fileio import write_bytes_atomic, write_text_atomic
from cgaa.distributed.tasks import run_tasks, set_task_threads
from cgaa.teacher.label import MAX_LABEL_FORCE, LabelError, frames_from_run, get_calculator, label_frames

PathLike = Union[str, Path]
#: Frames per task when neither the call nor the configuration says.
DEFAULT_CHUNK_FRAMES = 4
MANIFEST = "manifest.json"
_TAG = "\x00cgaa-chunk-frame"  # how a task's errors name its frames before they are renumbered
_CALCULATORS: Dict[str, Any] = {}  # per worker process: calculators built from a spec, by spec and kwargs


def parts_dir(output: PathLike) -> Path:
    """Where the chunks of ``output`` are kept until all are done (``out.xyz`` → ``out.xyz.parts/``)."""
    output = Path(output)
    return output.with_name(output.name + ".parts")


def part_path(parts: Path, start: int, stop: int) -> Path:
    """The part file of frames ``start`` to ``stop - 1``."""
    return parts / f"frames-{start:07d}-{stop - 1:07d}.xyz"


def chunks(n_frames: int, chunk_frames: int) -> List[Tuple[int, int]]:
    """(start, stop) of consecutive chunks of at most ``chunk_frames`` frames covering ``n_frames``."""
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    return [(a, min(a + chunk_frames, n_frames)) for a in range(0, n_frames, chunk_frames)]


def frames_fingerprint(frames: Sequence) -> str:
    """SHA-256 of the frames' atomic numbers, positions (Å) and cells: which input a set of part files
    belongs to."""
    h = hashlib.sha256()
    for at in frames:
        h.update(np.asarray(at.numbers, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(at.positions, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(np.asarray(at.cell), dtype=np.float64).tobytes())
    return h.hexdigest()


def _calculator(calculator: Any, kwargs: Dict[str, Any]):
    if not isinstance(calculator, str):
        return calculator
    key = json.dumps([calculator, kwargs], sort_keys=True, default=str)
    if key not in _CALCULATORS:
        _CALCULATORS[key] = get_calculator(calculator, **kwargs)
    return _CALCULATORS[key]


def _renumber(message: str, source: str, start: int) -> str:
    return re.sub(re.escape(_TAG) + r" (\d+)", lambda m: f"{source} {start + int(m.group(1))}", message)


def label_chunk(task: Dict[str, Any]) -> Dict[str, Any]:
    """One task (run on a worker): label ``task['frames']`` (frames ``start`` … of the input) and
    return ``{"text": extxyz}``, or ``{"error": "label" | "input", "message": ...}`` for a refused
    label or a bad calculator spec (results, not exceptions: retrying would only repeat them)."""
    import ase.io

    set_task_threads(task.get("threads"))
    start, source = int(task["start"]), str(task["source"])
    try:
        calc = _calculator(task["calculator"], task.get("calculator_kwargs") or {})
        labelled = label_frames(task["frames"], calc, name=task["name"], keep_previous=task["keep_previous"],
                                stress=task["stress"], max_force=task["max_force"], source=_TAG)
    except LabelError as err:
        return {"error": "label", "message": _renumber(str(err), source, start)}
    except ValueError as err:
        return {"error": "input", "message": str(err)}
    buf = io.StringIO()
    ase.io.write(buf, labelled, format="extxyz")
    return {"text": buf.getvalue()}


def _manifest(frames: Sequence, name: str, chunk_frames: int, stress: bool, keep_previous: bool,
              max_force: float) -> Dict[str, Any]:
    return {"format": "cgaa-label-parts 1", "n_frames": len(frames), "fingerprint": frames_fingerprint(frames),
            "teacher": name, "chunk_frames": int(chunk_frames), "stress": bool(stress),
            "keep_previous": bool(keep_previous), "max_force": float(max_force)}


def _open_parts(parts: Path, want: Dict[str, Any], resume: bool) -> int:
    """Prepare ``parts`` for a run described by ``want``; returns the chunk size to use (an
    interrupted run's, when resuming it). ValueError when its part files belong to another input."""
    if parts.exists() and not resume:
        shutil.rmtree(parts)
    path = parts / MANIFEST
    if parts.exists() and path.is_file():
        try:
            have = json.loads(path.read_text())
        except ValueError:
            have = {}
        for key in ("n_frames", "fingerprint", "teacher", "stress", "keep_previous", "max_force"):
            if have.get(key) != want[key]:
                raise ValueError(f"{parts} holds the chunks of another labelling ({key}: {have.get(key)!r}, this run: "
                                 f"{want[key]!r}): delete it, or rerun with --restart, to label from the start")
        return int(have["chunk_frames"])
    parts.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(want, indent=1) + "\n")
    return int(want["chunk_frames"])


class _Bar:
    """tqdm over the whole set's frames with frames/h and ETA (labelling is counted in hours)."""

    def __init__(self, total: int, done: int, desc: str, enabled: bool):
        self.bar = None
        self.t0, self.done0, self.total = time.perf_counter(), done, total
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, desc=desc, unit="frame", dynamic_ncols=True)

    def update(self, n: int) -> None:
        if self.bar is None:
            return
        self.bar.update(n)
        dt, k = time.perf_counter() - self.t0, self.bar.n - self.done0
        if k > 0 and dt > 0:
            per_h = 3600.0 * k / dt
            self.bar.set_postfix({"frames/h": f"{per_h:.0f}", "ETA": f"{(self.total - self.bar.n) / per_h:.2f} h"},
                                 refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def label_file_distributed(input_path: PathLike, output_path: PathLike, calculator: Union[str, Any], *,
                           client: Any = None, calculator_kwargs: Optional[Dict[str, Any]] = None,
                           name: Optional[str] = None, energy_key: Optional[str] = None,
                           forces_key: Optional[str] = None, progress: bool = True, keep_previous: bool = True,
                           stress: bool = False, run_frames: Optional[Dict[str, Any]] = None,
                           max_force: float = MAX_LABEL_FORCE, resume: bool = True,
                           chunk_frames: int = DEFAULT_CHUNK_FRAMES, retries: int = 2,
                           threads: Optional[int] = None) -> int:
    """:func:`cgaa.teacher.label.label_file` with the frames labelled in chunks of ``chunk_frames``
    as tasks on ``client`` (a ``dask.distributed.Client``; None: the chunks run here, in order).

    Same arguments and output as ``label_file`` (energies eV, forces eV/Å, stress eV/Å³; the same
    bytes for a deterministic calculator). calculator: a spec string (each worker builds the
    calculator once and keeps it) or a picklable ASE calculator. retries: a task that raises is
    run again this often (a worker that dies is handled by the scheduler). threads: torch/OpenMM
    threads per task. resume=False discards an interrupted run's chunks. A refused label raises
    :class:`~cgaa.teacher.label.LabelError` naming the frame (the finished chunks are kept for a
    rerun), a bad spec ValueError. Returns the number of frames."""

    label = name or (calculator if isinstance(calculator, str) else type(calculator).__name__)
    if Path(input_path).is_dir():
        frames = frames_from_run(input_path, **(run_frames or {}))
    else:
        frames = read_frames(input_path, energy_key=energy_key, forces_key=forces_key,
                             require_energy=False, require_forces=False)
    output_path = Path(output_path)
    parts = parts_dir(output_path)
    want = _manifest(frames, label, chunk_frames, stress, keep_previous, max_force)
    size = _open_parts(parts, want, resume)
    spans = chunks(len(frames), size)
    todo = [(a, b) for a, b in spans if not part_path(parts, a, b).is_file()]
    done_frames = len(frames) - sum(b - a for a, b in todo)
    source = f"{input_path} frame"
    tasks = [{"frames": frames[a:b], "start": a, "source": source, "calculator": calculator,
              "calculator_kwargs": dict(calculator_kwargs or {}), "name": label, "keep_previous": keep_previous,
              "stress": stress, "max_force": max_force, "threads": threads} for a, b in todo]
    bar = _Bar(len(frames), done_frames, f"cgaa label ({label}, {'dask' if client is not None else 'chunks'})",
               progress)

    def commit(i: int, result: Dict[str, Any]) -> None:
        a, b = todo[i]
        if "error" in result:
            kept = sum(1 for s in spans if part_path(parts, *s).is_file())
            msg = result["message"]
            if result["error"] == "input":
                raise ValueError(msg)
            raise LabelError(f"{msg}; the {kept} finished chunks are kept in {parts} (rerun the same command to "
                             "continue after it is fixed)" if kept else msg)
        write_text_atomic(part_path(parts, a, b), result["text"])
        bar.update(b - a)

    try:
        run_tasks(label_chunk, tasks, client=client, retries=retries, name="cgaa-label", on_result=commit)
    finally:
        bar.close()
    data = b"".join(part_path(parts, a, b).read_bytes() for a, b in spans)
    write_bytes_atomic(output_path, data)
    shutil.rmtree(parts, ignore_errors=True)
    return len(frames)
