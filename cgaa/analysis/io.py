"""Loading trajectories for analysis, with checks that name the culprit.

Any format mdtraj reads works (DCD, XTC, TRR, NetCDF, HDF5 ...) with a topology file
(PDB or PDBx/mmCIF with one residue per molecule, ideally with bonds). The time between frames
comes, in order of preference, from the user (``dt_ps``), from the DCD header (OpenMM
writes the integration step and the report interval there: mdtraj does not read it),
or from the frame times stored in the file (XTC, TRR, NetCDF, HDF5).

A run directory from ``cgaa simulate`` holds ``traj.dcd`` and ``topology.pdb`` (or
``topology.cif`` above 99,999 atoms; else the single ``*.pdb``/``*.cif`` of the directory
is used) and ``state.csv`` (OpenMM StateDataReporter output, whose mean temperature is used
when none is given).
"""
from __future__ import annotations

import contextlib
import csv
import os
import struct
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from cgaa.systems.boxfile import BOX_SUFFIXES, find_run_topology

PathLike = Union[str, os.PathLike]

#: One AKMA time unit in ps (the DCD header stores the time step in AKMA units).
AKMA_TIME_PS: float = 0.04888821


def dcd_timestep_ps(path: PathLike) -> Optional[float]:
    """Time between saved frames (ps) from a DCD header, or None if not stored.

    The header holds NSAVC (steps between frames) and DELTA (integration step in AKMA
    time units, float32 for CHARMM-style files, float64 for X-PLOR ones).
    """
    with open(path, "rb") as f:
        head = f.read(92)
    if len(head) < 92:
        return None
    for endian in ("<", ">"):
        if struct.unpack(endian + "i", head[:4])[0] == 84 and head[4:8] == b"CORD":
            icntrl = struct.unpack(endian + "20i", head[8:88])
            nsavc = icntrl[2]
            charmm = icntrl[19] != 0
            if charmm:
                delta = struct.unpack(endian + "f", head[8 + 9 * 4:8 + 10 * 4])[0]
            else:
                delta = struct.unpack(endian + "d", head[8 + 9 * 4:8 + 11 * 4])[0]
            dt = float(f"{nsavc * delta * AKMA_TIME_PS:.6g}")  # DELTA is float32
            return dt if np.isfinite(dt) and dt > 0 else None
    return None


@contextlib.contextmanager
def _quiet_c_stdout():
    """Silence C-level stdout (mdtraj's DCD plugin prints 'dcdplugin) ...' lines)."""
    try:
        sys.stdout.flush()
        fd = sys.__stdout__.fileno() if sys.__stdout__ is not None else 1
        saved = os.dup(fd)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _n_atoms_in_file(path: Path) -> Optional[int]:
    """Number of atoms per frame stored in a trajectory file (None if unknown)."""
    import mdtraj as md

    try:
        with _quiet_c_stdout(), md.open(str(path)) as f:
            out = f.read(n_frames=1)
            xyz = out[0] if isinstance(out, tuple) else getattr(out, "xyz", out)
            return int(np.asarray(xyz).shape[1])
    except Exception:
        return None


