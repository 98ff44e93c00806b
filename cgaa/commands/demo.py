"""``cgaa demo``: build → simulate → analyze on a small 1 M LiPF6 EC/EMC box (what ``make demo`` runs)."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="build a small LiPF6 EC/EMC box, run a short CGAA MD, report Li diffusivity",
        description="The tour behind `make demo`: cgaa build (1 M LiPF6 in EC:EMC 3:7), cgaa simulate "
                    "with the shipped model (NVT, 298.15 K), cgaa analyze. A few ps are far too short for "
                    "converged transport; the report says whether the MSD was diffusive.")
    p.add_argument("--out", default="demo-run", help="output folder (default demo-run)")
    p.add_argument("--atoms", type=int, default=1000, help="atoms in the box (default 1000)")
    p.add_argument("--steps", type=int, default=2000, help="MD steps of 1 fs (default 2000)")
    p.add_argument("--model", default=None, help="deployed model (default: the shipped one)")
    p.add_argument("--platform", default="CPU", help="OpenMM platform (default CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cgaa.demo import run_demo

    run_demo(args.out, n_atoms=args.atoms, steps=args.steps, model=args.model, platform=args.platform,
             seed=args.seed)
    return 0
