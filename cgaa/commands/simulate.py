"""``cgaa simulate``: CGAA molecular dynamics in OpenMM (thin shell over :mod:`cgaa.md.run`)."""
from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
All-atom MD with a CGAA model in OpenMM.

  cgaa simulate box.pdb --model model.pt --steps 200000 --out run/
  cgaa simulate lipf6-ec-emc-1m --n-atoms 3000 --ensemble npt --time-ps 100 --out run/
  cgaa simulate --restart --out run/ --steps 400000      # continue (and extend) a run
  cgaa simulate box.pdb --timestep 2 --fast-substeps 2 --time-ps 100   # network every 2 fs, bonds at 1 fs

INPUT is a box file from `cgaa build` (PDB with CONECT records and CRYST1 box, or
PDBx/mmCIF .cif above 99,999 atoms; one residue per molecule) or a recipe name (built on
the fly). The energy is minimised first, then the run writes
to --out: traj.dcd (unwrapped, for MSD), state.csv (time, energies, temperature,
volume, density, ns/day), checkpoint.chk (+ the previous one), final_state.xml,
topology.pdb (topology.cif above 99,999 atoms), model.pt and run.json. A run stops with a clear message on NaN energy,
absurd forces or temperature, keeping the last good checkpoint; Ctrl-C saves a
checkpoint and exits with code 130. --restart continues from the last checkpoint and
appends to traj.dcd and state.csv. Units: K, bar, fs, ps.
"""


def register(subparsers) -> None:
    """Add the ``simulate`` sub-command."""
    p = subparsers.add_parser("simulate", help="run CGAA molecular dynamics in OpenMM (NVT/NPT/NVE)",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", help="box file (.pdb or .cif) from `cgaa build`, or a recipe name")
    p.add_argument("--out", "-o", default="run", help="run directory (default: run)")
    p.add_argument("--model", "-m", help="deployed model .pt (default: the shipped model; on --restart the run's copy)")
    p.add_argument("--ensemble", choices=("nvt", "npt", "nve"), help="nvt (Langevin, default), npt (+ Monte Carlo barostat), nve (Verlet)")
    p.add_argument("--temperature", "-T", type=float, metavar="K", help="temperature in K (default 298.15)")
    p.add_argument("--pressure", "-P", type=float, metavar="BAR", help="pressure in bar for npt (default 1)")
    p.add_argument("--timestep", type=float, metavar="FS", help="time step in fs (default 1.0); with --fast-substeps "
                                                                "the step of the CGAA network")
    p.add_argument("--fast-substeps", type=int, metavar="N",
                   help="multiple time stepping (r-RESPA): integrate the classical forces inside molecules (the prior's "
                        "bonds, angles, torsions) N times per --timestep, the CGAA network and the forces between "
                        "molecules once (default 1: no splitting). --timestep 2 --fast-substeps 2 moves bonds at 1 fs "
                        "and calls the network every 2 fs, which keeps the shipped model's ion diffusion; at 4 fs "
                        "density and structure hold, ion diffusion does not (docs/simulate.md)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="total steps of the run (default 10000)")
    g.add_argument("--time-ps", type=float, metavar="PS", help="total simulated time in ps")
    p.add_argument("--report-interval", type=int, metavar="STEPS", help="steps between frames/state rows (default 1000)")
    p.add_argument("--checkpoint-interval", type=int, metavar="STEPS", help="steps between checkpoints (default 10000)")
    p.add_argument("--platform", choices=("Reference", "CPU", "CUDA", "OpenCL"), help="OpenMM platform (default CPU)")
    p.add_argument("--precision", choices=("single", "mixed", "double"), help="platform precision (default mixed)")
    p.add_argument("--seed", type=int, help="random seed for velocities, thermostat, barostat, packing (default 0)")
    p.add_argument("--friction", type=float, metavar="PER_PS", help="Langevin friction in 1/ps (default 1)")
    p.add_argument("--bond-guard", dest="bond_guard", action="store_true", default=None,
                   help="flat-bottom restraint, zero within ±0.1 Å of each bond's teacher length (default: "
                        "on for models without a bonded prior, off for models with one)")
    p.add_argument("--no-bond-guard", dest="bond_guard", action="store_false",
                   help="no bond guard: the ML potential alone holds molecules together")
    p.add_argument("--no-contact-guard", dest="contact_guard", action="store_false", default=None,
                   help="no repulsive wall between atoms of different grains (default: a wall at 0.9 x the closest "
                        "approach of each element pair in the model's training data, where the model records it)")
    p.add_argument("--constraints", choices=("hbonds", "none"),
                   help="hbonds (default): bonds to H held at the teacher force field's lengths; none: fully flexible")
    p.add_argument("--barostat-interval", type=int, metavar="STEPS", help="steps between barostat moves (default 25)")
    p.add_argument("--no-minimize", action="store_true", help="skip the energy minimisation")
    p.add_argument("--minimize-iterations", type=int, metavar="N", help="max minimiser iterations (default 1000)")
    p.add_argument("--max-force", type=float, metavar="KJ_MOL_NM", help="stop above this force (default 1e5 kJ/mol/nm)")
    p.add_argument("--max-temperature", type=float, metavar="K", help="stop above this temperature (default max(3T, T+1000))")
    p.add_argument("--n-atoms", type=int, help="atoms when INPUT is a recipe (default 3000)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    p.add_argument("--restart", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the simulation; returns the exit code (0 done, 1 unphysical stop, 130 Ctrl-C)."""
    from cgaa.cli import CLIError

    if args.restart and args.input:
        raise CLIError("--restart continues the run in --out; do not give INPUT")
    if not args.restart and not args.input:
        raise CLIError("give INPUT (a box file from `cgaa build` or a recipe name), or --restart")
    if args.threads is not None:
        if args.threads < 1:
            raise CLIError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)

    from cgaa.md.run import SimulationError, run_simulation

    try:
        res = run_simulation(
            args.input, args.model, args.out, ensemble=args.ensemble, temperature=args.temperature,
            pressure=args.pressure, timestep_fs=args.timestep, steps=args.steps, time_ps=args.time_ps,
            report_interval=args.report_interval, checkpoint_interval=args.checkpoint_interval,
            platform=args.platform, precision=args.precision, seed=args.seed, restart=args.restart,
            minimize=False if args.no_minimize else None, minimize_iterations=args.minimize_iterations,
            friction_per_ps=args.friction, barostat_interval=args.barostat_interval,
            constraints=args.constraints, bond_guard=args.bond_guard, contact_guard=args.contact_guard,
            fast_substeps=args.fast_substeps, max_force=args.max_force, max_temperature=args.max_temperature,
            n_atoms=args.n_atoms,
            overwrite=args.overwrite, progress=not args.no_progress)
    except SimulationError as err:
        print(f"cgaa simulate: {err}", file=sys.stderr)
        return 1
    if res.interrupted:
        print(f"cgaa simulate: interrupted at step {res.steps}; checkpoint saved in {res.files['checkpoint']} "
              f"(continue with: cgaa simulate --restart --out {res.out_dir})", file=sys.stderr)
        return 130
    last = res.last
    print(f"cgaa simulate: {res.steps} steps ({res.time_ps:g} ps) in {res.out_dir}, {res.ns_per_day:.3g} ns/day"
          + (f", T {last['temperature_K']:.1f} K, density {last['density_g_cm3']:.4f} g/cm3" if last else ""))
    return 0
