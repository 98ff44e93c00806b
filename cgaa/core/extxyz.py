"""Labelled frames as extended XYZ (ASE): reading with key mapping and validation, atomic writing.

Conventions (Å, eV, eV/Å):

* per frame (``atoms.info``): ``REF_energy`` (eV), ``teacher``, ``temperature`` (K),
  ``recipe``, ``config_type`` ('equilibrium' | 'hot' | 'distorted' | ...);
* optional per frame: ``REF_stress`` (3×3, eV/Å³, ASE sign: σ = (1/V) ∂E/∂ε, pressure =
  −tr σ/3), needed to train the pressure (``loss.virial``);
* per atom (``atoms.arrays``): ``REF_forces`` (eV/Å), ``grain`` (int, 0-based grain =
  residue index), ``resname`` (residue name);
* cell in Å, ``pbc = True``.

:func:`read_frames` accepts the usual key conventions (``REF_energy``, ``energy``,
``total_energy``...; forces likewise, including values that ASE moved into a
SinglePointCalculator; stress as ``REF_stress``/``stress`` in Voigt or 3×3 form, or a virial
``REF_virial``/``virial`` = −V·σ in eV) and returns frames that use the cgaa keys.
"""
from __future__ import annotations

import errno
import re
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from cgaa.core.fileio import atomic_path

#: Keys tried, in order, for the reference energy (eV) of a frame.
ENERGY_KEYS = ("REF_energy", "energy", "total_energy", "Energy", "TotEnergy", "dft_energy", "free_energy")
#: Keys tried, in order, for the reference forces (eV/Å) of a frame.
FORCES_KEYS = ("REF_forces", "forces", "force", "total_forces", "Forces", "dft_forces")
#: Canonical names written by cgaa.
ENERGY = "REF_energy"
FORCES = "REF_forces"
#: Keys tried, in order, for the reference stress (eV/Å³, Voigt or 3×3).
STRESS_KEYS = ("REF_stress", "stress")
#: Keys tried after the stress keys for a reference virial W = −V·σ (eV, 3×3).
VIRIAL_KEYS = ("REF_virial", "virial")
#: Canonical name of the stress written by cgaa (3×3, eV/Å³).
STRESS = "REF_stress"


class FrameError(ValueError):
    """A frame of an extxyz file is unusable (missing/NaN labels, wrong sizes)."""


def _calc_results(atoms) -> dict:
    calc = getattr(atoms, "calc", None)
    return dict(getattr(calc, "results", {}) or {}) if calc is not None else {}


def _find_energy(atoms, keys: Sequence[str]) -> Optional[float]:
    res = _calc_results(atoms)
    for k in keys:
        if k in atoms.info:
            return float(atoms.info[k])
        if k in res:
            return float(res[k])
    return None


def _find_forces(atoms, keys: Sequence[str]) -> Optional[np.ndarray]:
    res = _calc_results(atoms)
    for k in keys:
        if k in atoms.arrays:
            return np.asarray(atoms.arrays[k], dtype=float)
        if k in res:
            return np.asarray(res[k], dtype=float)
    return None


def _as_3x3(value, where: str, key: str) -> np.ndarray:
    from ase.stress import voigt_6_to_full_3x3_stress

    v = np.asarray(value, dtype=float).ravel()
    if v.size == 6:  # Voigt order xx yy zz yz xz xy (ASE)
        return voigt_6_to_full_3x3_stress(v)
    if v.size == 9:
        return v.reshape(3, 3)
    raise FrameError(f"{where}: {key} has {v.size} values; expected 6 (Voigt) or 9 (3x3)")


