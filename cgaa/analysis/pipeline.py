"""The whole analysis of one electrolyte run: transport + structure, as used by
``cgaa analyze`` and the notebooks.

    result = analyze("traj.dcd", "topology.pdb", temperature_K=298.15, viscosity_Pa_s=2.5e-3)
    result.to_dict()          # the content of report.json
    write_report(result, "analysis/")   # report.json, CSVs, PNGs (cgaa.analysis.report)
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from cgaa.analysis import conductivity as cond
from cgaa.analysis.diffusion import (DEFAULT_MIN_FIT_START_PS, DEFAULT_MIN_RUN_PS, DiffusionResult, FitWindow,
                                     box_length_for_correction, diffusion_coefficient, run_length_reason,
                                     yeh_hummer_correction)
from cgaa.analysis.io import (RunRecords, find_run_files, frame_time_step, read_run_records, read_state_temperature,
                             read_trajectory, records_for)
from cgaa.analysis.msd import WrappedTrajectoryError, detect_wrapping, molecule_centers, system_com, unwrap
from cgaa.core.modelmeta import archive_metadata
from cgaa.analysis.stability import StabilityResult, stability_check
from cgaa.analysis.structure import RDFResult, ShellResult, rdf, shell_composition
from cgaa.analysis.report import result_to_dict
from cgaa.analysis.species import (Species, atom_masses, classify_oxygens, element_indices, find_species,
                                   identify_species)

#: Temperature used when none is given and none can be read from state.csv, K.
DEFAULT_TEMPERATURE_K: float = 298.15
#: Shell cutoff used when an RDF shows no first minimum, nm.
DEFAULT_SHELL_CUTOFF_NM: float = 0.30
#: An RDF's first peak counts as a contact (first-shell) peak only below this, nm.
MAX_CONTACT_PEAK_NM: float = 0.35


@dataclass
class AnalysisResult:
    """Everything ``analyze`` computed; ``to_dict()`` gives the report.json content.

    Attributes:
        inputs: files, frames, dt (ps), temperature (K), viscosity (Pa·s), box, ...
        species: the species found.
        diffusion: species name → DiffusionResult (D in m²/s).
        yeh_hummer_m2_s: species name → Yeh–Hummer correction ΔD (m²/s), if η given.
        nernst_einstein, einstein_helfand: conductivities (S/m, with errors) or None.
        haven: (H, error) or None.
        transference: ion name → ideal (Nernst–Einstein) transference number (t, error).
        stability: one StabilityResult per trajectory (broken bonds, closest approaches), or [].
        rdfs: pair label ("Li-O_carbonyl") → RDFResult.
        shell: first-shell composition around the centre cation, or None.
        warnings: human-readable warnings.
    """

    inputs: dict
    species: List[Species]
    diffusion: Dict[str, DiffusionResult] = field(default_factory=dict)
    yeh_hummer_m2_s: Dict[str, float] = field(default_factory=dict)
    nernst_einstein: Optional[Tuple[float, float]] = None
    einstein_helfand: Optional[cond.EinsteinHelfandResult] = None
    haven: Optional[Tuple[float, float]] = None
    transference: Dict[str, Tuple[float, float]] = field(default_factory=dict)
    stability: List[StabilityResult] = field(default_factory=list)
    rdfs: Dict[str, RDFResult] = field(default_factory=dict)
    shell: Optional[ShellResult] = None
    center: Optional[str] = None
    warnings: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The report as JSON-ready dict; every quantity is {"value", "unit"[, "uncertainty"]}."""

        return result_to_dict(self)


