"""The run directory of ``cgaa simulate``: its file names, atomic checkpoints (the last
and the previous pair with their size and SHA-256, verified before a restart loads one:
:class:`Checkpointer`), truncation of ``traj.dcd`` and ``state.csv`` to a checkpoint on
restart, reading ``state.csv``, the check of ``--out`` before anything runs
(:func:`check_out_dir`), write errors as one-line :class:`RunWriteError` (:func:`writing`),
and a finished run's last state as a box file (:func:`write_final_pdb`)."""
from __future__ import annotations

import contextlib
import csv
import datetime
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from cgaa.core.fileio import atomic_path, file_sha256, write_text_atomic
from cgaa.systems.boxfile import RUN_JSON_FILE, RUN_STATE_FILE, RUN_TRAJ_FILE, find_run_topology, read_box, write_box


TRAJ_FILE = RUN_TRAJ_FILE


TOPOLOGY_FILE = "topology.pdb"  # topology.cif above 99,999 atoms (cgaa.systems.boxfile.run_topology_name)


STATE_FILE = RUN_STATE_FILE


CHECKPOINT_FILE = "checkpoint.chk"


CHECKPOINT_META = "checkpoint.json"


PREV_CHECKPOINT_FILE = "checkpoint.prev.chk"


PREV_CHECKPOINT_META = "checkpoint.prev.json"


FINAL_STATE_FILE = "final_state.xml"


RUN_FILE = RUN_JSON_FILE


MODEL_FILE = "model.pt"


INPUT_FILE = "input.pdb"  # a box built from a recipe; input.cif above 99,999 atoms


STATE_COLUMNS = ("step", "time_ps", "potential_energy_kJ_mol", "kinetic_energy_kJ_mol",
                 "total_energy_kJ_mol", "temperature_K", "volume_nm3", "density_g_cm3",
                 "speed_ns_day")


# ---------------------------------------------------------------------------- files
def _dcd_layout(path: Path) -> Tuple[int, int, int]:
    """(header bytes, frame bytes, frames) of an OpenMM-written DCD file."""
    with open(path, "rb") as f:
        head = f.read(100)
        if len(head) < 100 or head[4:8] != b"CORD":
            raise ValueError(f"{path} is not a DCD file")
        nframes = struct.unpack("<i", head[8:12])[0]
        has_box = struct.unpack("<i", head[48:52])[0]
        comments = struct.unpack("<i", head[92:96])[0]
        f.seek(104 + comments)
        natoms = struct.unpack("<i", f.read(4))[0]
    header = 104 + comments + 8
    frame = (56 if has_box else 0) + 3 * (8 + 4 * natoms)
    return header, frame, nframes


