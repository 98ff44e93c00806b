"""Relabel extxyz frames with any ASE calculator (DFT, a universal MLIP, the teacher...).

``get_calculator(spec)`` understands:

* ``emt``: ASE's EMT (only for the elements EMT knows; a toy/test calculator);
* ``lj``: ASE's Lennard-Jones (``sigma``, ``epsilon``, ``rc`` keyword arguments; a toy);
* ``sevenn``: SevenNet-0 + D3(BJ) dispersion, the default quantum-level teacher
  (:func:`cgaa.teacher.quantum.sevennet_d3`; ``pip install "cgaa[sevenn]"``; ``d3=false`` drops D3);
* ``xtb``: GFN2-xTB (:func:`cgaa.teacher.quantum.gfn2_xtb`; ``pip install "cgaa[xtb]"``);
* ``teacher``: the classical teacher of cgaa (needs ``grain``/``resname`` per atom);
* ``module:callable``: any importable factory returning an ASE calculator, e.g.
  ``mypkg.dft:make_calc`` — the way to plug in a user's DFT setup.

:func:`label_frames` computes energy (eV) and forces (eV/Å) (and, on request, the stress,
eV/Å³) for every frame and stores them as ``REF_energy``/``REF_forces`` (``REF_stress``) (recording the labeller in ``info['teacher']``);
:func:`label_file` does it file to file (or from the trajectory of a ``cgaa simulate`` run,
:func:`frames_from_run`), writing only when every frame succeeded.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
from cgaa.analysis.io import find_run_files, load_trajectory
from cgaa.core.extxyz import (ENERGY, FORCES, STRESS, FrameError, make_frame, normalize_frame, read_frames,
                              write_frames)
from cgaa.core.units import nm_to_angstrom
from cgaa.systems.topology import topology_from_residues
from cgaa.teacher.forcefield import Teacher
from cgaa.teacher.quantum import gfn2_xtb, sevennet_d3


def _teacher_calculator_class():
    from ase.calculators.calculator import Calculator, all_changes

    class TeacherCalculator(Calculator):
        """ASE calculator wrapping the cgaa teacher (OpenMM) for frames carrying ``grain``
        and ``resname`` arrays (as written by ``cgaa sample``). eV and eV/Å."""

        implemented_properties = ["energy", "forces", "stress"]

        def __init__(self, platform: Optional[str] = "Reference", cutoff: float = 1.0, **kw: Any):
            super().__init__(**kw)
            self.platform = platform
            self.cutoff = cutoff
            self._key: Optional[tuple] = None
            self._teacher = None

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            at = self.atoms
            if "grain" not in at.arrays or "resname" not in at.arrays:
                raise ValueError("the teacher needs per-atom 'grain' and 'resname' arrays "
                                 "(frames from cgaa sample have them)")
            key = (tuple(str(r) for r in at.arrays["resname"]), tuple(int(g) for g in at.arrays["grain"]))
            if key != self._key:
                top = topology_from_residues(at.arrays["resname"], at.arrays["grain"], np.asarray(at.cell))
                self._teacher = Teacher(top, platform=self.platform, cutoff=self.cutoff)
                self._key = key
            e, f = self._teacher.compute(at.positions, np.asarray(at.cell))
            self.results = {"energy": e, "free_energy": e, "forces": f}
            if "stress" in properties:
                from ase.stress import full_3x3_to_voigt_6_stress

                self.results["stress"] = full_3x3_to_voigt_6_stress(
                    self._teacher.stress(at.positions, np.asarray(at.cell)))

    return TeacherCalculator


def TeacherCalculator(platform: Optional[str] = "Reference", cutoff: float = 1.0, **kw: Any):
    """The cgaa teacher as an ASE calculator (an ``ase.calculators.calculator.Calculator``).

    platform: OpenMM platform name; cutoff in nm. Needs per-atom ``grain``/``resname``."""
    return _teacher_calculator_class()(platform=platform, cutoff=cutoff, **kw)


def _import_factory(spec: str) -> Callable[..., Any]:
    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr:
        raise ValueError(f"calculator '{spec}': expected 'module:callable'")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as err:
        raise ValueError(f"calculator '{spec}': cannot import module '{mod_name}' ({err})") from None
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"calculator '{spec}': module '{mod_name}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"calculator '{spec}': '{attr}' is not callable")
    return obj


def get_calculator(spec: str, **kwargs: Any):
    """An ASE calculator from a short name or ``module:callable`` (see module docstring).

    kwargs go to the calculator's constructor/factory (e.g. ``sigma=3.0`` for 'lj',
    ``device='cpu', d3=False`` for 'sevenn', ``charge=0`` for 'xtb'). ValueError naming the spec if unknown
    or unavailable.
    """
    name = spec.strip()
    low = name.lower()
    if low == "emt":
        from ase.calculators.emt import EMT
        return EMT(**kwargs)
    if low in ("lj", "lennardjones", "lennard-jones"):
        from ase.calculators.lj import LennardJones
        opts = {"sigma": 3.0, "epsilon": 0.01, "rc": 6.0, "smooth": True}
        opts.update(kwargs)
        return LennardJones(**opts)
    if low in ("sevenn", "sevennet", "sevennet-0", "7net-0", "sevenn-d3"):
        return sevennet_d3(**kwargs)
    if low in ("xtb", "gfn2", "gfn2-xtb", "tblite"):
        return gfn2_xtb(**kwargs)
    if low == "teacher":
        return TeacherCalculator(**kwargs)
    if ":" in name:
        calc = _import_factory(name)(**kwargs)
        if not (hasattr(calc, "get_potential_energy") and hasattr(calc, "get_forces")):
            raise ValueError(f"calculator '{spec}' returned {type(calc).__name__}, not an ASE calculator")
        return calc
    raise ValueError(f"unknown calculator '{spec}' (use sevenn, xtb, teacher, emt, lj or module:callable)")


#: Largest force (eV/Å) a label may hold: above it a frame's labels are refused as absurd (a
#: calculator that diverged, a broken frame); hot and distorted electrolyte frames stay below ~20.
MAX_LABEL_FORCE = 50.0


class LabelError(RuntimeError):
    """A frame could not be labelled or its labels are absurd; the message names the frame, and
    the frames labelled before it are kept (the partial file) for a resumed run."""


def check_labels(atoms, where: str, max_force: float = MAX_LABEL_FORCE) -> None:
    """Validate a freshly labelled frame in place (:func:`cgaa.core.extxyz.normalize_frame`: finite
    energy, forces of the right shape, finite, naming the atoms and their elements) and refuse a
    force above ``max_force`` eV/Å as absurd: LabelError naming ``where`` and the atom."""
    try:
        normalize_frame(atoms, where=where)
    except FrameError as err:
        raise LabelError(str(err)) from None
    norms = np.linalg.norm(np.asarray(atoms.arrays[FORCES], dtype=float), axis=1)
    k = int(np.argmax(norms)) if len(norms) else 0
    if len(norms) and norms[k] > max_force:
        raise LabelError(f"{where}: a force of {norms[k]:.1f} eV/A on atom {k} ({atoms.get_chemical_symbols()[k]}) "
                         f"is absurd (limit {max_force:g} eV/A, --max-force)")


def partial_path(output: Union[str, Path]) -> Path:
    """Where :func:`label_file` keeps the frames labelled so far (``out.xyz`` → ``out.xyz.partial``)."""
    output = Path(output)
    return output.with_name(output.name + ".partial")


def _read_partial(path: Path) -> List:
    """The complete frames of a partial file; a frame cut short by a kill is dropped (and the
    file rewritten without it)."""
    import ase.io

    frames = []
    try:
        for at in ase.io.iread(str(path), index=":", format="extxyz"):
            frames.append(at)
    except Exception:  # the last frame was being written when the run stopped
        write_frames(path, frames, validate=False)
    for i, at in enumerate(frames):  # a frame read back must still carry its labels
        normalize_frame(at, where=f"{path} frame {i}")
    return frames


def _append_frame(path: Path, atoms) -> None:
    """Append one frame to ``path`` and flush it to disk (one write, then fsync)."""
    import io
    import os

    import ase.io

    buf = io.StringIO()
    ase.io.write(buf, atoms, format="extxyz")
    with open(path, "a") as fh:
        fh.write(buf.getvalue())
        fh.flush()
        os.fsync(fh.fileno())


def _resume(frames: Sequence, partial: Path, name: str) -> List:
    """Frames of ``partial`` that are labels of the first frames of ``frames`` by ``name``;
    ValueError when the partial file belongs to another input or calculator."""
    done = _read_partial(partial)
    if len(done) > len(frames):
        raise ValueError(f"{partial} holds {len(done)} frames but the input has {len(frames)}: it belongs to "
                         "another input; delete it to label from the start")
    for i, (old, new) in enumerate(zip(done, frames)):
        same = (len(old) == len(new) and np.allclose(old.positions, new.positions, atol=1e-6)
                and old.info.get("teacher") == name)
        if not same:
            raise ValueError(f"{partial} frame {i} is not input frame {i} labelled by '{name}': the partial file "
                             "belongs to another input or calculator; delete it to label from the start")
    return done


class _Rate:
    """frames/hour and ETA for the progress bar (tqdm shows it/s; labelling is counted in hours)."""

    def __init__(self, total: int, done: int):
        import time

        self.time, self.t0, self.total, self.done0 = time.perf_counter, time.perf_counter(), total, done

    def postfix(self, done: int) -> Dict[str, str]:
        dt = self.time() - self.t0
        n = done - self.done0
        if n <= 0 or dt <= 0:
            return {}
        per_h = 3600.0 * n / dt
        return {"frames/h": f"{per_h:.0f}", "ETA": f"{(self.total - done) / per_h:.2f} h"}


def label_frames(frames: Sequence, calculator, *, name: str = "calculator",
                 progress: bool = False, keep_previous: bool = True, stress: bool = False,
                 partial: Optional[Union[str, Path]] = None, max_force: float = MAX_LABEL_FORCE,
                 source: str = "frame") -> List:
    """Compute energy (eV) and forces (eV/Å) of every frame with ``calculator``.

    Stores them as ``REF_energy``/``REF_forces`` and sets ``info['teacher'] = name``; with
    ``keep_previous`` the old labels are kept as ``prev_energy``/``prev_forces``. With
    ``stress`` also the stress tensor (3×3, eV/Å³, ASE sign) as ``REF_stress`` (periodic
    frames only; the calculator must implement stress).
    partial: a file each labelled frame is appended to (flushed) as soon as it is done; when it
        already holds frames (an interrupted run), those are taken instead of labelled again, so
        a rerun continues where the last one stopped and labels nothing twice.
    max_force: labels with a force above this (eV/Å), or NaN/inf, are refused (:class:`LabelError`).
    source: how errors name the frames (e.g. the input file).
    Returns new Atoms objects (inputs are not modified). Errors name the frame.
    """
    frames = list(frames)
    partial = Path(partial) if partial is not None else None
    out = _resume(frames, partial, name) if partial is not None and partial.exists() else []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(frames), initial=len(out), desc=f"cgaa label ({name})", unit="frame",
                   dynamic_ncols=True)
    rate = _Rate(len(frames), len(out))
    try:
        for i in range(len(out), len(frames)):
            at = frames[i]
            where = f"{source} {i}"
            new = at.copy()
            new.calc = None
            if keep_previous and ENERGY in at.info:
                new.info["prev_energy"] = at.info[ENERGY]
            if keep_previous and FORCES in at.arrays:
                new.arrays["prev_forces"] = np.array(at.arrays[FORCES])
            if stress and not new.pbc.all():
                raise LabelError(f"{where}: stress needs a periodic cell (pbc on all axes), got pbc={list(new.pbc)}")
            new.info.pop(STRESS, None)
            try:
                new.calc = calculator
                e = new.get_potential_energy()
                f = new.get_forces()
                s = new.get_stress(voigt=False) if stress else None
            except Exception as err:
                raise LabelError(f"{where}: calculator '{name}' failed: {type(err).__name__}: {err}") from None
            finally:
                new.calc = None
            new.info[ENERGY] = float(e)
            new.arrays[FORCES] = np.asarray(f, dtype=float)
            if s is not None:
                new.info[STRESS] = np.asarray(s, dtype=float)
            new.info["teacher"] = name
            check_labels(new, f"{where} labelled by '{name}'", max_force)
            if partial is not None:
                _append_frame(partial, new)
            out.append(new)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(rate.postfix(len(out)), refresh=False)
    except LabelError as err:
        if partial is not None and out:
            raise LabelError(f"{err}; the {len(out)} frames labelled before it are kept in {partial} "
                             "(rerun the same command to continue after it is fixed)") from None
        raise
    finally:
        if bar is not None:
            bar.close()
    return out


def frames_from_run(run_dir: Union[str, Path], *, start_ps: float = 0.0, every_ps: Optional[float] = None,
                    max_frames: Optional[int] = None) -> List:
    """Unlabelled ASE frames (Å) of a ``cgaa simulate`` run directory (``traj.dcd`` +
    ``topology.pdb``), with the per-atom ``grain``/``resname`` arrays that the teacher needs:
    how configurations a model visits in its own MD go back to the teacher for labels
    (active learning). Times count from the first saved frame (as in :mod:`cgaa.analysis`)
    and are stored as ``info['time_ps']``. start_ps: skip earlier frames; every_ps: spacing
    (default: every saved frame); max_frames: keep at most this many, evenly spaced. FileNotFoundError /
    ValueError name the run directory."""

    trajs, top_path = find_run_files(run_dir)
    traj, dt = load_trajectory(trajs[0], top_path)
    stride = 1 if every_ps is None else max(1, int(round(every_ps / dt)))
    idx = [k for k in range(traj.n_frames) if k * dt >= start_ps - 1e-9][::stride]
    if max_frames is not None and len(idx) > max_frames:
        idx = [idx[int(i)] for i in np.linspace(0, len(idx) - 1, max_frames)]
    if not idx:
        raise ValueError(f"{run_dir}: no frames after {start_ps} ps (the run has {traj.n_frames} frames, "
                         f"{dt:g} ps apart)")
    atoms = list(traj.topology.atoms)
    symbols = [a.element.symbol for a in atoms]
    grain = [a.residue.index for a in atoms]
    resname = [a.residue.name for a in atoms]
    frames = []
    for k in idx:
        frames.append(make_frame(symbols, nm_to_angstrom(np.asarray(traj.xyz[k], dtype=float)),
                                 nm_to_angstrom(np.asarray(traj.unitcell_vectors[k], dtype=float)),
                                 grain=grain, resname=resname,
                                 info={"config_type": "md", "source_run": str(run_dir), "time_ps": float(k * dt)}))
    return frames


def label_file(input_path: Union[str, Path], output_path: Union[str, Path], calculator: Union[str, Any],
               *, calculator_kwargs: Optional[Dict[str, Any]] = None, name: Optional[str] = None,
               energy_key: Optional[str] = None, forces_key: Optional[str] = None,
               progress: bool = True, keep_previous: bool = True, stress: bool = False,
               run_frames: Optional[Dict[str, Any]] = None, max_force: float = MAX_LABEL_FORCE,
               resume: bool = True) -> int:
    """Relabel every frame of ``input_path`` (extxyz, any usual key convention; labels may
    be absent) and write ``output_path`` atomically. calculator: spec string for
    :func:`get_calculator` or an ASE calculator object. stress: also label ``REF_stress``.
    ``input_path`` may also be a ``cgaa simulate`` run directory: its trajectory frames are
    labelled (:func:`frames_from_run`, options in ``run_frames``).

    Resumable: every labelled frame is appended at once to ``<output>.partial``
    (:func:`partial_path`); after an interruption (Ctrl-C, kill -9, a frame refused) the same
    call continues after the last complete frame, labelling nothing twice (``resume=False``
    starts again). The output is written atomically when every frame is labelled, and the
    partial file is removed. max_force: see :func:`label_frames`.
    Returns the number of frames."""

    if isinstance(calculator, str):
        label = name or calculator
        calc = get_calculator(calculator, **(calculator_kwargs or {}))
    else:
        label = name or type(calculator).__name__
        calc = calculator
    if Path(input_path).is_dir():
        frames = frames_from_run(input_path, **(run_frames or {}))
    else:
        frames = read_frames(input_path, energy_key=energy_key, forces_key=forces_key,
                             require_energy=False, require_forces=False)
    partial = partial_path(output_path)
    if not resume and partial.exists():
        partial.unlink()
    labelled = label_frames(frames, calc, name=label, progress=progress, keep_previous=keep_previous,
                            stress=stress, partial=partial, max_force=max_force, source=f"{input_path} frame")
    write_frames(output_path, labelled)
    partial.unlink(missing_ok=True)
    return len(labelled)
