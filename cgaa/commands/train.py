"""``cgaa train CONFIG.yaml``: fit a CGAA model to labelled extxyz frames."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a CGAA model on extxyz frames (YAML config)",
        description="Train a CGAA model. The YAML config has sections data, model, training, output; "
                    "every key is documented in docs/training.md and unknown keys are rejected. "
                    "Writes best.pt/last.pt checkpoints, metrics.csv, learning_curve.png and "
                    "test_metrics.json to output.dir. Data-parallel: "
                    "torchrun --nproc_per_node N -m cgaa train CONFIG.",
        epilog="example: cp examples/train_config.yaml . (its header says how to make its data: cgaa build, cgaa sample) && cgaa train train_config.yaml && cgaa deploy runs/example/best.pt -o model.pt")
    p.add_argument("config", help="YAML config file")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue from output.dir/last.pt exactly")
    g.add_argument("--overwrite", action="store_true",
                   help="replace the run that output.dir holds (without --resume or --overwrite, an output.dir "
                        "holding last.pt, best.pt or metrics.csv is refused)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cgaa.train.config import load_config
    from cgaa.train.trainer import train

    res = train(load_config(args.config), resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    print(f"best checkpoint: {res.best_checkpoint} (validation loss {res.best_val_loss:.4g}, "
          f"{res.epochs_run} epochs)")
    if res.test_metrics:
        m = res.test_metrics
        print(f"test: energy RMSE {m['energy_rmse_meV_per_atom']:.2f} meV/atom, force RMSE "
              f"{m['forces_rmse_eV_per_A']:.3f} eV/Å (inter {m['grain_net_forces_rmse_eV_per_A']:.3f}, "
              f"intra {m['forces_intra_rmse_eV_per_A']:.3f})")
    return 0
