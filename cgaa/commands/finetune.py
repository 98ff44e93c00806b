"""``cgaa finetune CONFIG.yaml``: adapt a trained model to new data without forgetting."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune", help="fine-tune a trained model on new data (experience replay + EWC)",
        description="Fine-tune: the training config plus a 'finetune' section (start, old_data, "
                    "replay_fraction, ewc_lambda, fisher_frames). Reports the error on the old data "
                    "before and after in output.dir/finetune_report.json. See docs/training.md.")
    p.add_argument("config", help="YAML config file with a finetune section")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue from output.dir/last.pt")
    g.add_argument("--overwrite", action="store_true", help="replace the run that output.dir holds (refused otherwise)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from cgaa.train.config import load_config
    from cgaa.train.finetune import finetune

    res = finetune(load_config(args.config), resume=args.resume, overwrite=args.overwrite,
                   progress=not args.no_progress)
    report = json.loads((res.run_dir / "finetune_report.json").read_text())
    for when in ("before", "after"):
        m = report.get(f"old_data_{when}")
        if m:
            print(f"old data {when}: energy RMSE {m['energy_rmse_meV_per_atom']:.2f} meV/atom, "
                  f"force RMSE {m['forces_rmse_eV_per_A']:.3f} eV/Å")
    print(f"best checkpoint: {res.best_checkpoint}")
    return 0