def _find_stress(atoms, where: str) -> Optional[np.ndarray]:
    """The frame's stress (3×3, eV/Å³) from a stress or virial key, or None."""
    res = _calc_results(atoms)
    for keys, is_virial in ((STRESS_KEYS, False), (VIRIAL_KEYS, True)):
        for k in keys:
            val = atoms.info.get(k, res.get(k))
            if val is None:
                continue
            s = _as_3x3(val, where, k)
            if not np.isfinite(s).all():
                raise FrameError(f"{where}: {k} contains NaN/inf")
            if not atoms.pbc.all():
                raise FrameError(f"{where}: has {k} but no periodic cell (stress needs a volume)")
            if is_virial:
                s = -s / abs(float(np.linalg.det(atoms.cell[:])))
            return s
    return None


def normalize_frame(atoms, *, where: str = "frame", energy_key: Optional[str] = None,
                    forces_key: Optional[str] = None, require_energy: bool = True,
                    require_forces: bool = True):
    """Map a frame's energy/forces (whatever their key) to ``REF_energy``/``REF_forces``
    (and an optional stress or virial to a 3×3 ``REF_stress``, eV/Å³) and validate them.
    Raises :class:`FrameError` naming ``where`` for missing labels,
    NaN/inf values, or force/grain arrays whose length does not match the atom count."""
    n = len(atoms)
    ekeys = (energy_key,) if energy_key else ENERGY_KEYS
    fkeys = (forces_key,) if forces_key else FORCES_KEYS
    e = _find_energy(atoms, ekeys)
    f = _find_forces(atoms, fkeys)
    stress = _find_stress(atoms, where)
    if e is None and require_energy:
        raise FrameError(f"{where}: no energy (looked for {', '.join(ekeys)} in the frame info and calculator)")
    if f is None and require_forces:
        raise FrameError(f"{where}: no forces (looked for {', '.join(fkeys)} in the per-atom arrays and calculator)")
    for k in set(ENERGY_KEYS) - {ENERGY}:
        atoms.info.pop(k, None)
    for k in set(FORCES_KEYS) - {FORCES}:
        if k in atoms.arrays:
            del atoms.arrays[k]
    for k in STRESS_KEYS + VIRIAL_KEYS:
        atoms.info.pop(k, None)
    if stress is not None:
        atoms.info[STRESS] = stress
    atoms.calc = None
    if e is not None:
        if not np.isfinite(e):
            raise FrameError(f"{where}: energy is {e}")
        atoms.info[ENERGY] = float(e)
    if f is not None:
        if f.shape != (n, 3):
            raise FrameError(f"{where}: forces have shape {f.shape}, but the frame has {n} atoms")
        bad = np.where(~np.isfinite(f).all(axis=1))[0]
        if len(bad):
            symbols = atoms.get_chemical_symbols()
            raise FrameError(f"{where}: forces are NaN/inf on atom(s) {bad[:10].tolist()} "
                             f"({', '.join(symbols[k] for k in bad[:10])})")
        atoms.arrays[FORCES] = f
    bad_pos = np.where(~np.isfinite(atoms.positions).all(axis=1))[0]
    if len(bad_pos):
        raise FrameError(f"{where}: positions are NaN/inf on atom(s) {bad_pos[:10].tolist()}")
    if "grain" in atoms.arrays and len(atoms.arrays["grain"]) != n:
        raise FrameError(f"{where}: grain array has {len(atoms.arrays['grain'])} entries for {n} atoms")
    return atoms


#: ASE's default columns of a frame without a Properties key
_DEFAULT_PROPERTIES = "species:S:1:pos:R:3"
_PROPERTIES = re.compile(r'(?i)(?:^|\s)properties=("?)([^"\s]+)\1')


def _columns(comment: str) -> Tuple[str, Optional[List[Tuple[str, str, int, int]]]]:
    """(Properties text, [(name, type, first column, count)]) of a frame's comment line; the
    list is None when the Properties key cannot be understood."""
    m = _PROPERTIES.search(comment)
    props = m.group(2) if m else _DEFAULT_PROPERTIES
    fields = props.split(":")
    if len(fields) % 3:
        return props, None
    cols, start = [], 0
    for k in range(0, len(fields), 3):
        name, typ, count = fields[k], fields[k + 1].upper(), fields[k + 2]
        if typ not in ("S", "R", "I", "L") or not count.isdigit():
            return props, None
        cols.append((name, typ, start, int(count)))
        start += int(count)
    return props, cols


