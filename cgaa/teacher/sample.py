"""Reference data from the classical teacher: MD, decorrelated frames, extxyz output.

:func:`sample_teacher` minimises a box, equilibrates it at each temperature (NVT, or NPT
with a Monte Carlo barostat), then writes a frame every ``stride`` steps with the
teacher's energy (eV) and forces (eV/Å). A user-set fraction of extra frames goes beyond
equilibrium: 'hot' frames (a short burst at ``hot_factor`` × T, then back) and 'distorted'
frames (Gaussian atom displacements plus a small random cell strain of the molecule
centres). All frames are validated and written at once (atomically).
"""
from __future__ import annotations

import errno
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from cgaa.core.units import (angstrom_to_nm, box_vectors_nm, forces_kjmol_nm_to_ev_ang, kjmol_to_ev, openmm_lengths_A)
from cgaa.core.extxyz import STRESS, make_frame, write_frames
from cgaa.systems.boxfile import BOX_SUFFIXES, box_remarks, read_box
from cgaa.systems.build import box_suffix_for, build_box, load_recipe
from cgaa.systems.topology import box_density
from cgaa.teacher.forcefield import TEACHER_NAME, Teacher, create_system, get_platform


@dataclass
class SampleResult:
    """What :func:`sample_teacher` wrote: path, number of frames per config_type, and the
    mean density (g/cm³) per temperature (K) over the production frames."""

    path: Path
    n_frames: int
    config_types: Dict[str, int]
    densities: Dict[float, float] = field(default_factory=dict)
    pdb: Optional[Path] = None

    def summary(self) -> str:
        """Human-readable report."""
        ct = ", ".join(f"{k} {v}" for k, v in self.config_types.items())
        dens = ", ".join(f"{t:g} K: {d:.4f} g/cm3" for t, d in self.densities.items())
        return f"wrote {self.n_frames} frames to {self.path} ({ct}); mean density {dens}"


def _load_source(source: Union[str, Path], n_atoms: int, seed: int, workdir: Path):
    """(topology, positions Å, recipe name, recipe temperature or None, box file path)."""

    p = Path(source)
    if p.suffix.lower() in BOX_SUFFIXES:
        box = read_box(p)
        recipe = "unknown"
        for remark in box_remarks(p):
            if "cgaa recipe" in remark:
                recipe = remark.split("cgaa recipe", 1)[1].strip().split()[0]
        return box.topology, openmm_lengths_A(box.getPositions(asNumpy=True)), recipe, None, p

    recipe = load_recipe(source)
    out = workdir / f"{recipe.name}-{n_atoms}{box_suffix_for(recipe, n_atoms)}"
    res = build_box(recipe, n_atoms, out, seed=seed)
    box = read_box(res.path)
    return (box.topology, openmm_lengths_A(box.getPositions(asNumpy=True)),
            recipe.name, recipe.temperature, res.path)


def _frame(top_info, pos_A, cell_A, e_ev, f_ev, info):

    symbols, grain, resname = top_info
    return make_frame(symbols, pos_A, cell_A, energy=e_ev, forces=f_ev, grain=grain, resname=resname, info=info)


