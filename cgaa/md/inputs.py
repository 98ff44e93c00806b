"""What a run starts from, checked before anything runs: the coordinates of the input
(finite, not absurdly far from the box: :func:`check_coordinates`), molecules made whole
(:func:`make_molecules_whole`), the ``model`` argument (a training checkpoint is not a
deployed model: :func:`check_model_file`) and the finished run a continuation starts from
(:func:`read_continuation`: its final state with velocities and box, its topology)."""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from cgaa.core.modelfile import TRAINING_CHECKPOINT_PREFIX, is_deployed_model
from cgaa.md.rundir import FINAL_STATE_FILE, MODEL_FILE, RUN_FILE, RunDirError, read_json
from cgaa.systems.boxfile import find_run_topology, read_box

#: An input atom farther than this many box lengths from the origin (along any cell vector,
#: i.e. a fractional coordinate beyond ±10) is refused. A box file holds its atoms in or near
#: the cell (fractional 0..1), an unwrapped frame of a long run a few box lengths out (a Li⁺
#: diffusing 1e-9 m²/s for 100 ns moves ~25 nm, ~5 lengths of a 5 nm box); far beyond that a
#: coordinate is a typo or an overflow (x = 9999.999 Å), which only shows up after minutes of
#: minimisation otherwise.
MAX_BOX_LENGTHS = 10.0



def atom_label(atom) -> str:
    """How messages name an input atom: its PDB serial (the topology's atom id, the 1-based
    index where the input had none), name and residue, e.g. ``atom 17 (H3, residue EC 4)``."""
    serial = atom.id if atom.id not in (None, "") else str(atom.index + 1)
    res = atom.residue
    return f"atom {serial} ({atom.name}, residue {res.name} {res.id})"


def positions_nm(positions) -> np.ndarray:
    """An (N, 3) float array in nm from an OpenMM Quantity (list of Vec3 or array) or array (nm)."""
    from openmm.unit import is_quantity, nanometer

    if is_quantity(positions):
        positions = positions.value_in_unit(nanometer)
    return np.array([[float(c) for c in p] for p in positions], dtype=float).reshape(-1, 3)


def check_coordinates(topology, pos_nm: np.ndarray, box_nm: np.ndarray,
                      max_box_lengths: float = MAX_BOX_LENGTHS) -> None:
    """ValueError naming the first atom (PDB serial, name, residue) whose position is not
    finite, or that lies more than ``max_box_lengths`` box lengths from the origin along a
    cell vector (:data:`MAX_BOX_LENGTHS`)."""
    atoms = list(topology.atoms())
    bad = ~np.isfinite(pos_nm).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        x = ", ".join(f"{v * 10:g}" for v in pos_nm[i])
        raise ValueError(f"{atom_label(atoms[i])} has a non-finite position ({x}) A in the input"
                         + (f" ({int(bad.sum())} atoms in all)" if bad.sum() > 1 else "")
                         + ": fix the box file")
    frac = pos_nm @ np.linalg.inv(box_nm)
    far = np.abs(frac).max(axis=1)
    if far.size and far.max() > max_box_lengths:
        i = int(np.argmax(far))
        x = ", ".join(f"{v * 10:.3f}" for v in pos_nm[i])
        raise ValueError(f"{atom_label(atoms[i])} is at ({x}) A, {far[i]:.0f} box lengths from the origin "
                         f"(more than {max_box_lengths:g} are refused): a coordinate typo or overflow in the "
                         "input? fix the box file")


def make_molecules_whole(topology, pos_nm: np.ndarray, box_nm: np.ndarray) -> Tuple[np.ndarray, int]:
    """(positions, molecules changed): each residue's atoms moved to the minimum image about
    its first atom (fractional-coordinate rounding, the convention of the model's own
    unwrapping, cgaa.core.model). A box whose writer wrapped atoms into the cell one by one
    (GROMACS, LAMMPS) then starts with whole molecules; the energy is the same (the forces are
    image-invariant), the trajectory and molecule-centre analyses are not broken."""
    out = np.array(pos_nm, dtype=float, copy=True)
    inv = np.linalg.inv(box_nm)
    changed = 0
    for res in topology.residues():
        idx = [a.index for a in res.atoms()]
        if len(idx) < 2:
            continue
        d = out[idx[1:]] - out[idx[0]]
        shift = np.round(d @ inv)
        if np.any(shift != 0):
            out[idx[1:]] = out[idx[1:]] - shift @ box_nm
            changed += 1
    return out, changed