def _value_ok(value: str, typ: str) -> bool:
    try:
        if typ == "R":
            float(value)
        elif typ == "I":
            int(value)
        elif typ == "L":
            return value in ("T", "F", "True", "False", "true", "false")
    except ValueError:
        return False
    return True


_WHAT = {"R": "a number", "I": "an integer", "L": "a logical (T or F)"}


def diagnose_extxyz(path: Union[str, Path]) -> Optional[str]:
    """Where the layout of an extxyz file goes wrong, as 'frame F, atom A (line L): ...' (the
    atom count lines, the number of atom lines, the columns that Properties declares and their
    types), or None when the layout looks right. Frames, atoms and lines count as in the
    messages of :func:`read_frames`: frames and atoms from 0, lines from 1."""
    try:
        lines = Path(path).read_text().splitlines()
    except UnicodeDecodeError:
        return "not a text file (binary data): not an extxyz file"
    i, frame, prev = 0, 0, None
    while i < len(lines):
        if not "".join(lines[i:]).strip():
            break  # trailing blank lines
        head = lines[i].strip()
        try:
            n = int(head)
            if n < 0:
                raise ValueError
        except ValueError:
            hint = (f"; does the atom count of frame {frame - 1} ({prev[1]}, line {prev[0]}) match its atom lines?"
                    if prev else "; an extxyz frame starts with its number of atoms")
            return f"frame {frame} (line {i + 1}): expected the atom count, got {head[:50]!r}{hint}"
        if i + 1 >= len(lines):
            return f"frame {frame} (line {i + 1}): the file ends after the atom count (truncated?)"
        props, cols = _columns(lines[i + 1])
        ncol = sum(c[3] for c in cols) if cols else None
        for a in range(n):
            j = i + 2 + a
            if j >= len(lines):
                return (f"frame {frame}: its atom count (line {i + 1}) says {n} atoms, but the file ends after "
                        f"{a} atom lines (truncated?)")
            tok = lines[j].split()
            if ncol is not None and len(tok) != ncol:
                hint = ""
                if len(tok) == 1 and tok[0].isdigit():
                    hint = f": a new frame seems to start here; does the atom count {n} (line {i + 1}) match the frame?"
                elif len(tok) < ncol:
                    short = [name for name, _, start, count in cols if start + count > len(tok)]
                    hint = f" (too few for {', '.join(short)})"
                return (f"frame {frame}, atom {a} (line {j + 1}): {len(tok)} column{'s' * (len(tok) != 1)}, "
                        f"but Properties={props} "
                        f"declares {ncol}{hint}")
            for name, typ, start, count in cols or []:
                for v in tok[start:start + count]:
                    if not _value_ok(v, typ):
                        return f"frame {frame}, atom {a} (line {j + 1}): {name} value {v!r} is not {_WHAT[typ]}"
        prev = (i + 1, n)
        i += 2 + n
        frame += 1
    return None


def _parse_error(path: Path, err: Exception) -> FrameError:
    """A FrameError naming where ``path`` stops being extxyz (after ASE failed on it)."""
    import ase.io

    where = diagnose_extxyz(path)
    if where is not None:
        return FrameError(f"{path}: {where}")
    n_read = 0
    try:
        for _ in ase.io.iread(str(path), index=":", format="extxyz"):
            n_read += 1
    except Exception:  # noqa: BLE001 - the frame that fails is all we want to know
        pass
    first = (str(err).strip().splitlines() or [""])[0][:200]
    return FrameError(f"{path} frame {n_read}: cannot parse as extxyz ({type(err).__name__}: {first})")


