"""``cgaa sample``: classical MD with the teacher, labelled frames as extxyz."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sample", help="run teacher MD and write labelled frames (extxyz)",
        description="Minimise, equilibrate and sample a box with the classical teacher force field; "
                    "writes frames with REF_energy (eV), REF_forces (eV/A), grain and resname, "
                    "plus a fraction of hot and distorted frames.")
    p.add_argument("source", help="box file (.pdb/.cif) from 'cgaa build', or a recipe name/YAML (a box is built on the fly)")
    p.add_argument("-o", "--output", default="frames.xyz", help="output extxyz (default frames.xyz)")
    p.add_argument("--temperatures", default=None, help="comma-separated temperatures in K (default: the recipe's, else 298.15)")
    p.add_argument("--frames", type=int, default=10, help="equilibrium frames per temperature (default 10)")
    p.add_argument("--stride", type=int, default=500, help="MD steps between frames (decorrelation; default 500)")
    p.add_argument("--equil-steps", type=int, default=5000, help="equilibration steps per temperature (default 5000)")
    p.add_argument("--timestep", type=float, default=1.0, help="time step in fs (default 1.0)")
    p.add_argument("--ensemble", choices=("nvt", "npt"), default="nvt", help="default nvt")
    p.add_argument("--pressure", type=float, default=1.0, help="NPT pressure in bar (default 1)")
    p.add_argument("--constraints", choices=("none", "hbonds"), default="none", help="default none (flexible)")
    p.add_argument("--hot-fraction", type=float, default=0.1, help="extra hot frames per equilibrium frame (default 0.1)")
    p.add_argument("--distorted-fraction", type=float, default=0.1, help="extra distorted frames per equilibrium frame (default 0.1)")
    p.add_argument("--hot-factor", type=float, default=1.8, help="hot frames: temperature factor (default 1.8)")
    p.add_argument("--distort-sigma", type=float, default=0.03, help="distorted frames: atom displacement sigma, A (default 0.03)")
    p.add_argument("--cutoff", type=float, default=1.0, help="nonbonded cutoff, nm (default 1.0)")
    p.add_argument("--atoms", type=int, default=3000, help="atoms of the box built from a recipe (default 3000)")
    p.add_argument("--platform", default=None, help="OpenMM platform: Reference, CPU, CUDA, OpenCL (default fastest)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-stress", action="store_true",
                   help="skip the stress labels (REF_stress; 12 extra teacher energies per frame, needed to "
                        "train the pressure with loss.virial)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cgaa.cli import CLIError, check_output_file

    check_output_file(args.output, "-o")
    temps = None
    if args.temperatures:
        try:
            temps = [float(t) for t in args.temperatures.split(",") if t.strip()]
        except ValueError:
            raise ValueError(f"--temperatures: '{args.temperatures}' is not a comma-separated list of numbers") from None
    try:
        res = _run(args, temps)
    except RuntimeError as err:
        raise CLIError(str(err)) from None
    print(res.summary())
    return 0


def _run(args: argparse.Namespace, temps):
    from cgaa.teacher.sample import sample_teacher

    return sample_teacher(
        args.source, args.output, temperatures=temps, n_frames=args.frames, stride=args.stride,
        equilibration_steps=args.equil_steps, timestep_fs=args.timestep, ensemble=args.ensemble,
        pressure_bar=args.pressure, constraints=None if args.constraints == "none" else args.constraints,
        hot_fraction=args.hot_fraction, distorted_fraction=args.distorted_fraction,
        hot_factor=args.hot_factor, distort_sigma=args.distort_sigma, cutoff=args.cutoff,
        platform=args.platform, seed=args.seed, n_atoms=args.atoms, progress=not args.no_progress,
        stress=not args.no_stress)
