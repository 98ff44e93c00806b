"""Labelled frames for training: loading, grain typing, splitting, statistics, tensors.

Frames come from extxyz files (see :mod:`cgaa.core.extxyz`: ``REF_energy`` eV,
``REF_forces`` eV/Å, optional per-atom ``grain``). Grains are typed once per distinct
system (same atoms, same grain index) from its most relaxed frame, so stretched bonds in
hot or distorted frames cannot change a grain's chemistry key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from cgaa.core.extxyz import STRESS, FrameError, read_frames
from cgaa.core.grains import GrainMap, atomic_grains, grains_from_atoms
from cgaa.core.inputs import grain_type_indices, species_indices, vocabulary
from cgaa.core.model import ModelConfig, grain_centers
from cgaa.core.neighbors import neighbor_pairs
from cgaa.priors import subtract_prior


@dataclass
class Frame:
    """One labelled configuration (Å, eV, eV/Å)."""

    numbers: np.ndarray
    positions: np.ndarray
    cell: Optional[np.ndarray]
    energy: float
    forces: np.ndarray
    grain_map: GrainMap
    source: str
    info: Dict = field(default_factory=dict)
    #: reference stress (3×3, eV/Å³, ASE sign), or None when the frame has none
    stress: Optional[np.ndarray] = None

    @property
    def n_atoms(self) -> int:
        return int(len(self.numbers))


def _system_signature(atoms) -> Tuple[bytes, bytes]:
    grain = atoms.arrays.get("grain")
    return atoms.numbers.tobytes(), (b"" if grain is None else np.asarray(grain, dtype=np.int64).tobytes())


def load_frames(paths: Union[str, Path, Sequence[Union[str, Path]]], all_atom: bool = False,
                energy_key: Optional[str] = None, forces_key: Optional[str] = None,
                prior: Optional[str] = None) -> List[Frame]:
    """Read labelled frames from extxyz file(s) and type their grains.

    Parameters
    ----------
    paths: one file or several.
    all_atom: every atom its own grain (the all-atom baseline) instead of molecules.
    energy_key, forces_key: force a label key (default: try the usual conventions).
    prior: labels become residuals over this prior (see :mod:`cgaa.priors`): what a model
        with ``ModelConfig.prior`` = ``prior`` is trained on and evaluated against.

    Raises FileNotFoundError / :class:`~cgaa.core.extxyz.FrameError` naming the file and
    frame at fault (missing labels, NaN, wrong sizes, no frames).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    frames: List[Frame] = []
    for path in paths:
        atoms_list = read_frames(path, energy_key=energy_key, forces_key=forces_key)
        groups: Dict[Tuple[bytes, bytes], List[int]] = {}
        for i, at in enumerate(atoms_list):
            groups.setdefault(_system_signature(at), []).append(i)
        maps: Dict[Tuple[bytes, bytes], GrainMap] = {}
        for sig, idx in groups.items():
            ref = atoms_list[min(idx, key=lambda i: float(np.sqrt((atoms_list[i].arrays["REF_forces"] ** 2).mean())))]
            if all_atom:
                maps[sig] = atomic_grains(ref.numbers)
            else:
                maps[sig] = grains_from_atoms(ref)
            if prior is not None:

                subtract_prior([atoms_list[i] for i in idx], prior, source=str(path), reference=ref,
                               grain_index=None if all_atom else maps[sig].grain_index)
        for i, at in enumerate(atoms_list):
            if at.pbc.any() and not at.pbc.all():
                raise FrameError(f"{path} frame {i}: pbc must be on all three axes or none, got {list(at.pbc)}")
            cell = np.asarray(at.cell[:], dtype=float) if at.pbc.all() else None
            frames.append(Frame(
                numbers=at.numbers.copy(), positions=at.positions.copy(), cell=cell,
                energy=float(at.info["REF_energy"]), forces=np.asarray(at.arrays["REF_forces"], dtype=float),
                grain_map=maps[_system_signature(at)], source=f"{path} frame {i}",
                info={k: v for k, v in at.info.items() if isinstance(v, (str, int, float))},
                stress=None if STRESS not in at.info else np.asarray(at.info[STRESS], dtype=float).reshape(3, 3),
            ))
    if not frames:
        raise FrameError(f"no frames in {', '.join(map(str, paths))}")
    return frames


