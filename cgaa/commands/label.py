"""``cgaa label``: relabel extxyz frames with an ASE calculator."""
from __future__ import annotations

import argparse


def _kv(items):
    """['sigma=3.0', 'device=cpu'] -> {'sigma': 3.0, 'device': 'cpu'} (numbers parsed)."""
    out = {}
    for it in items or []:
        k, sep, v = it.partition("=")
        if not sep or not k:
            raise ValueError(f"--calc-arg '{it}': expected KEY=VALUE")
        for conv in (int, float):
            try:
                out[k] = conv(v)
                break
            except ValueError:
                continue
        else:
            out[k] = {"true": True, "false": False}.get(v.lower(), v)
    return out


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "label", help="relabel extxyz frames with an ASE calculator (DFT, universal MLIP, teacher)",
        description="Compute REF_energy (eV) and REF_forces (eV/A) (with --stress also REF_stress, eV/A^3) for every frame of an extxyz file "
                    "with an ASE calculator and write a new extxyz (same keys as cgaa sample). "
                    "Calculators: sevenn (SevenNet-0 + D3(BJ), the quantum-level teacher; pip install \"cgaa[sevenn]\"), "
                    "xtb (GFN2-xTB; pip install \"cgaa[xtb]\"), teacher (the classical force field), emt, lj, or "
                    "module:callable returning an ASE calculator. Resumable: each labelled frame is appended to "
                    "OUTPUT.partial at once; after an interruption the same command continues where it stopped, "
                    "labelling nothing twice. A frame with NaN or absurd labels stops the run, naming it.")
    p.add_argument("input", help="input extxyz (labels optional; energy/forces keys mapped), or a 'cgaa simulate' "
                                 "run directory (traj.dcd + topology.pdb): label the configurations of an MD run")
    p.add_argument("--start-ps", type=float, default=0.0, help="run directory: skip frames before this time (ps)")
    p.add_argument("--every-ps", type=float, default=None, help="run directory: time between labelled frames (ps; "
                                                                  "default every saved frame)")
    p.add_argument("--max-frames", type=int, default=None, help="run directory: at most this many frames, evenly spaced")
    p.add_argument("-o", "--output", required=True, help="output extxyz")
    p.add_argument("--calculator", "-c", required=True, help="sevenn | xtb | teacher | emt | lj | module:callable")
    p.add_argument("--calc-arg", action="append", metavar="KEY=VALUE", help="keyword argument for the calculator (repeatable)")
    p.add_argument("--name", help="label recorded as info['teacher'] (default: the calculator spec)")
    p.add_argument("--energy-key", help="read the input energy from exactly this key")
    p.add_argument("--forces-key", help="read the input forces from exactly this key")
    p.add_argument("--stress", action="store_true",
                   help="also label the stress tensor (REF_stress, eV/A^3; periodic frames; the teacher computes it "
                        "from 12 strained energies per frame), needed to train the pressure (loss.virial)")
    p.add_argument("--no-keep-previous", action="store_true",
                   help="drop the input's old labels instead of keeping them as prev_energy/prev_forces")
    p.add_argument("--max-force", type=float, default=None,
                   help="refuse labels with a force above this (eV/A; default 50): a diverged calculator or a broken frame")
    p.add_argument("--restart", action="store_true", help="ignore OUTPUT.partial (on Dask: OUTPUT.parts/) of an interrupted run and label from the start")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (frames/h and ETA)")
    d = p.add_argument_group("on Dask (pip install \"cgaa[dask]\"; docs/scaling.md)")
    d.add_argument("--dask", metavar="CONFIG.yaml", nargs="?", const="",
                   help="label in chunks of frames as tasks on Dask: a LocalCluster (--dask alone), a scheduler "
                        "address or Slurm/PBS jobs as the YAML file says (cgaa.distributed.cluster; docs/scaling.md); "
                        "the same output file, resumable from "
                        "OUTPUT.parts/, a chunk whose worker died is labelled again elsewhere")
    d.add_argument("--scheduler", metavar="ADDRESS",
                   help="label on the running Dask scheduler at ADDRESS (e.g. tcp://head:8786; replaces the "
                        "cluster of --dask)")
    d.add_argument("--chunk-frames", type=int, metavar="N",
                   help="frames per Dask task (default: the config's chunk_frames, else 4)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cgaa.cli import CLIError, check_output_file, one_line
    from cgaa.teacher.label import label_file

    check_output_file(args.output, "-o")
    if args.dask is not None or args.scheduler:
        return _run_on_dask(args)
    if args.chunk_frames is not None:
        raise CLIError("--chunk-frames is for labelling on Dask (--dask or --scheduler)")
    try:
        n = label_file(args.input, args.output, args.calculator, calculator_kwargs=_kv(args.calc_arg),
                       name=args.name, energy_key=args.energy_key, forces_key=args.forces_key,
                       progress=not args.no_progress, stress=args.stress,
                       keep_previous=not args.no_keep_previous,
                       run_frames={"start_ps": args.start_ps, "every_ps": args.every_ps, "max_frames": args.max_frames},
                       resume=not args.restart, **({} if args.max_force is None else {"max_force": args.max_force}))
    except (RuntimeError, ValueError) as err:  # a calculator failed on a frame, bad input (the message names it)
        raise CLIError(one_line(str(err))) from None
    print(f"labelled {n} frames with '{args.name or args.calculator}' -> {args.output}")
    return 0


def _run_on_dask(args: argparse.Namespace) -> int:
    """``cgaa label --dask/--scheduler``: :func:`cgaa.distributed.label.label_file_distributed`."""
    from cgaa.cli import CLIError, one_line
    from cgaa.distributed.cluster import describe, load_config, open_client
    from cgaa.distributed.label import DEFAULT_CHUNK_FRAMES, label_file_distributed

    if args.chunk_frames is not None and args.chunk_frames < 1:
        raise CLIError(f"--chunk-frames must be >= 1, got {args.chunk_frames}")
    cfg = load_config(args.dask or None, address=args.scheduler)
    chunk = args.chunk_frames or cfg.chunk_frames or DEFAULT_CHUNK_FRAMES
    try:
        with open_client(cfg) as client:
            if not args.no_progress:
                print(f"cgaa label: on Dask ({describe(client)}), {chunk} frames per task", flush=True)
            n = label_file_distributed(
                args.input, args.output, args.calculator, client=client, calculator_kwargs=_kv(args.calc_arg),
                name=args.name, energy_key=args.energy_key, forces_key=args.forces_key,
                progress=not args.no_progress, stress=args.stress, keep_previous=not args.no_keep_previous,
                run_frames={"start_ps": args.start_ps, "every_ps": args.every_ps, "max_frames": args.max_frames},
                resume=not args.restart, chunk_frames=chunk, retries=cfg.retries, threads=cfg.task_threads,
                **({} if args.max_force is None else {"max_force": args.max_force}))
    except (RuntimeError, ValueError) as err:
        raise CLIError(one_line(str(err))) from None
    print(f"labelled {n} frames with '{args.name or args.calculator}' on Dask -> {args.output}")
    return 0
