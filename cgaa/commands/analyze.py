"""``cgaa analyze``: Li/anion/solvent diffusivity, conductivity, RDFs and Li solvation.

Thin shell over :mod:`cgaa.analysis` (the same code the notebooks use).
"""
from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Transport and structure analysis of an electrolyte MD trajectory.

  cgaa analyze RUN_DIR                  # traj.dcd + topology.pdb/.cif (or the single *.pdb/*.cif) in RUN_DIR
  cgaa analyze --traj traj.dcd --top box.pdb --out analysis/

Trajectories must be unwrapped (OpenMM: DCDReporter(..., enforcePeriodicBox=False));
a wrapped one is refused unless --unwrap. The time between frames comes from RUN_DIR's
run.json (checked against state.csv and the DCD header), an OpenMM DCD header, or frame
times the file vouches for; a DCD written by mdtraj, MDAnalysis or VMD (default header) or
a file whose times are frame numbers is refused unless --dt-ps gives it. The report says
which source was used. Writes report.json (every quantity with its
unit), report.md, CSV tables and PNG plots: per-species self-diffusion D (m^2/s, MSD over all time
origins, system centre-of-mass drift removed, automatic or --fit-window, block/replica
errors, optional Yeh-Hummer correction with --viscosity), Nernst-Einstein and
Einstein-Helfand conductivity (S/m), Haven ratio, ideal transference numbers, RDFs and
coordination numbers (Li-O carbonyl/ether, Li-F, Li-P), the Li first-shell composition, and a
stability check of every frame: broken bonds, and the closest approach of atoms of different
molecules per element pair against the model's contact floor (RUN_DIR/model.pt or --model).