def split_frames(frames: Sequence[Frame], val_fraction: float, test_fraction: float,
                 seed: int = 0) -> Tuple[List[Frame], List[Frame], List[Frame]]:
    """Random train/validation/test split (fractions of the frames). ValueError if a split is empty."""
    n = len(frames)
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in [0, 1) "
                         "and sum to less than 1")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(val_fraction * n))
    n_test = int(round(test_fraction * n))
    val = [frames[i] for i in perm[:n_val]]
    test = [frames[i] for i in perm[n_val:n_val + n_test]]
    train = [frames[i] for i in perm[n_val + n_test:]]
    for name, part, frac in (("train", train, 1.0), ("validation", val, val_fraction), ("test", test, test_fraction)):
        if frac > 0 and not part:
            raise ValueError(f"the {name} split is empty ({n} frames, val_fraction={val_fraction}, "
                             f"test_fraction={test_fraction}): give more frames or change the fractions")
    return train, val, test


def vocabulary_of(frames: Sequence[Frame]) -> Tuple[List[int], List[str], List[str]]:
    """Sorted elements and grain types (keys, names) present in frames."""

    maps = {id(f.grain_map): f.grain_map for f in frames}
    return vocabulary(maps.values(), [np.unique(f.numbers) for f in frames])


def check_covered(frames: Sequence[Frame], config: ModelConfig) -> None:
    """ValueError naming the first frame with an element or grain type the model does not know."""
    for f in frames:
        try:
            species_indices(np.unique(f.numbers), config.elements)
            grain_type_indices(f.grain_map, config.grain_types, config.grain_type_names)
        except ValueError as err:
            raise ValueError(f"{f.source}: {err}") from None


def _masses(numbers: np.ndarray, config: ModelConfig) -> np.ndarray:
    table = dict(zip(config.elements, config.masses))
    return np.array([table[int(z)] for z in numbers])


def frame_tensors(frame: Frame, config: ModelConfig, dtype: torch.dtype = torch.float32,
                  device: Union[str, torch.device] = "cpu") -> Dict[str, torch.Tensor]:
    """Model inputs plus reference labels of a frame, in the model's vocabulary.

    Keys: pos, species, grain_index, grain_type, cell (model inputs); energy (eV),
    forces (eV/Å), forces_inter, forces_intra (reference forces split with the model's
    masses), grain_forces (net reference force per grain), n_atoms; for frames with a
    stress also virial (−V·σ, 3×3 eV), virial_mol (the molecular virial the model's
    ``virial_mol`` predicts: virial − Σ_i F_i ⊗ u_i, u_i = r_i − R_G with the model's masses)
    and volume (Å³).
    """
    gi = frame.grain_map.grain_index
    m = _masses(frame.numbers, config)
    g = frame.grain_map.n_grains
    mg = np.bincount(gi, weights=m, minlength=g)
    f = frame.forces
    fg = np.zeros((g, 3))
    np.add.at(fg, gi, f)
    f_inter = (m / mg[gi])[:, None] * fg[gi]

    def t(x, dt=dtype):
        return torch.as_tensor(np.asarray(x), dtype=dt, device=device)

    out = {
        "pos": t(frame.positions),
        "species": t(species_indices(frame.numbers, config.elements), torch.long),
        "grain_index": t(gi, torch.long),
        "grain_type": t(grain_type_indices(frame.grain_map, config.grain_types, config.grain_type_names), torch.long),
        "cell": None if frame.cell is None else t(frame.cell),
        "energy": t(frame.energy, torch.float64),
        "forces": t(f),
        "forces_inter": t(f_inter),
        "forces_intra": t(f - f_inter),
        "grain_forces": t(fg),
        "n_atoms": t(frame.n_atoms, torch.float64),
    }
    if frame.stress is not None and frame.cell is not None:

        _, u, _ = grain_centers(torch.as_tensor(frame.positions), torch.as_tensor(m), torch.as_tensor(gi),
                                g, torch.as_tensor(frame.cell))
        vol = abs(float(np.linalg.det(frame.cell)))
        w = -vol * np.asarray(frame.stress, dtype=float)
        out["virial"] = t(w)
        out["virial_mol"] = t(w - f.T @ u.numpy())
        out["volume"] = t(vol, torch.float64)
    return out


