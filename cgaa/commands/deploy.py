"""``cgaa deploy CHECKPOINT -o model.pt``: TorchScript model with metadata for OpenMM."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy", help="export a training checkpoint as a TorchScript model with metadata",
        description="Script the model of a checkpoint (EMA weights by default) with TorchScript and "
                    "save it with its metadata (version, units, cutoff, elements, grain types, force "
                    "mode). Load it with cgaa.load_model(path) or use it in cgaa simulate.",
        epilog="example: cgaa deploy runs/example/best.pt -o model.pt")
    p.add_argument("checkpoint", help="best.pt or last.pt from cgaa train/finetune")
    p.add_argument("-o", "--output", required=True, help="output model file (.pt)")
    p.add_argument("--weights", choices=["ema", "model"], default="ema",
                   help="EMA-averaged (default) or raw weights")
    p.add_argument("--dtype", choices=["float32", "float64"], default=None,
                   help="precision of the deployed model (default: the training dtype)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cgaa.deploy import deploy_checkpoint

    path, meta = deploy_checkpoint(args.checkpoint, args.output, weights=args.weights, dtype=args.dtype)
    names = ", ".join(t["name"] for t in meta["grain_types"])
    print(f"wrote {path}: {meta['force_mode']} model, cutoff {meta['cutoff']} Å, "
          f"elements {' '.join(meta['element_symbols'])}, grain types {names}")
    return 0