def load_trajectory(traj_path: PathLike, top_path: PathLike, stride: int = 1,
                    dt_ps: Optional[float] = None):
    """Load one trajectory with its topology, checking both.

    Args:
        traj_path: trajectory file (DCD, XTC, ...), positions in nm (mdtraj convention).
        top_path: topology file (PDB).
        stride: keep every ``stride``-th frame.
        dt_ps: time between saved frames in ps (before striding); from the file if None.

    Returns:
        (mdtraj.Trajectory, dt_ps between the loaded frames).

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: atom-count mismatch, no frames, no box, unknown time step.
    """
    import mdtraj as md

    traj_path, top_path = Path(traj_path), Path(top_path)
    for p, what in ((traj_path, "trajectory"), (top_path, "topology")):
        if not p.is_file():
            raise FileNotFoundError(f"{what} file not found: {p}")
    try:
        top = md.load_topology(str(top_path))
    except Exception as err:
        raise ValueError(f"cannot read topology {top_path}: {err}") from None
    if top.n_atoms == 0:
        raise ValueError(f"topology {top_path} has no atoms")
    n_file = _n_atoms_in_file(traj_path)
    if n_file is not None and n_file != top.n_atoms:
        raise ValueError(
            f"atom count mismatch: trajectory {traj_path} has {n_file} atoms per frame but topology "
            f"{top_path} has {top.n_atoms} (is the topology missing atoms, or the wrong file?)")
    try:
        with _quiet_c_stdout():
            traj = md.load(str(traj_path), top=top, stride=stride)
    except Exception as err:
        raise ValueError(f"cannot read trajectory {traj_path} with topology {top_path}: {err}") from None
    if traj.n_frames < 2:
        raise ValueError(f"trajectory {traj_path} has {traj.n_frames} frame(s); need many for transport")
    if traj.unitcell_vectors is None:
        raise ValueError(f"trajectory {traj_path} has no periodic box (unit cell); write it with the box")
    if dt_ps is None and traj_path.suffix.lower() == ".dcd":
        dt_ps = dcd_timestep_ps(traj_path)
    if dt_ps is None:
        t = np.asarray(traj.time, float)
        dts = np.diff(t)
        if len(dts) and np.all(dts > 0) and np.allclose(dts, dts[0], rtol=1e-3) and traj_path.suffix.lower() != ".dcd":
            return traj, float(dts[0])
        raise ValueError(f"time between frames unknown for {traj_path}: give it (dt_ps / --dt-ps)")
    if dt_ps <= 0:
        raise ValueError(f"time step between frames must be > 0 ps, got {dt_ps}")
    traj.time = np.arange(traj.n_frames) * dt_ps * stride
    return traj, float(dt_ps) * stride


def find_run_files(run_dir: PathLike) -> Tuple[List[Path], Path]:
    """Trajectory and topology of a ``cgaa simulate`` run directory.

    Looks for ``traj.dcd`` (else all ``*.dcd``/``*.xtc`` files, sorted, as replicas) and
    ``topology.pdb`` or ``topology.cif`` (else the single ``*.pdb``/``*.cif`` in the directory).
    """

    d = Path(run_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"run directory not found: {d}")
    trajs = [d / "traj.dcd"] if (d / "traj.dcd").is_file() else sorted(
        list(d.glob("*.dcd")) + list(d.glob("*.xtc")))
    if not trajs:
        raise FileNotFoundError(f"no trajectory in {d}: expected traj.dcd (or *.dcd / *.xtc)")
    top = find_run_topology(d)
    if top is None:
        boxes = sorted(p for p in d.iterdir() if p.suffix.lower() in BOX_SUFFIXES and p.is_file())
        if len(boxes) != 1:
            raise FileNotFoundError(
                f"no topology.pdb or topology.cif in {d} and {'no' if not boxes else 'several'} other "
                f"*.pdb/*.cif ({', '.join(p.name for p in boxes)}): give --top")
        top = boxes[0]
    return trajs, top


def read_state_temperature(path: PathLike) -> Optional[float]:
    """Mean temperature (K) from an OpenMM StateDataReporter CSV, or None if absent."""
    p = Path(path)
    if not p.is_file():
        return None
    with open(p, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return None
    header = [h.strip().lstrip("#").strip().strip('"') for h in rows[0]]
    col = next((i for i, h in enumerate(header) if h.lower().startswith("temperature")), None)
    if col is None:
        return None
    vals = []
    for r in rows[1:]:
        try:
            vals.append(float(r[col]))
        except (IndexError, ValueError):
            continue
    return float(np.mean(vals)) if vals else None


def join_checked(trajs: Sequence) -> None:
    """Raise ValueError if replica trajectories do not share the atom count."""
    n = {t.n_atoms for t in trajs}
    if len(n) > 1:
        raise ValueError(f"replica trajectories differ in atom count: {sorted(n)}")
