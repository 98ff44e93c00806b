"""``cgaa evaluate MODEL DATA...``: errors of a deployed model on labelled frames."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="errors of a deployed model on extxyz frames, parity plots",
        description="Energy RMSE/MAE (meV/atom) and force RMSE/MAE (eV/Å) for total, inter-grain and "
                    "intra-grain forces, per element and per grain type; writes metrics.json and "
                    "parity.png to --out.",
        epilog="example: cgaa evaluate model.pt test.xyz --out eval/")
    p.add_argument("model", help="deployed model (.pt from cgaa deploy)")
    p.add_argument("data", nargs="+", help="extxyz file(s) with reference energies and forces")
    p.add_argument("--out", default="evaluation", help="output folder (default: evaluation)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cgaa.train.evaluate import evaluate

    m = evaluate(args.model, args.data, args.out, device=args.device)
    print(f"{m['n_frames']} frames: energy RMSE {m['energy_rmse_meV_per_atom']:.2f} meV/atom "
          f"(MAE {m['energy_mae_meV_per_atom']:.2f}, mean error {m['energy_mean_error_meV_per_atom']:+.2f}); "
          f"force RMSE {m['forces_rmse_eV_per_A']:.3f} eV/Å "
          f"(inter-grain net {m['grain_net_forces_rmse_eV_per_A']:.3f}, intra {m['forces_intra_rmse_eV_per_A']:.3f})")
    if "pressure_rmse_bar" in m:
        print(f"{m['n_frames_with_stress']} frames with stress: pressure RMSE {m['pressure_rmse_bar']:.0f} bar "
              f"(mean error {m['pressure_mean_error_bar']:+.0f} bar), molecular virial RMSE "
              f"{m['virial_mol_rmse_meV_per_atom']:.2f} meV/atom")
    for name, v in m["per_grain_type"].items():
        print(f"  {name:>6}: force RMSE {v['forces_rmse_eV_per_A']:.3f} eV/Å, "
              f"net force on each {name} {v['net_force_rmse_eV_per_A']:.3f} eV/Å")
    print(f"wrote {args.out}/metrics.json and {args.out}/parity.png")
    return 0