def truncate_dcd(path: Path, frames: int) -> int:
    """Keep the first ``frames`` frames of an OpenMM DCD file (header updated); returns
    the frames it now holds."""
    header, frame, nframes = _dcd_layout(path)
    have = min(nframes, (path.stat().st_size - header) // frame)
    keep = max(0, min(frames, have))
    with open(path, "r+b") as f:
        f.truncate(header + keep * frame)
        f.seek(12)
        first, interval = struct.unpack("<ii", f.read(8))
        f.seek(8)
        f.write(struct.pack("<i", keep))
        f.seek(20)
        f.write(struct.pack("<i", first + max(keep - 1, 0) * interval))
    return keep


def truncate_csv(path: Path, rows: int) -> None:
    """Keep the header and the first ``rows`` data rows of a CSV file (atomically)."""
    with open(path, newline="") as f:
        lines = f.read().splitlines(keepends=True)
    write_text_atomic(path, "".join(lines[: 1 + rows]))


def read_json(path: Path) -> Dict[str, Any]:
    return json.loads(path.read_text())


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class RunDirError(ValueError):
    """``out_dir`` (``--out``) cannot take this run: a file, an unwritable path, a directory
    that already holds a run, or a run that cannot be continued."""


class CheckpointError(ValueError):
    """No checkpoint of a run directory is usable (missing, damaged, or written by another
    platform); the message names each file and why."""


class RunWriteError(OSError):
    """Writing a file of the run directory failed (a full disk, a removed directory, no
    permission); the one-line message names the file and the system's reason."""


@contextlib.contextmanager
def writing(path: Union[str, Path]):
    """Turn an OSError raised while writing ``path`` into a :class:`RunWriteError` whose
    one-line message names the file (FileNotFoundError included: the directory vanished)."""
    try:
        yield
    except RunWriteError:
        raise
    except OSError as err:
        why = err.strerror or str(err) or type(err).__name__
        code = f"[Errno {err.errno}] " if err.errno else ""
        new = RunWriteError(f"cannot write {path}: {code}{why}")
        new.errno = err.errno
        raise new from err


def check_out_dir(out: Union[str, Path], flag: str = "out_dir") -> Path:
    """RunDirError unless ``out`` can be a run directory: an existing writable directory, or
    a path whose nearest existing ancestor is a writable directory (the run creates the
    rest). Runs before anything else, so a bad ``--out`` costs nothing."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{flag} {out} is a file, not a directory: choose another run directory")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise RunDirError(f"{flag} {out}: {probe} is not a directory, so {out} cannot be created")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunDirError(f"{flag} {out}: {probe} is not writable (no permission)")
    return out


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class CheckpointCandidate:
    """A checkpoint file with the record (checkpoint.json or checkpoint.prev.json) whose size
    and SHA-256 it matches (``verified``; False for a record of an older cgaa without them)."""

    path: Path
    meta_path: Path
    meta: Dict[str, Any]
    verified: bool


class Checkpointer:
    """Writes checkpoint.chk/.json atomically, keeping the previous pair. Each record
    (``checkpoint.json``) holds the step, time, DCD frames and CSV rows that belong to the
    checkpoint and its file's size and SHA-256, which :meth:`usable` verifies before a restart
    loads anything."""

    def __init__(self, out_dir: Path):
        self.out = out_dir
        self.path = out_dir / CHECKPOINT_FILE
        self.meta = out_dir / CHECKPOINT_META
        self.prev_path = out_dir / PREV_CHECKPOINT_FILE
        self.prev_meta = out_dir / PREV_CHECKPOINT_META
        self.last_step: Optional[int] = None

    def save(self, context, step: int, time_ps: float, dcd_frames: int, csv_rows: int) -> Path:
        """Write the Context's checkpoint and its record; the pair before becomes the previous
        pair. Every intermediate state (a kill between two renames) leaves a record whose
        checksum matches one of the two checkpoint files, which :meth:`usable` finds."""
        data = context.createCheckpoint()
        meta = {"step": int(step), "time_ps": float(time_ps), "dcd_frames": int(dcd_frames),
                "csv_rows": int(csv_rows), "size_bytes": len(data), "sha256": sha256_bytes(data),
                "written": utc_now()}
        with writing(self.path), atomic_path(self.meta) as tmp_meta:  # (its exit moves tmp_meta on)
            tmp_chk = tmp_meta.with_name(f".{CHECKPOINT_FILE}.{os.getpid()}.tmp")
            try:
                _write_synced(tmp_chk, data)
                _write_synced(tmp_meta, json.dumps(meta, indent=1).encode())
                if self.path.exists() and self.meta.exists():
                    os.replace(self.path, self.prev_path)
                    os.replace(self.meta, self.prev_meta)
                os.replace(tmp_chk, self.path)
            finally:
                tmp_chk.unlink(missing_ok=True)
        self.last_step = int(step)
        return self.path

    def candidates(self) -> List[Tuple[Path, Path]]:
        return [(self.path, self.meta), (self.prev_path, self.prev_meta)]

    def usable(self) -> Tuple[List[CheckpointCandidate], List[str]]:
        """(checkpoints worth loading, newest step first; why each other file or record was
        passed over). A record without size and checksum (an older cgaa) is trusted for its
        own file only; the caller still checks the loaded state."""
        problems: List[str] = []
        records: List[Tuple[Path, Dict[str, Any], Path]] = []
        for chk, meta_path in self.candidates():
            if not meta_path.is_file():
                if chk.is_file():
                    problems.append(f"{chk.name}: no {meta_path.name} beside it (its step and checksum are unknown)")
                continue
            try:
                meta = read_json(meta_path)
                int(meta["step"]), int(meta["dcd_frames"]), int(meta["csv_rows"])
            except (OSError, ValueError, KeyError, TypeError) as err:
                problems.append(f"{meta_path.name}: unreadable record ({type(err).__name__}: {err})")
                continue
            records.append((meta_path, meta, chk))
        records.sort(key=lambda r: -int(r[1]["step"]))
        found: List[CheckpointCandidate] = []
        taken = set()
        for meta_path, meta, own in records:
            if "sha256" not in meta:  # written before checksums: its own file, checked after loading
                if own.is_file() and own not in taken:
                    found.append(CheckpointCandidate(own, meta_path, meta, verified=False))
                    taken.add(own)
                elif not own.is_file():
                    problems.append(f"{own.name}: missing ({meta_path.name} records step {meta['step']})")
                continue
            match = None
            why = []
            for chk in [own] + [c for c, _ in self.candidates() if c != own]:
                if not chk.is_file():
                    if chk == own:
                        why.append(f"{own.name}: missing")
                    continue
                if chk in taken:
                    if chk == own:
                        why.append(f"{own.name}: holds the checkpoint of a newer record")
                    continue
                bad = _mismatch(chk, meta)
                if bad is None:
                    match = chk
                    break
                if chk == own:
                    why.append(f"{chk.name}: {bad}")
            if match is None:
                problems.append("; ".join(why) + f" ({meta_path.name} records step {meta['step']}, "
                                f"{meta.get('size_bytes')} bytes, SHA-256 {str(meta['sha256'])[:12]}...)")
                continue
            taken.add(match)
            found.append(CheckpointCandidate(match, meta_path, meta, verified=True))
        return found, problems


def _mismatch(chk: Path, meta: Dict[str, Any]) -> Optional[str]:
    """Why the file ``chk`` is not the checkpoint ``meta`` records (None if it is)."""
    size = chk.stat().st_size
    if size == 0:
        return "empty file"
    want = meta.get("size_bytes")
    if want is not None and size != int(want):
        return f"{size} bytes where {int(want)} were written (truncated or damaged)"
    if file_sha256(chk) != meta["sha256"]:
        return "SHA-256 differs from the recorded one (damaged, or another run's file)"
    return None


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def has_checkpoint(out_dir: Union[str, Path]) -> bool:
    """Whether ``out_dir`` holds a checkpoint pair (the last or the previous) that a restart
    (``run_simulation(restart=True)``) would try."""
    return any(c.is_file() and m.is_file() for c, m in Checkpointer(Path(out_dir)).candidates())


def write_final_pdb(run_dir: Union[str, Path], path: Union[str, Path]) -> Path:
    """Write the last state of a run (``final_state.xml``: positions and box, nm) with the
    run's topology (``topology.pdb`` or ``.cif``) as a box file ``path`` (PDB, or
    PDBx/mmCIF for a ``.cif`` path), atomically — a start structure for another run, e.g. a
    CGAA run from a teacher run's equilibrated box."""
    import openmm

    run_dir = Path(run_dir)
    top_file = find_run_topology(run_dir) or run_dir / TOPOLOGY_FILE
    state_file = run_dir / FINAL_STATE_FILE
    for f in (top_file, state_file):
        if not f.is_file():
            raise FileNotFoundError(f"{f} not found: {run_dir} is not a finished cgaa run")
    try:
        state = openmm.XmlSerializer.deserialize(state_file.read_text())
    except Exception as err:  # OpenMM raises a bare Exception for a corrupt file
        raise ValueError(f"{state_file}: not a readable OpenMM state ({err})") from None
    topology = read_box(top_file).topology
    if state.getPositions(asNumpy=True).shape[0] != topology.getNumAtoms():
        raise ValueError(f"{state_file} has {state.getPositions(asNumpy=True).shape[0]} atoms but "
                         f"{top_file} has {topology.getNumAtoms()}")
    topology.setPeriodicBoxVectors(state.getPeriodicBoxVectors())
    return write_box(path, topology, state.getPositions(), keep_ids=True)


def load_state_csv(path: Union[str, Path]) -> Dict[str, np.ndarray]:
    """Columns of a ``state.csv`` as float arrays keyed by column name."""
    with open(path, newline="") as f:
        text = f.read()
    lines = text.splitlines(keepends=True)
    if len(lines) > 1 and not lines[-1].endswith("\n"):  # a last row cut short by a kill: not a row
        lines = lines[:-1]
    rows = list(csv.reader(lines))
    header = rows[0]
    data = np.array([[float(x) for x in r] for r in rows[1:]], dtype=float).reshape(-1, len(header))
    return {h: data[:, i] for i, h in enumerate(header)}