def _load_all(trajectories, topology, dt_ps, stride,
              records: Optional[RunRecords] = None) -> Tuple[list, float, List[str], List[str], List[str],
                                                             Optional[RunRecords]]:
    """(trajectories, dt between loaded frames, names, time-step sources, notes, the run
    records that applied to one of them)."""
    import mdtraj as md

    if isinstance(trajectories, (str, Path, md.Trajectory)):
        trajectories = [trajectories]
    trajectories = list(trajectories)
    if not trajectories:
        raise ValueError("no trajectory given")
    loaded, dts, names, sources, notes = [], [], [], [], []
    used: Optional[RunRecords] = None
    for t in trajectories:
        if isinstance(t, md.Trajectory):
            step = frame_time_step(None, t.time, stride=1, dt_ps=dt_ps)
            tt = t[::stride] if stride > 1 else t
            if tt.unitcell_vectors is None:
                raise ValueError("trajectory has no periodic box (unit cell)")
            loaded.append(tt)
            dts.append(step.dt_ps * stride)
            names.append("<in-memory trajectory>")
            sources.append(step.source)
            notes.extend(step.notes)
        else:
            if topology is None:
                raise ValueError(f"a topology file is needed for {t}")
            own = records is not None and Path(t).resolve() == records.trajectory.resolve()
            rec = records if own else None
            if not own:  # --traj naming the traj.dcd of a run directory: that run's records
                try:
                    rec = records_for(t)
                except ValueError as err:
                    if dt_ps is None:
                        raise
                    rec = None
                    notes.append(f"{err}; the given dt_ps (--dt-ps) is used")
            used = used or rec
            lt = read_trajectory(t, topology, stride=stride, dt_ps=dt_ps, records=rec)
            loaded.append(lt.traj)
            dts.append(lt.dt_ps)
            names.append(str(t))
            sources.append(lt.dt_source)
            notes.extend(lt.notes)
    if not np.allclose(dts, dts[0], rtol=1e-4):
        raise ValueError("replicas have different times between frames: "
                         + ", ".join(f"{n}: {d:g} ps ({src})" for n, d, src in zip(names, dts, sources)))
    n_atoms = {t.n_atoms for t in loaded}
    if len(n_atoms) > 1:
        raise ValueError(f"replica trajectories differ in atom count: {sorted(n_atoms)}")
    return loaded, float(dts[0]), names, sources, notes, used


def time_window(traj, dt_ps: float, start_ps: float = 0.0, end_ps: Optional[float] = None, name: str = "trajectory"):
    """The frames of ``traj`` at times t = k·dt_ps (ps, k = 0 for its first frame) with
    start_ps <= t < end_ps (end_ps None: to the end); ValueError naming ``name`` when fewer
    than two frames are left or the window is empty."""
    if start_ps < 0 or (end_ps is not None and end_ps <= start_ps):
        raise ValueError(f"time window [{start_ps:g}, {end_ps}) ps is empty or negative")
    eps = 1e-6 * dt_ps  # frame times are multiples of dt: a bound on a frame keeps it in [start, end)
    t = np.arange(traj.n_frames) * dt_ps
    keep = np.nonzero((t >= start_ps - eps) & ((t < end_ps - eps) if end_ps is not None else True))[0]
    if len(keep) < 2:
        raise ValueError(f"{name}: {len(keep)} frame(s) in the time window [{start_ps:g}, "
                         f"{'end' if end_ps is None else f'{end_ps:g}'}) ps; its {traj.n_frames} frames span "
                         f"0-{(traj.n_frames - 1) * dt_ps:g} ps")
    return traj[int(keep[0]):int(keep[-1]) + 1]


def _species_positions(traj, sp: Species, masses: np.ndarray, drift: np.ndarray, xyz: np.ndarray,
                       msd_of: str) -> np.ndarray:
    """(T, N, 3) positions (nm, drift removed) of a species' atoms or molecule centres."""
    box = traj.unitcell_vectors.astype(np.float64)
    if sp.monatomic or msd_of == "atoms":
        pos = xyz[:, sp.atom_indices, :].astype(np.float64)
    else:
        pos = molecule_centers(xyz, sp.molecules, masses, box)
    return pos - drift[:, None, :]


