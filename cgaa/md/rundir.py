"""The run directory of ``cgaa simulate``: its file names, atomic checkpoints (the last
and the previous pair, :class:`Checkpointer`), truncation of ``traj.dcd`` and ``state.csv``
to a checkpoint on restart, reading ``state.csv``, and a finished run's last state as a
box file (:func:`write_final_pdb`)."""
from __future__ import annotations

import csv
import datetime
import json
import os
import struct
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from cgaa.core.fileio import atomic_path, write_text_atomic
from cgaa.systems.boxfile import find_run_topology, read_box, write_box


TRAJ_FILE = "traj.dcd"


TOPOLOGY_FILE = "topology.pdb"  # topology.cif above 99,999 atoms (cgaa.systems.boxfile.run_topology_name)


STATE_FILE = "state.csv"


CHECKPOINT_FILE = "checkpoint.chk"


CHECKPOINT_META = "checkpoint.json"


PREV_CHECKPOINT_FILE = "checkpoint.prev.chk"


PREV_CHECKPOINT_META = "checkpoint.prev.json"


FINAL_STATE_FILE = "final_state.xml"


RUN_FILE = "run.json"


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


class Checkpointer:
    """Writes checkpoint.chk/.json atomically, keeping the previous pair."""

    def __init__(self, out_dir: Path):
        self.out = out_dir
        self.path = out_dir / CHECKPOINT_FILE
        self.meta = out_dir / CHECKPOINT_META
        self.last_step: Optional[int] = None

    def save(self, context, step: int, time_ps: float, dcd_frames: int, csv_rows: int) -> Path:
        data = context.createCheckpoint()
        meta = {"step": int(step), "time_ps": float(time_ps), "dcd_frames": int(dcd_frames),
                "csv_rows": int(csv_rows), "written": utc_now()}
        with atomic_path(self.path) as tmp_chk, atomic_path(self.meta) as tmp_meta:
            tmp_chk.write_bytes(data)
            tmp_meta.write_text(json.dumps(meta, indent=1))
            if self.path.exists() and self.meta.exists():
                os.replace(self.path, self.out / PREV_CHECKPOINT_FILE)
                os.replace(self.meta, self.out / PREV_CHECKPOINT_META)
        self.last_step = int(step)
        return self.path

    def candidates(self) -> List[Tuple[Path, Path]]:
        return [(self.path, self.meta),
                (self.out / PREV_CHECKPOINT_FILE, self.out / PREV_CHECKPOINT_META)]


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
        rows = list(csv.reader(f))
    header = rows[0]
    data = np.array([[float(x) for x in r] for r in rows[1:]], dtype=float).reshape(-1, len(header))
    return {h: data[:, i] for i, h in enumerate(header)}