The automatic fit window starts no earlier than --min-fit-start (5 ps), past the
ballistic-to-caged crossover where the log-log MSD slope also passes through 1; a run
shorter than --min-run (100 ps) is reported as NOT diffusive (not a measurement),
whatever the window.
"""


def _pairs(items, what: str, cast):
    out = {}
    for it in items or []:
        if "=" not in it:
            from cgaa.cli import CLIError

            raise CLIError(f"{what} must look like NAME=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        try:
            out[k.strip()] = cast(v.strip())
        except ValueError:
            from cgaa.cli import CLIError

            raise CLIError(f"bad value in {what} {it!r}") from None
    return out


def register(subparsers) -> None:
    """Add the ``analyze`` sub-command."""
    p = subparsers.add_parser(
        "analyze", help="diffusivity, conductivity, RDF/coordination and Li solvation of a trajectory",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", nargs="?", help="run directory of `cgaa simulate` (traj.dcd + topology.pdb or .cif)")
    p.add_argument("--traj", nargs="+", metavar="FILE",
                   help="trajectory file(s) (DCD, XTC, ...); several = independent replicas")
    p.add_argument("--top", metavar="PDB", help="topology (PDB or PDBx/mmCIF, one residue per molecule)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: RUN_DIR/analysis or ./analysis)")
    p.add_argument("--dt-ps", type=float, metavar="PS",
                   help="time between saved frames in ps; overrides the files (default: RUN_DIR's run.json, an "
                        "OpenMM DCD header or trustworthy frame times; other trajectories are refused without it)")
    p.add_argument("--stride", type=int, default=1, help="use every N-th frame (default 1)")
    p.add_argument("--start-ps", type=float, default=0.0, metavar="PS",
                   help="analyse frames from this time on, ps from each trajectory's first saved frame "
                        "(default 0), e.g. to drop an equilibration")
    p.add_argument("--end-ps", type=float, metavar="PS", help="analyse frames before this time, ps (default: the end)")
    p.add_argument("--temperature", type=float, metavar="K",
                   help="temperature in K (default: mean of RUN_DIR/state.csv, else 298.15)")
    p.add_argument("--viscosity", type=float, metavar="PA_S",
                   help="shear viscosity in Pa*s for the Yeh-Hummer finite-size correction")
    p.add_argument("--fit-window", type=float, nargs=2, metavar=("START_PS", "END_PS"),
                   help="MSD fit window in ps (default: automatic, log-log slope ~ 1)")
    p.add_argument("--cond-window", type=float, nargs=2, metavar=("START_PS", "END_PS"),
                   help="fit window of the collective (Einstein-Helfand) MSD (default: the cation's)")
    p.add_argument("--blocks", type=int, default=5, help="blocks for the error estimate (default 5; 1: none)")
    p.add_argument("--slope-tol", type=float, default=0.1, help="|log-log slope - 1| tolerance (default 0.1)")
    # None: the library defaults (cgaa.analysis.diffusion.DEFAULT_MIN_FIT_START_PS / DEFAULT_MIN_RUN_PS),
    # not imported here to keep `cgaa --help` fast; tests check the numbers in the help text
    p.add_argument("--min-fit-start", type=float, metavar="PS",
                   help="earliest start of the automatic fit window in ps (default 5: past the "
                        "ballistic-to-caged crossover of molecular liquids, where the slope also passes 1)")
    p.add_argument("--min-run", type=float, metavar="PS",
                   help="runs shorter than this (ps) are reported as NOT diffusive, not a measurement "
                        "(default 100; 0 disables)")
    p.add_argument("--select", action="append", metavar="NAME=SELECTION",
                   help="define a species by an mdtraj selection (repeatable), e.g. Li='resname LI'")
    p.add_argument("--charge", action="append", metavar="NAME=Z",
                   help="formal charge of a species/residue in e (repeatable), e.g. TFS=-1")
    p.add_argument("--msd-of", choices=("auto", "com", "atoms"), default="auto",
                   help="MSD of molecule centres of mass or of atoms (auto: COM for molecules)")
    p.add_argument("--center", help="species at the centre of RDFs and shells (default: first cation)")
    p.add_argument("--rdf-rmax", type=float, default=1.0, metavar="NM", help="RDF range in nm (default 1.0)")
    p.add_argument("--rdf-bin", type=float, default=0.005, metavar="NM", help="RDF bin width in nm (default 0.005)")
    p.add_argument("--shell-cutoff", type=float, metavar="NM",
                   help="first-shell cutoff in nm for all ligands (default: first RDF minima)")
    p.add_argument("--unwrap", action="store_true", help="unwrap a wrapped trajectory instead of refusing it")
    p.add_argument("--no-structure", action="store_true", help="skip RDFs and shell composition")
    p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    p.add_argument("--model", metavar="PT",
                   help="CGAA model whose contact floor (closest approaches in its training data) the stability "
                        "check compares with (default: RUN_DIR/model.pt, the run's own copy)")
    p.add_argument("--no-stability", action="store_true",
                   help="skip the stability check (broken bonds and closest approaches in every frame)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the analysis and write the report; returns the exit code."""
    from cgaa.cli import CLIError

    if not args.run_dir and not args.traj:
        raise CLIError("give a RUN_DIR or --traj FILE [--top PDB]")
    if args.traj and not args.top and not args.run_dir:
        raise CLIError("--traj needs --top (the topology PDB)")
    if args.stride < 1:
        raise CLIError(f"--stride must be >= 1, got {args.stride}")
    if args.dt_ps is not None and not args.dt_ps > 0:
        raise CLIError(f"--dt-ps must be > 0 ps, got {args.dt_ps:g}")
    limits = {}
    if args.min_fit_start is not None:
        if args.min_fit_start < 0:
            raise CLIError(f"--min-fit-start must be >= 0 ps, got {args.min_fit_start:g}")
        limits["min_fit_start_ps"] = args.min_fit_start
    if args.min_run is not None:
        if args.min_run < 0:
            raise CLIError(f"--min-run must be >= 0 ps, got {args.min_run:g}")
        limits["min_run_ps"] = args.min_run

    from cgaa.analysis import analyze, analyze_run_dir, write_report

    options = dict(
        dt_ps=args.dt_ps, temperature_K=args.temperature, viscosity_Pa_s=args.viscosity,
        fit_window_ps=tuple(args.fit_window) if args.fit_window else None,
        conductivity_window_ps=tuple(args.cond_window) if args.cond_window else None,
        n_blocks=args.blocks, slope_tol=args.slope_tol,
        selections=_pairs(args.select, "--select", str) or None,
        charges=_pairs(args.charge, "--charge", float) or None,
        msd_of=args.msd_of, unwrap_input=args.unwrap, stride=args.stride, start_ps=args.start_ps,
        end_ps=args.end_ps, center=args.center,
        rdf_r_max_nm=args.rdf_rmax, rdf_bin_nm=args.rdf_bin, shell_cutoff_nm=args.shell_cutoff,
        structure=not args.no_structure, stability=not args.no_stability, **limits)
    if args.model:
        from cgaa.analysis.pipeline import contact_floor
        from cgaa.core.modelfile import read_metadata

        try:
            options["contact_floor"] = contact_floor(read_metadata(args.model))
        except (OSError, ValueError) as err:
            raise CLIError(f"--model {args.model}: {err}")
    if args.run_dir:
        # the run directory's files unless --traj/--top replace them; T from its state.csv
        res = analyze_run_dir(args.run_dir, trajectories=args.traj or None, topology=args.top or None, **options)
        out = Path(args.out) if args.out else Path(args.run_dir) / "analysis"
    else:
        res = analyze(args.traj, args.top, **options)
        out = Path(args.out) if args.out else Path("analysis")
    files = write_report(res, out, plots=not args.no_plots)
    _print_summary(res, out, files)
    return 0