def analyze(
    trajectories: Union[str, Path, Sequence],
    topology: Optional[Union[str, Path]] = None,
    *,
    dt_ps: Optional[float] = None,
    temperature_K: Optional[float] = None,
    viscosity_Pa_s: Optional[float] = None,
    fit_window_ps: Optional[Tuple[float, float]] = None,
    conductivity_window_ps: Optional[Tuple[float, float]] = None,
    n_blocks: int = 5,
    slope_tol: float = 0.1,
    max_lag_fraction: float = 0.5,
    min_fit_start_ps: float = DEFAULT_MIN_FIT_START_PS,
    min_run_ps: float = DEFAULT_MIN_RUN_PS,
    selections: Optional[Mapping[str, str]] = None,
    charges: Optional[Mapping[str, float]] = None,
    msd_of: str = "auto",
    unwrap_input: bool = False,
    stride: int = 1,
    start_ps: float = 0.0,
    end_ps: Optional[float] = None,
    center: Optional[str] = None,
    rdf_r_max_nm: float = 1.0,
    rdf_bin_nm: float = 0.005,
    shell_cutoff_nm: Optional[float] = None,
    structure: bool = True,
    run_records: Optional[RunRecords] = None,
    stability: bool = True,
    contact_floor: Optional[Sequence[Sequence[float]]] = None,
) -> AnalysisResult:
    """Transport and structure analysis of an electrolyte trajectory (or replicas).

    Args:
        trajectories: trajectory file(s) (DCD, XTC, ...) or mdtraj Trajectories; several
            = independent replicas of the same system (errors from replicas).
        topology: topology file (PDB or PDBx/mmCIF, one residue per molecule) for trajectory files.
        dt_ps: time between saved frames, ps; overrides every record (with a note when it
            disagrees with a trustworthy one). Default: the run's records, an OpenMM DCD
            header or trustworthy frame times; anything else is refused (docs/analysis.md,
            *Conventions accepted and refused*).
        temperature_K: temperature, K (default 298.15 K, with a warning).
        viscosity_Pa_s: shear viscosity for the Yeh–Hummer correction, Pa·s (optional).
        fit_window_ps: (start, end) MSD fit window, ps (default: automatic per species).
        conductivity_window_ps: fit window of the collective (Einstein–Helfand) MSD, ps
            (default: the window of the first cation).
        n_blocks: blocks for the error estimate (see diffusion_coefficient).
        slope_tol: |log-log slope − 1| tolerance for the automatic window.
        max_lag_fraction: automatic windows end before this fraction of a block.
        min_fit_start_ps: automatic windows start at or after this lag, ps (default 5 ps:
            past the ballistic-to-caged crossover, where the log-log slope also passes
            through 1; see :data:`cgaa.analysis.diffusion.DEFAULT_MIN_FIT_START_PS`).
        min_run_ps: a run (shortest replica) shorter than this, ps, is flagged not
            diffusive, with the reason, for every species and the conductivities (default
            100 ps, :data:`cgaa.analysis.diffusion.DEFAULT_MIN_RUN_PS`; 0 disables).
        selections: {species name: mdtraj selection} to override species detection.
        charges: {species or residue name: formal charge, e} overrides.
        msd_of: "auto" (molecule centres for molecules, atoms for monatomic ions),
            "com" or "atoms".
        unwrap_input: unwrap a wrapped trajectory instead of refusing it.
        stride: use every stride-th frame.
        start_ps, end_ps: analyse only the frames at times t, start_ps <= t < end_ps (ps, from
            each trajectory's first saved frame; end_ps None: to the end), e.g. to drop an
            equilibration or to compare runs over the same stretch of time.
        center: species at the centre of RDFs and shells (default: the first cation).
        rdf_r_max_nm, rdf_bin_nm: RDF range and bin width, nm.
        shell_cutoff_nm: one cutoff for all shell ligands, nm (default: first minima).
        structure: compute RDFs and shells (False: transport only).
        stability: check every frame (of the whole trajectory, before ``start_ps``/``end_ps``) for
            broken bonds and for the closest approach of atoms of different molecules
            (:func:`cgaa.analysis.stability.stability_check`); needs a box.
        contact_floor: a CGAA model's ``[[Z1, Z2, d_min Å], ...]`` (its training data's closest
            approaches) for that check; :func:`analyze_run_dir` reads it from the run's model.
        run_records: what a ``cgaa simulate`` run directory records about its trajectory
            (:func:`cgaa.analysis.io.read_run_records`; :func:`analyze_run_dir` passes them):
            the time step of its ``traj.dcd``, cross-checked against the DCD header, and the
            frame count state.csv expects.

    Returns:
        AnalysisResult.
    """
    if msd_of not in ("auto", "com", "atoms"):
        raise ValueError(f"msd_of must be 'auto', 'com' or 'atoms', got {msd_of!r}")
    trajs, dt, names, dt_sources, load_notes, used = _load_all(
        trajectories, topology, dt_ps, max(1, int(stride)), run_records)
    checks = []
    if stability and all(t.unitcell_vectors is not None for t in trajs):
        checks = [stability_check(t, contact_floor) for t in trajs]
    if start_ps or end_ps is not None:
        trajs = [time_window(t, dt, start_ps, end_ps, name) for t, name in zip(trajs, names)]
    top = trajs[0].topology
    msgs: List[str] = list(load_notes)
    t_source = "given"
    if temperature_K is None:
        temperature_K, t_source = DEFAULT_TEMPERATURE_K, "default"
        msgs.append(f"no temperature given: using {DEFAULT_TEMPERATURE_K} K for conductivity and Yeh–Hummer")
    for name, chk in zip(names, checks):
        if chk.broken_frames:
            f, i, j, length = chk.first_broken
            msgs.append(f"{name}: molecules NOT intact: {chk.broken_frames} frame(s) with a broken bond, first "
                        f"frame {f} (atoms {i} and {j}, {length:.2f} A apart)")
        if chk.below_wall:
            msgs.append(f"{name}: atoms of different molecules came inside the contact guard's wall "
                        f"({', '.join(chk.below_wall)}): the run left the model's training data")
    species = identify_species(top, selections, charges)
    masses = atom_masses(top)

    pos: Dict[str, List[np.ndarray]] = {s.name: [] for s in species}
    unwrapped_here = False
    for t, name in zip(trajs, names):
        box = t.unitcell_vectors.astype(np.float64)
        xyz = t.xyz
        chk = detect_wrapping(xyz, box)
        if chk.wrapped:
            if not unwrap_input:
                raise WrappedTrajectoryError(
                    f"{name} looks wrapped into the box: atom {chk.atom} jumps by {chk.max_fraction:.2f} box "
                    f"lengths at frame {chk.frame} ({chk.n_jumps} jumps in all). Transport needs unwrapped "
                    f"positions: write them with DCDReporter(..., enforcePeriodicBox=False), or unwrap here "
                    f"(unwrap_input=True / --unwrap; valid if no atom moves half a box between frames)")
            xyz = unwrap(xyz, box)
            unwrapped_here = True
            msgs.append(f"{name}: wrapped input was unwrapped ({chk.n_jumps} boundary crossings)")
        com = system_com(xyz, masses)
        drift = com - com[0]
        for s in species:
            pos[s.name].append(_species_positions(t, s, masses, drift, xyz, msd_of))

    volumes = np.concatenate([t.unitcell_volumes for t in trajs])
    vol = float(volumes.mean())
    L_nm, cubic = box_length_for_correction(np.concatenate([t.unitcell_vectors for t in trajs]))
    if viscosity_Pa_s is not None and not cubic:
        msgs.append(f"box is not cubic: Yeh–Hummer uses L = V^(1/3) = {L_nm:.4g} nm (approximate)")
    n_frames = [t.n_frames for t in trajs]
    inputs = {
        "trajectories": names, "topology": str(topology) if topology is not None else None,
        "n_replicas": len(trajs), "n_frames": n_frames, "n_atoms": int(top.n_atoms), "dt_ps": dt,
        "dt_source": (dt_sources[0] if len(set(dt_sources)) == 1
                      else "; ".join(f"{n}: {src}" for n, src in zip(names, dt_sources))),
        "stride": int(stride), "time_window_ps": [float(start_ps), None if end_ps is None else float(end_ps)],
        "time_span_ps": [(n - 1) * dt for n in n_frames],
        "temperature_K": float(temperature_K),
        "temperature_source": t_source, "viscosity_Pa_s": viscosity_Pa_s,
        "mean_volume_nm3": vol, "box_length_nm": L_nm, "cubic_box": cubic,
        "com_drift_removed": True, "unwrapped_by_cgaa": unwrapped_here,
        "n_blocks": int(n_blocks), "slope_tol": slope_tol, "max_lag_fraction": max_lag_fraction,
        "min_fit_start_ps": float(min_fit_start_ps), "min_run_ps": float(min_run_ps),
        "msd_of": msd_of, "fit_window_ps": list(fit_window_ps) if fit_window_ps else None,
    }
    if used is not None:
        inputs["run_dir"] = str(used.run_dir)
        inputs["dt_checks"] = list(used.checks)
    result = AnalysisResult(inputs=inputs, species=species, warnings=msgs, stability=checks)

    for s in species:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result.diffusion[s.name] = diffusion_coefficient(
                pos[s.name], dt, window_ps=fit_window_ps, n_blocks=n_blocks, slope_tol=slope_tol,
                max_lag_fraction=max_lag_fraction, min_fit_start_ps=min_fit_start_ps, min_run_ps=min_run_ps)
        msgs.extend(f"{s.name}: {w.message}" for w in caught)
        if viscosity_Pa_s is not None:
            result.yeh_hummer_m2_s[s.name] = yeh_hummer_correction(temperature_K, viscosity_Pa_s, L_nm)

    ions = [s for s in species if s.charge != 0]
    if ions:
        counts, charges = [s.n_molecules for s in ions], [s.charge for s in ions]
        d_ions = [result.diffusion[s.name].D_m2_s for s in ions]
        d_errs = [result.diffusion[s.name].D_err_m2_s for s in ions]
        result.nernst_einstein = cond.nernst_einstein_conductivity(counts, charges, d_ions, vol, temperature_K, d_errs)
        result.transference = dict(zip([s.name for s in ions],
                                       cond.transference_numbers(counts, charges, d_ions, d_errs)))
        cations = [s for s in ions if s.charge > 0]
        ref = result.diffusion[cations[0].name if cations else ions[0].name]
        # the collective MSD is fitted over a given window whose diffusive flag follows the
        # same rules as D: the reference ion's flag, or the run-length rule for --cond-window
        if conductivity_window_ps is None:
            win = FitWindow(ref.window.start_ps, ref.window.end_ps, False,
                            diffusive=ref.window.diffusive, reason=ref.window.reason)
        else:
            short = run_length_reason((min(n_frames) - 1) * dt, min_run_ps)
            win = FitWindow(float(conductivity_window_ps[0]), float(conductivity_window_ps[1]), False,
                            diffusive=short is None, reason=short or "")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            per_rep = [[pos[s.name][r] for s in ions] for r in range(len(trajs))]
            result.einstein_helfand = cond.einstein_helfand_conductivity(
                per_rep, [s.charge for s in ions], dt, vol, temperature_K, window=win,
                n_blocks=n_blocks, max_lag_fraction=max_lag_fraction)
        msgs.extend(f"Einstein–Helfand: {w.message}" for w in caught)
        not_diffusive = [s.name for s in ions if not result.diffusion[s.name].window.diffusive]
        if not_diffusive or not win.diffusive:
            why = f"D of {', '.join(not_diffusive)} not diffusive" if not_diffusive else win.reason
            msgs.append("conductivities (Nernst–Einstein, Einstein–Helfand, Haven ratio, transference) are NOT "
                        f"measurements: {why}")
        ne, eh = result.nernst_einstein, result.einstein_helfand
        result.haven = cond.haven_ratio(ne[0], eh.sigma_S_m, ne[1], eh.sigma_err_S_m)
        net = sum(s.charge * s.n_molecules for s in species)
        if abs(net) > 1e-6:
            msgs.append(f"system has net formal charge {net:+g} e: check species charges (--charge)")
    else:
        msgs.append("no charged species found: no conductivity (set charges with --charge NAME=Z)")

    if structure:
        _structure(result, trajs, top, species, center, rdf_r_max_nm, rdf_bin_nm, shell_cutoff_nm)
    return result


