"""Relabel extxyz frames with any ASE calculator (DFT, a universal MLIP, the teacher...).

``get_calculator(spec)`` understands:

* ``emt``: ASE's EMT (only for the elements EMT knows; a toy/test calculator);
* ``lj``: ASE's Lennard-Jones (``sigma``, ``epsilon``, ``rc`` keyword arguments; a toy);
* ``sevenn`` / ``sevennet``: SevenNet-0 universal MLIP (needs the optional ``sevenn`` package);
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
from cgaa.core.extxyz import ENERGY, FORCES, STRESS, make_frame, normalize_frame, read_frames, write_frames
from cgaa.core.units import nm_to_angstrom
from cgaa.systems.topology import topology_from_residues
from cgaa.teacher.forcefield import Teacher


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
    ``model='7net-0', device='cpu'`` for 'sevenn'). ValueError naming the spec if unknown
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
    if low in ("sevenn", "sevennet", "sevennet-0", "7net-0"):
        try:
            from sevenn.calculator import SevenNetCalculator  # type: ignore
        except ImportError:
            try:
                from sevenn.sevennet_calculator import SevenNetCalculator  # type: ignore
            except ImportError:
                raise ValueError("calculator 'sevenn' needs the optional package 'sevenn' "
                                 "(pip install sevenn; it must not replace the pinned torch)") from None
        opts = {"model": "7net-0"}
        opts.update(kwargs)
        return SevenNetCalculator(**opts)
    if low == "teacher":
        return TeacherCalculator(**kwargs)
    if ":" in name:
        calc = _import_factory(name)(**kwargs)
        if not (hasattr(calc, "get_potential_energy") and hasattr(calc, "get_forces")):
            raise ValueError(f"calculator '{spec}' returned {type(calc).__name__}, not an ASE calculator")
        return calc
    raise ValueError(f"unknown calculator '{spec}' (use emt, lj, sevenn, teacher or module:callable)")


def label_frames(frames: Sequence, calculator, *, name: str = "calculator",
                 progress: bool = False, keep_previous: bool = True, stress: bool = False) -> List:
    """Compute energy (eV) and forces (eV/Å) of every frame with ``calculator``.

    Stores them as ``REF_energy``/``REF_forces`` and sets ``info['teacher'] = name``; with
    ``keep_previous`` the old labels are kept as ``prev_energy``/``prev_forces``. With
    ``stress`` also the stress tensor (3×3, eV/Å³, ASE sign) as ``REF_stress`` (periodic
    frames only; the calculator must implement stress).
    Returns new Atoms objects (inputs are not modified). Errors name the frame.
    """

    out = []
    it = frames
    if progress:
        from tqdm import tqdm
        it = tqdm(frames, desc=f"cgaa label ({name})", unit="frame", leave=False)
    for i, at in enumerate(it):
        new = at.copy()
        new.calc = None
        if keep_previous and ENERGY in at.info:
            new.info["prev_energy"] = at.info[ENERGY]
        if keep_previous and FORCES in at.arrays:
            new.arrays["prev_forces"] = np.array(at.arrays[FORCES])
        if stress and not new.pbc.all():
            raise RuntimeError(f"frame {i}: stress needs a periodic cell (pbc on all axes), got pbc={list(new.pbc)}")
        new.info.pop(STRESS, None)
        try:
            new.calc = calculator
            e = new.get_potential_energy()
            f = new.get_forces()
            s = new.get_stress(voigt=False) if stress else None
        except Exception as err:
            raise RuntimeError(f"frame {i}: calculator '{name}' failed: {type(err).__name__}: {err}") from None
        finally:
            new.calc = None
        new.info[ENERGY] = float(e)
        new.arrays[FORCES] = np.asarray(f, dtype=float)
        if s is not None:
            new.info[STRESS] = np.asarray(s, dtype=float)
        new.info["teacher"] = name
        normalize_frame(new, where=f"frame {i} labelled by '{name}'")
        out.append(new)
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
               run_frames: Optional[Dict[str, Any]] = None) -> int:
    """Relabel every frame of ``input_path`` (extxyz, any usual key convention; labels may
    be absent) and write ``output_path`` atomically. calculator: spec string for
    :func:`get_calculator` or an ASE calculator object. stress: also label ``REF_stress``.
    ``input_path`` may also be a ``cgaa simulate`` run directory: its trajectory frames are
    labelled (:func:`frames_from_run`, options in ``run_frames``).
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
    labelled = label_frames(frames, calc, name=label, progress=progress, keep_previous=keep_previous,
                            stress=stress)
    write_frames(output_path, labelled)
    return len(labelled)