def read_frames(path: Union[str, Path], index: Union[str, int, slice] = ":", *,
                energy_key: Optional[str] = None, forces_key: Optional[str] = None,
                require_energy: bool = True, require_forces: bool = True,
                n_atoms: Optional[int] = None) -> list:
    """Read an extxyz file into a list of ASE Atoms using the cgaa keys.

    energy_key/forces_key: use exactly this key instead of trying :data:`ENERGY_KEYS` /
    :data:`FORCES_KEYS`; require_*: whether a frame without the label is an error;
    n_atoms: if given, every frame must have this many atoms. Errors name the file and
    the frame (0-based), and for a malformed file the atom and line
    (:func:`diagnose_extxyz`): FileNotFoundError, or :class:`FrameError`.
    """
    import ase.io

    path = Path(path)
    if path.is_dir():
        raise FrameError(f"{path} is a directory, not an extxyz file")
    if not path.is_file():
        raise FileNotFoundError(f"extxyz file {path} does not exist")
    if path.stat().st_size == 0:
        raise FrameError(f"{path}: empty file (no frames)")
    try:
        frames = ase.io.read(str(path), index=index, format="extxyz")
    except Exception as err:  # ASE raises assorted errors for malformed files
        raise _parse_error(path, err) from None
    if not isinstance(frames, list):
        frames = [frames]
    if not frames:
        raise FrameError(f"{path}: no frames")
    for i, at in enumerate(frames):
        where = f"{path} frame {i}"
        if n_atoms is not None and len(at) != n_atoms:
            raise FrameError(f"{where}: has {len(at)} atoms, expected {n_atoms} (as every frame of this input)")
        normalize_frame(at, where=where, energy_key=energy_key, forces_key=forces_key,
                        require_energy=require_energy, require_forces=require_forces)
    return frames


def write_frames(path: Union[str, Path], frames: Iterable, *, validate: bool = True) -> Path:
    """Write frames to ``path`` as extxyz atomically (temp file in the same folder, then
    rename): an error leaves no partial file. With ``validate``, every frame must carry a
    finite ``REF_energy`` and ``REF_forces`` of the right shape (FrameError otherwise)."""
    import ase.io

    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "the output is a directory, not a file", str(path))
    frames = list(frames)
    if validate:
        for i, at in enumerate(frames):
            normalize_frame(at, where=f"frame {i} to be written to {path}")
    with atomic_path(path) as tmp:
        ase.io.write(str(tmp), frames, format="extxyz")
    return path


def make_frame(symbols: Sequence[str], positions: np.ndarray, cell: np.ndarray, *,
               energy: Optional[float] = None, forces: Optional[np.ndarray] = None,
               grain: Optional[Sequence[int]] = None, resname: Optional[Sequence[str]] = None,
               info: Optional[dict] = None):
    """An ASE Atoms frame with the cgaa keys. positions and cell in Å (cell rows = box
    vectors), energy in eV, forces in eV/Å; pbc is set True."""
    from ase import Atoms

    at = Atoms(symbols=list(symbols), positions=np.asarray(positions, dtype=float),
               cell=np.asarray(cell, dtype=float), pbc=True)
    if energy is not None:
        at.info[ENERGY] = float(energy)
    if forces is not None:
        at.arrays[FORCES] = np.asarray(forces, dtype=float)
    if grain is not None:
        at.arrays["grain"] = np.asarray(grain, dtype=int)
    if resname is not None:
        at.arrays["resname"] = np.asarray([str(r) for r in resname])
    for k, v in (info or {}).items():
        at.info[k] = v
    return at


__all__ = ["ENERGY", "ENERGY_KEYS", "FORCES", "FORCES_KEYS", "STRESS", "STRESS_KEYS", "VIRIAL_KEYS", "FrameError",
           "diagnose_extxyz", "make_frame",
           "normalize_frame", "read_frames", "write_frames"]