def _structure(result: AnalysisResult, trajs, top, species: List[Species], center: Optional[str],
               r_max: float, bin_nm: float, shell_cutoff_nm: Optional[float]) -> None:
    msgs = result.warnings
    if center is not None:
        csp = find_species(species, center)
    else:
        cats = [s for s in species if s.kind == "cation"]
        if not cats:
            msgs.append("no cation species: no RDF/shell analysis (set center=...)")
            return
        csp = cats[0]
    result.center = csp.name
    c_idx = csp.atom_indices
    if not csp.monatomic:
        msgs.append(f"centre species {csp.name} is molecular: RDFs use all its atoms")
    oxy = classify_oxygens(top, trajs[0].xyz[0], trajs[0].unitcell_vectors[0])
    groups = {k: np.setdiff1d(v, c_idx) for k, v in oxy.items()}
    groups["F"] = element_indices(top, "F", exclude=c_idx)
    groups["P"] = element_indices(top, "P", exclude=c_idx)
    for gname, idx in groups.items():
        if len(idx) == 0:
            continue
        result.rdfs[f"{csp.name}-{gname}"] = rdf(trajs, c_idx, idx, r_max_nm=r_max, bin_width_nm=bin_nm)
    ligands = {k: v for k, v in groups.items() if k != "P" and len(v)}
    if not ligands:
        msgs.append("no O or F ligand atoms: no shell composition")
        return
    cutoffs = {}
    for g in ligands:
        if shell_cutoff_nm is not None:
            cutoffs[g] = float(shell_cutoff_nm)
            continue
        r = result.rdfs[f"{csp.name}-{g}"]
        if (np.isfinite(r.first_min_nm) and np.isfinite(r.peak_height) and r.peak_height > 1.0
                and r.first_peak_nm < MAX_CONTACT_PEAK_NM):
            cutoffs[g] = r.first_min_nm
        else:
            cutoffs[g] = DEFAULT_SHELL_CUTOFF_NM
            msgs.append(f"{csp.name}-{g} RDF has no contact peak below {MAX_CONTACT_PEAK_NM} nm: shell cutoff {DEFAULT_SHELL_CUTOFF_NM} nm")
    mol_species = {}
    for s in species:
        for m in s.molecules:
            mol_species[top.atom(int(m[0])).residue.index] = s.name
    for idx in ligands.values():
        for i in idx:
            mol_species.setdefault(top.atom(int(i)).residue.index, "other")
    order = [s.name for s in species if s.name != csp.name]
    if "other" in mol_species.values():
        order.append("other")
    result.shell = shell_composition(trajs, c_idx, ligands, cutoffs, mol_species, order)