MODEL_INPUTS = ("pos", "species", "grain_index", "grain_type", "cell")


def model_inputs(tensors: Dict[str, torch.Tensor]) -> Dict[str, Optional[torch.Tensor]]:
    """The subset of :func:`frame_tensors` that ``CGAAModel.forward`` takes."""
    return {k: tensors[k] for k in MODEL_INPUTS}


def fit_reference_energies(frames: Sequence[Frame], config: ModelConfig) -> np.ndarray:
    """Per-grain-type reference energies (eV) by least squares: E_frame ≈ Σ_T n_T·e_T.

    With a single composition the system is underdetermined; numpy's minimum-norm
    solution is used, which still removes the mean energy per grain.
    """
    a = np.zeros((len(frames), len(config.grain_types)))
    b = np.array([f.energy for f in frames])
    for k, f in enumerate(frames):
        idx = grain_type_indices(f.grain_map, config.grain_types)
        a[k] = np.bincount(idx, minlength=len(config.grain_types))
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    return sol


def data_statistics(frames: Sequence[Frame], cutoff: float, intra_cutoff: float,
                    all_atom: bool = False, max_frames: int = 20) -> Dict[str, float]:
    """Normalisation constants from data: neighbours per grain within ``cutoff`` (Å),
    intra-grain atom pairs within ``intra_cutoff`` (Å) per atom, atoms per grain, and the
    RMS force component (eV/Å)."""

    sample = list(frames[:max_frames])
    n_nb, n_gr, n_intra, n_at = 0.0, 0.0, 0.0, 0.0
    for f in sample:
        gi = f.grain_map.grain_index
        g = f.grain_map.n_grains
        pos = f.positions
        first = np.zeros(g, dtype=np.int64)
        first[gi[::-1]] = np.arange(len(gi))[::-1]
        d = pos - pos[first][gi]
        if f.cell is not None:
            inv = np.linalg.inv(f.cell)
            d -= np.round(d @ inv) @ f.cell
        m = np.ones(len(gi))
        cen = np.zeros((g, 3))
        np.add.at(cen, gi, d * m[:, None])
        cen = pos[first] + cen / np.bincount(gi, minlength=g)[:, None]
        pairs, _ = neighbor_pairs(torch.tensor(cen), None if f.cell is None else torch.tensor(f.cell), cutoff)
        n_nb += pairs.shape[1]
        n_gr += g
        n_at += len(gi)
        if not all_atom:
            u = d
            for grain in range(g):
                sel = u[gi == grain]
                r = np.linalg.norm(sel[:, None] - sel[None], axis=-1)
                n_intra += float(((r < intra_cutoff).sum() - len(sel)))
    force_rms = float(np.sqrt(np.mean(np.concatenate([f.forces.ravel() for f in frames]) ** 2)))
    return {
        "avg_neighbors": max(n_nb / n_gr, 1.0),
        "avg_intra_neighbors": max(n_intra / n_at, 1.0),
        "avg_grain_size": n_at / n_gr,
        "force_rms": force_rms,
    }


__all__ = ["Frame", "load_frames", "split_frames", "vocabulary_of", "check_covered", "frame_tensors",
           "model_inputs", "fit_reference_energies", "data_statistics", "MODEL_INPUTS"]