def is_training_checkpoint(path: Union[str, Path]) -> bool:
    """Whether ``path`` is a training checkpoint of ``cgaa train`` (a torch.save dict whose
    ``format`` is cgaa-checkpoint-N), read without unpickling anything."""
    try:
        with zipfile.ZipFile(str(path)) as z:
            for name in z.namelist():
                if name.endswith("data.pkl"):
                    return TRAINING_CHECKPOINT_PREFIX.encode() in z.read(name)
    except (zipfile.BadZipFile, OSError, KeyError):
        return False
    return False


def check_model_file(model) -> None:
    """For a ``model`` given as the path of a file: ValueError if it is a training checkpoint
    (best.pt of ``cgaa train``), which has to be deployed first. Anything else (a shipped
    model's name, a missing file) is left to the model loader."""
    if not isinstance(model, (str, Path)):
        return
    path = Path(model)
    if path.is_file() and not is_deployed_model(path) and is_training_checkpoint(path):
        raise ValueError(f"model {path}: this is a training checkpoint: run cgaa deploy {path} -o model.pt "
                         "and give the deployed model.pt")


@dataclass
class Continuation:
    """The finished run a new run continues (``continue_from``): its directory, run.json,
    topology (box = the final state's), final state (positions, velocities, box) and model copy."""

    source: Path
    run_info: Dict[str, Any]
    topology: Any
    state: Any
    model_path: Optional[Path]

    @property
    def step(self) -> int:
        return int(self.state.getStepCount())

    @property
    def time_ps(self) -> float:
        from openmm.unit import picosecond

        return float(self.state.getTime().value_in_unit(picosecond))


def read_continuation(source: Union[str, Path], flag: str = "continue_from") -> Continuation:
    """Read the run directory ``source``: final_state.xml (positions, velocities, box),
    topology.pdb/.cif, run.json; RunDirError naming what is missing."""
    import openmm

    src = Path(source)
    if not src.is_dir():
        raise RunDirError(f"{flag} {src}: no such run directory")
    state_file = src / FINAL_STATE_FILE
    top_file = find_run_topology(src)
    if not (src / RUN_FILE).is_file() or top_file is None:
        raise RunDirError(f"{flag} {src}: not a cgaa simulate run directory (no {RUN_FILE} or topology file)")
    if not state_file.is_file():
        raise RunDirError(f"{flag} {src}: no {FINAL_STATE_FILE}, so the run did not finish; finish it with "
                          f"--restart --out {src} (or continue from its checkpoint that way)")
    try:
        state = openmm.XmlSerializer.deserialize(state_file.read_text())
    except Exception as err:  # OpenMM raises a bare Exception for a corrupt file
        raise RunDirError(f"{flag} {src}: {state_file.name} is not a readable OpenMM state ({err})") from None
    try:
        velocities = state.getVelocities(asNumpy=True)
    except Exception:
        raise RunDirError(f"{flag} {src}: {state_file.name} holds no velocities") from None
    topology = read_box(top_file).topology
    n = state.getPositions(asNumpy=True).shape[0]
    if n != topology.getNumAtoms() or velocities.shape[0] != n:
        raise RunDirError(f"{flag} {src}: {state_file.name} has {n} atoms but {top_file.name} "
                          f"{topology.getNumAtoms()}")
    topology.setPeriodicBoxVectors(state.getPeriodicBoxVectors())
    run_info = read_json(src / RUN_FILE)
    model_path = src / MODEL_FILE if (src / MODEL_FILE).is_file() and run_info.get("system") is None else None
    return Continuation(src, run_info, topology, state, model_path)