def _state_arrays(ctx):
    """(energy eV, forces eV/Å, positions Å, cell Å) from an OpenMM context."""
    from openmm import unit

    st = ctx.getState(getEnergy=True, getForces=True, getPositions=True, enforcePeriodicBox=True)
    e = kjmol_to_ev(st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    f = forces_kjmol_nm_to_ev_ang(np.asarray(st.getForces(asNumpy=True).value_in_unit(
        unit.kilojoule_per_mole / unit.nanometer)))
    pos = openmm_lengths_A(st.getPositions(asNumpy=True))
    cell = openmm_lengths_A(st.getPeriodicBoxVectors(asNumpy=True))
    return float(e), f, pos, cell


def _set_config(ctx, pos_A, cell_A):
    from openmm import unit

    ctx.setPeriodicBoxVectors(*box_vectors_nm(cell_A))
    ctx.setPositions(angstrom_to_nm(np.asarray(pos_A)) * unit.nanometer)


def distort(pos_A: np.ndarray, cell_A: np.ndarray, grain: np.ndarray, rng: np.random.Generator,
            sigma: float = 0.03, strain: float = 0.02):
    """A distorted copy of a frame: every atom displaced by N(0, sigma²) Å per component,
    and the cell deformed by a random strain (lower-triangular, components uniform in
    ±strain, so OpenMM's reduced box form is kept) with molecule centres following the
    cell while molecules keep their internal geometry. Returns (positions Å, cell Å)."""
    eps = np.tril(rng.uniform(-strain, strain, size=(3, 3)))
    deform = np.eye(3) + eps
    new_cell = cell_A @ deform
    pos = np.array(pos_A, dtype=float)
    for g in np.unique(grain):
        idx = grain == g
        c = pos[idx].mean(axis=0)
        pos[idx] += c @ deform - c
    pos += rng.normal(0.0, sigma, size=pos.shape)
    return pos, new_cell


def label_stress(topology, frames: Sequence, cutoff: float = 1.0, progress: bool = False) -> None:
    """Store the teacher's stress (3×3, eV/Å³) of each ASE frame of ``topology`` as
    ``info['REF_stress']`` (Reference platform, double precision: finite differences need it)."""

    teacher = Teacher(topology, platform="Reference", cutoff=cutoff)
    it = frames
    if progress:
        from tqdm import tqdm
        it = tqdm(frames, desc="cgaa sample: stress", unit="frame", leave=False)
    for at in it:
        at.info[STRESS] = teacher.stress(at.positions, np.asarray(at.cell[:]))


def sample_teacher(source: Union[str, Path], output: Union[str, Path], *,
                   temperatures: Optional[Sequence[float]] = None, n_frames: int = 10,
                   stride: int = 500, equilibration_steps: int = 5000, timestep_fs: float = 1.0,
                   ensemble: str = "nvt", pressure_bar: float = 1.0, constraints: Optional[str] = None,
                   hot_fraction: float = 0.1, distorted_fraction: float = 0.1, hot_factor: float = 1.8,
                   hot_steps: int = 200, distort_sigma: float = 0.03, distort_strain: float = 0.02,
                   cutoff: float = 1.0, platform: Optional[str] = None, seed: int = 0,
                   n_atoms: int = 3000, minimize: bool = True, progress: bool = True,
                   workdir: Optional[Union[str, Path]] = None, stress: bool = True) -> SampleResult:
    """Run classical MD with the teacher and write labelled frames as extxyz.

    source: a box file (PDB or PDBx/mmCIF) from ``cgaa build`` or a recipe name/YAML (then
    a box of ``n_atoms`` is built next to ``output``). temperatures (K): default the recipe temperature (or
    298.15 K). n_frames: equilibrium frames per temperature, one every ``stride`` MD steps
    of ``timestep_fs`` fs after ``equilibration_steps``. ensemble: 'nvt' or 'npt' (Monte
    Carlo barostat at ``pressure_bar``). constraints: None (flexible, the default, so
    frames contain bond vibrations) or 'hbonds'. hot_fraction/distorted_fraction: extra
    frames, as a fraction of the equilibrium frames, made as described in the module
    docstring. cutoff in nm; platform: OpenMM platform name (default fastest); seed: RNG
    seed (velocities, Langevin noise, distortions, packing). stress: also label every frame's
    stress tensor (``REF_stress``, eV/Å³; 12 extra teacher energies per frame on the
    Reference platform, see :func:`cgaa.teacher.forcefield.context_stress`), which training needs to
    learn the pressure.
    """
    import openmm
    from openmm import unit


    output = Path(output)
    if output.is_dir():
        raise IsADirectoryError(errno.EISDIR, "the output is a directory, not an extxyz file", str(output))
    if ensemble not in ("nvt", "npt"):
        raise ValueError(f"ensemble must be 'nvt' or 'npt', got '{ensemble}'")
    for name, v in (("n_frames", n_frames), ("stride", stride), ("timestep_fs", timestep_fs)):
        if not v > 0:
            raise ValueError(f"{name} must be positive, got {v}")
    for name, v in (("hot_fraction", hot_fraction), ("distorted_fraction", distorted_fraction)):
        if not 0 <= v <= 10:
            raise ValueError(f"{name} must be between 0 and 10, got {v}")
    if equilibration_steps < 0:
        raise ValueError(f"equilibration_steps must be >= 0, got {equilibration_steps}")
    wd = Path(workdir) if workdir is not None else output.parent
    wd.mkdir(parents=True, exist_ok=True)
    top, pos0, recipe_name, recipe_T, pdb_path = _load_source(source, n_atoms, seed, wd)
    temps = [float(t) for t in (temperatures or [recipe_T or 298.15])]
    if any(t <= 0 for t in temps):
        raise ValueError(f"temperatures must be positive, got {temps}")

    symbols = [a.element.symbol for a in top.atoms()]
    grain = np.array([a.residue.index for a in top.atoms()])
    resname = [a.residue.name for a in top.atoms()]
    top_info = (symbols, grain, resname)

    try:
        system = create_system(top, cutoff=cutoff, constraints=constraints)
    except ValueError as err:  # an unknown residue, a box too small for the cutoff: name the box file
        raise ValueError(f"{pdb_path}: {err}") from None
    if ensemble == "npt":
        baro = openmm.MonteCarloBarostat(pressure_bar * unit.bar, temps[0] * unit.kelvin, 25)
        baro.setRandomNumberSeed(seed + 1)
        system.addForce(baro)
    integ = openmm.LangevinMiddleIntegrator(temps[0] * unit.kelvin, 1.0 / unit.picosecond,
                                            timestep_fs * unit.femtosecond)
    integ.setRandomNumberSeed(seed + 2)
    ctx = openmm.Context(system, integ, get_platform(platform))
    cell0 = openmm_lengths_A(top.getPeriodicBoxVectors())
    _set_config(ctx, pos0, cell0)
    if minimize:
        openmm.LocalEnergyMinimizer.minimize(ctx, 10.0, 2000)
    rng = np.random.default_rng(seed)
    n_hot = int(round(hot_fraction * n_frames))
    n_dist = int(round(distorted_fraction * n_frames))
    total_steps = len(temps) * (equilibration_steps + n_frames * stride + n_hot * hot_steps)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total_steps, unit="step", desc="cgaa sample", leave=False)

    def run(n):
        done = 0
        while done < n:
            k = min(1000, n - done)
            integ.step(k)
            done += k
            if bar is not None:
                bar.update(k)

    frames: List = []
    densities: Dict[float, float] = {}
    base = {"teacher": TEACHER_NAME, "recipe": recipe_name, "seed": int(seed), "ensemble": ensemble}
    for T in temps:
        integ.setTemperature(T * unit.kelvin)
        if ensemble == "npt":
            ctx.setParameter(openmm.MonteCarloBarostat.Temperature(), T)
        ctx.setVelocitiesToTemperature(T * unit.kelvin, int(rng.integers(1, 2**31 - 1)))
        run(equilibration_steps)
        hot_at = set(rng.choice(n_frames, size=min(n_hot, n_frames), replace=False).tolist()) if n_hot else set()
        dist_at = set(rng.choice(n_frames, size=min(n_dist, n_frames), replace=False).tolist()) if n_dist else set()
        dens = []
        for k in range(n_frames):
            run(stride)
            e, f, pos, cell = _state_arrays(ctx)
            dens.append(box_density(top, cell))
            info = {**base, "temperature": T, "config_type": "equilibrium", "frame": len(frames),
                    "density": dens[-1]}
            frames.append(_frame(top_info, pos, cell, e, f, info))
            if k in hot_at:  # short burst at hot_factor * T, then back to the saved state
                saved = ctx.getState(getPositions=True, getVelocities=True)
                integ.setTemperature(hot_factor * T * unit.kelvin)
                ctx.setVelocitiesToTemperature(hot_factor * T * unit.kelvin, int(rng.integers(1, 2**31 - 1)))
                run(hot_steps)
                he, hf, hpos, hcell = _state_arrays(ctx)
                frames.append(_frame(top_info, hpos, hcell, he, hf,
                                     {**base, "temperature": hot_factor * T, "config_type": "hot",
                                      "frame": len(frames), "density": box_density(top, hcell)}))
                ctx.setState(saved)
                integ.setTemperature(T * unit.kelvin)
            if k in dist_at:
                dpos, dcell = distort(pos, cell, grain, rng, distort_sigma, distort_strain)
                saved = ctx.getState(getPositions=True, getVelocities=True)
                _set_config(ctx, dpos, dcell)
                de, df, _, _ = _state_arrays(ctx)
                frames.append(_frame(top_info, dpos, dcell, de, df,
                                     {**base, "temperature": T, "config_type": "distorted",
                                      "frame": len(frames), "density": box_density(top, dcell),
                                      "distort_sigma": distort_sigma, "distort_strain": distort_strain}))
                ctx.setState(saved)
        densities[T] = float(np.mean(dens))
    if bar is not None:
        bar.close()
    if stress:
        label_stress(top, frames, cutoff=cutoff, progress=progress)
    write_frames(output, frames)
    kinds: Dict[str, int] = {}
    for fr in frames:
        kinds[fr.info["config_type"]] = kinds.get(fr.info["config_type"], 0) + 1
    return SampleResult(path=output, n_frames=len(frames), config_types=kinds, densities=densities, pdb=pdb_path)