def analyze_run_dir(run_dir: Union[str, Path], *,
                    trajectories: Optional[Union[str, Path, Sequence]] = None,
                    topology: Optional[Union[str, Path]] = None, **kwargs) -> AnalysisResult:
    """:func:`analyze` on a ``cgaa simulate`` run directory (what ``cgaa analyze RUN_DIR`` runs).

    Uses ``traj.dcd`` + ``topology.pdb``/``.cif`` (or the single ``*.pdb``/``*.cif``), and the mean
    temperature of ``state.csv`` unless ``temperature_K`` is given (``inputs["temperature_source"]``
    then says ``"state.csv (mean)"``). ``trajectories`` and ``topology`` replace the run
    directory's own files (only the missing one is searched for; given both, the directory
    is not searched). The time between the frames of the run's ``traj.dcd`` comes from the
    run's records (``run.json``: timestep_fs × report_interval, cross-checked against
    ``state.csv``'s time_ps and the DCD header; :func:`cgaa.analysis.io.read_run_records`)
    unless ``dt_ps`` is given. The stability check compares closest approaches with the contact
    floor of the run's own model copy (``model.pt``) unless ``contact_floor`` is given. Every other
    keyword goes to :func:`analyze`.
    """
    run_dir = Path(run_dir)
    if trajectories is None or topology is None:
        found_trajs, found_top = find_run_files(run_dir, trajectory=trajectories is None, topology=topology is None)
        trajectories = found_trajs if trajectories is None else trajectories
        topology = found_top if topology is None else topology
    record_note = None
    try:
        records = read_run_records(run_dir)
    except ValueError as err:
        if kwargs.get("dt_ps") is None:
            raise
        records, record_note = None, f"{err}; the given dt_ps (--dt-ps) is used"
    source = None
    if kwargs.get("temperature_K") is None:
        t = read_state_temperature(run_dir / "state.csv")
        if t is not None:
            kwargs["temperature_K"], source = t, "state.csv (mean)"
    if kwargs.get("contact_floor") is None:
        kwargs["contact_floor"] = run_contact_floor(run_dir)
    res = analyze(trajectories, topology, run_records=records, **kwargs)
    if source:
        res.inputs["temperature_source"] = source
    if record_note:
        res.warnings.insert(0, record_note)
    return res


def run_contact_floor(run_dir: Union[str, Path]) -> Optional[List[List[float]]]:
    """The contact floor (``[[Z1, Z2, d_min Å], ...]``) of the CGAA model a ``cgaa simulate`` run
    directory keeps (``model.pt``), or None: no model there, or one without a floor."""
    return contact_floor(archive_metadata(Path(run_dir) / "model.pt"))


def contact_floor(metadata: Optional[dict]) -> Optional[List[List[float]]]:
    """The contact floor ``[[Z1, Z2, d_min Å], ...]`` in a deployed model's metadata, or None."""
    floor = (metadata or {}).get("config", {}).get("contact_floor")
    return [list(map(float, e)) for e in floor] if floor else None