def _print_summary(res, out: Path, files) -> None:
    frames = "+".join(str(n) for n in res.inputs["n_frames"])
    print(f"cgaa analyze: {frames} frames x {res.inputs['dt_ps']:g} ps "
          f"(time step from {res.inputs.get('dt_source', '?')}), T = {res.inputs['temperature_K']:g} K")
    from cgaa.analysis.report import not_diffusive_note

    for name, d in res.diffusion.items():
        note = not_diffusive_note(d)
        print(f"  D[{name:>6}] = {d.D_m2_s:.3e} +/- {d.D_err_m2_s:.1e} m^2/s   "
              f"fit {d.window.start_ps:g}-{d.window.end_ps:g} ps" + (f"\n           {note}" if note else ""))
    if res.nernst_einstein is not None:
        print(f"  sigma_NE = {res.nernst_einstein[0]:.4g} S/m   sigma_EH = {res.einstein_helfand.sigma_S_m:.4g} S/m"
              f"   Haven = {res.haven[0]:.3g}")
    for lab, r in res.rdfs.items():
        print(f"  {lab:<16} peak {r.first_peak_nm:.3f} nm  min {r.first_min_nm:.3f} nm  CN {r.cn_first_shell:.2f}")
    if res.shell is not None:
        comp = ", ".join(f"{k} {v:.2f}" for k, v in res.shell.mean_counts.items())
        print(f"  {res.center} first shell: {comp}")
    if res.transference:
        print("  transference (ideal): " + ", ".join(f"{k} {t:.3f} +/- {e:.2g}" for k, (t, e) in res.transference.items()))
    for k, chk in enumerate(res.stability):
        print(f"  stability of trajectory {k}: {chk.n_frames} frames, molecules "
              f"{'intact' if not chk.broken_frames else f'BROKEN in {chk.broken_frames} frames'} "
              f"(largest bond stretch {chk.max_bond_stretch:.2f}x), contact guard's wall "
              f"{'never reached' if not chk.below_wall else 'reached by ' + ', '.join(f'{p} (in {chk.frames_below_wall[p]} frames)' for p in chk.below_wall)}"
              + ("" if chk.floor else " (no contact floor given)"))
    for w in res.warnings:
        print(f"  warning: {w}")
    print(f"  wrote {len(files)} files to {out}")
