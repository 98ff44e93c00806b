"""``cgaa deploy CHECKPOINT -o model.pt``: TorchScript model with metadata for OpenMM."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy", help="export a training checkpoint as a TorchScript model with metadata",
        description="Script the model of a checkpoint (EMA weights by default) with TorchScript and "
                    "save it with its metadata (version, units, cutoff, elements, grain types, force "
                    "mode). Load it with cgaa.load_model(path) or use it in cgaa simulate.",
        epilog="examples:\n  cgaa deploy runs/example/best.pt -o model.pt\n"
               "  cgaa deploy old-model.pt --contact-floor-from train.xyz -o model.pt   # add the floor to a deployed model\n"
               "  cgaa deploy old-model.pt --rescript -o model.pt   # same weights, this version's (faster) code",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="best.pt or last.pt from cgaa train/finetune (or, with --contact-floor-from "
                                      "and/or --rescript, a deployed model)")
    p.add_argument("-o", "--output", required=True, help="output model file (.pt)")
    p.add_argument("--weights", choices=["ema", "model"], default="ema",
                   help="EMA-averaged (default) or raw weights")
    p.add_argument("--dtype", choices=["float32", "float64"], default=None,
                   help="precision of the deployed model (default: the training dtype)")
    p.add_argument("--contact-floor-from", nargs="+", metavar="XYZ",
                   help="the model's training data (extxyz): record the closest approach of atoms of different "
                        "grains per element pair, where cgaa simulate puts its contact guard (models trained "
                        "with this version record it themselves)")
    p.add_argument("--rescript", action="store_true",
                   help="(deployed model) script it again with this version's model code: a deployed file carries "
                        "the code of the cgaa that wrote it; same weights, config and training record")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cgaa.cli import CLIError, check_output_file
    from cgaa.train.deploy import deploy_checkpoint, rescript_model, set_contact_floor
    from cgaa.core.modelfile import is_deployed_model

    check_output_file(args.output, "-o")
    deployed = is_deployed_model(args.checkpoint)
    if not deployed and Path(args.output).resolve() == Path(args.checkpoint).resolve():
        raise CLIError(f"-o {args.output} is the checkpoint itself: deploying there would replace it; "
                       "give another file, e.g. -o model.pt")
    if deployed:
        if not (args.contact_floor_from or args.rescript):
            raise ValueError(f"{args.checkpoint} is already a deployed model; give a training checkpoint, "
                             "or --contact-floor-from to add a contact floor to it, or --rescript")
        source = args.checkpoint
        if args.rescript:
            path, meta = rescript_model(source, args.output)
            source = path
        if args.contact_floor_from:
            path, meta = set_contact_floor(source, args.output, args.contact_floor_from)
    elif args.rescript:
        raise ValueError(f"--rescript takes a deployed model; {args.checkpoint} is a training checkpoint "
                         "(deploying it scripts it with this version's code anyway)")
    else:
        path, meta = deploy_checkpoint(args.checkpoint, args.output, weights=args.weights, dtype=args.dtype,
                                       contact_floor_from=args.contact_floor_from)
    names = ", ".join(t["name"] for t in meta["grain_types"])
    print(f"wrote {path}: {meta['force_mode']} model, cutoff {meta['cutoff']} Å, "
          f"elements {' '.join(meta['element_symbols'])}, grain types {names}")
    floor = meta["config"].get("contact_floor") or []
    if floor:
        closest = min(floor, key=lambda e: e[2])
        print(f"contact floor: {len(floor)} element pairs, closest {closest[2]:.2f} Å "
              f"(Z {closest[0]}-{closest[1]})")
    return 0
