"""``cgaa replicas``: a replica set of ``cgaa simulate`` runs (seed + k), on Dask or one after
another, and one ``cgaa analyze`` over all of them (thin shell over :mod:`cgaa.distributed.replicas`)."""
from __future__ import annotations

import argparse

DESCRIPTION = """\
N independent MD runs of one system (replica k: seed + k, in OUT/rep{k}), then one analysis
of all of them (OUT/analysis: diffusivities with errors from the spread between replicas,
conductivity, RDFs; its report.json is what `cgaa bench pool cgaa=OUT/analysis/report.json`
pools further).

  cgaa replicas box.pdb --model model.pt --replicas 8 --time-ps 200 --out reps/            # one after another
  cgaa replicas box.pdb --model model.pt --replicas 8 --time-ps 200 --out reps/ --dask     # a LocalCluster
  cgaa replicas box.pdb --replicas 32 --time-ps 500 --out reps/ --dask slurm.yaml          # Slurm jobs
  cgaa replicas box.pdb --replicas 8 --time-ps 200 --out reps/ --scheduler tcp://head:8786

Each run is what `cgaa simulate` does with the same flags (docs/simulate.md); --set passes
any other run_simulation keyword. Resumable: the same command skips finished replicas and
continues interrupted ones from their last checkpoint, and a replica whose Dask worker died
continues from its checkpoint on another worker. A replica that stops as unphysical is
reported and left out of the analysis. Docs: docs/scaling.md.
"""

#: flag dest → run_simulation keyword
SIMULATE_FLAGS = {
    "ensemble": "ensemble", "temperature": "temperature", "pressure": "pressure", "timestep": "timestep_fs",
    "fast_substeps": "fast_substeps", "steps": "steps", "time_ps": "time_ps", "report_interval": "report_interval",
    "checkpoint_interval": "checkpoint_interval", "platform": "platform", "precision": "precision",
    "friction": "friction_per_ps", "minimize": "minimize", "minimize_iterations": "minimize_iterations",
    "thermalize_ps": "thermalize_ps", "n_atoms": "n_atoms", "constraints": "constraints",
}


def register(subparsers) -> None:
    """Add the ``replicas`` sub-command."""
    p = subparsers.add_parser("replicas", help="a replica set of simulate runs (on Dask or here) + one analysis",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="box file (.pdb or .cif) from `cgaa build`, or a recipe name")
    p.add_argument("--replicas", "-n", type=int, default=2, help="number of runs (default 2)")
    p.add_argument("--out", "-o", default="replicas", help="set directory: OUT/rep0, OUT/rep1, ..., OUT/analysis")
    p.add_argument("--model", "-m", help="deployed model .pt (default: the shipped model)")
    p.add_argument("--seed", type=int, default=0, help="seed of replica 0; replica k gets seed + k (default 0)")
    p.add_argument("--ensemble", choices=("nvt", "npt", "nve"), help="as cgaa simulate (default nvt)")
    p.add_argument("--temperature", "-T", type=float, metavar="K", help="K (default 298.15)")
    p.add_argument("--pressure", "-P", type=float, metavar="BAR", help="bar, npt only (default 1)")
    p.add_argument("--timestep", type=float, metavar="FS", help="fs (default 1.0)")
    p.add_argument("--fast-substeps", type=int, metavar="N", help="r-RESPA substeps (as cgaa simulate)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="steps per replica (default 10000)")
    g.add_argument("--time-ps", type=float, metavar="PS", help="simulated time per replica, ps")
    p.add_argument("--report-interval", type=int, metavar="STEPS", help="steps between frames/state rows")
    p.add_argument("--checkpoint-interval", type=int, metavar="STEPS", help="steps between checkpoints (default 10000)")
    p.add_argument("--platform", choices=("Reference", "CPU", "CUDA", "OpenCL"), help="OpenMM platform (default CPU)")
    p.add_argument("--precision", choices=("single", "mixed", "double"), help="platform precision (default mixed)")
    p.add_argument("--friction", type=float, metavar="PER_PS", help="Langevin friction, 1/ps (default 1)")
    p.add_argument("--constraints", choices=("hbonds", "none"), help="as cgaa simulate (default hbonds)")
    p.add_argument("--no-minimize", dest="minimize", action="store_false", default=None,
                   help="skip the energy minimisation")
    p.add_argument("--minimize-iterations", type=int, metavar="N", help="max minimiser iterations (default 1000)")
    p.add_argument("--thermalize-ps", type=float, metavar="PS", help="thermalisation before step 0, ps (default 1)")
    p.add_argument("--n-atoms", type=int, help="atoms when INPUT is a recipe (default 3000)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any other run_simulation keyword (YAML value), e.g. --set bond_guard=false (repeatable)")
    p.add_argument("--threads", type=int, help="torch/OpenMM CPU threads per run (default: the Dask config's "
                                               "threads, 1 on a LocalCluster; here: torch's)")
    p.add_argument("--dask", metavar="CONFIG.yaml", nargs="?", const="",
                   help="run the replicas as tasks on Dask: a LocalCluster (--dask alone), a scheduler address or "
                        "Slurm/PBS jobs as the YAML file says (docs/scaling.md); default: one after another here")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run on the running Dask scheduler at ADDRESS")
    p.add_argument("--no-analyze", action="store_true", help="only the runs, no analysis")
    p.add_argument("--analyze-set", action="append", metavar="KEY=VALUE",
                   help="a cgaa.analysis.analyze keyword (YAML value), e.g. --analyze-set start_ps=20 (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="remove the set's runs first and start again")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _settings(items, flag: str):
    import yaml

    from cgaa.cli import CLIError

    out = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise CLIError(f"{flag} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def run(args: argparse.Namespace) -> int:
    """Run the set; exit code 0 when every replica finished, 1 when some stopped as unphysical."""
    import contextlib

    from cgaa.cli import CLIError

    if args.replicas < 1:
        raise CLIError(f"--replicas must be >= 1, got {args.replicas}")
    if args.threads is not None and args.threads < 1:
        raise CLIError(f"--threads must be >= 1, got {args.threads}")
    simulate = {kw: getattr(args, dest) for dest, kw in SIMULATE_FLAGS.items() if getattr(args, dest) is not None}
    extra = _settings(args.set, "--set")
    both = sorted(set(extra) & set(simulate))
    if both:
        raise CLIError(f"--set {', '.join(both)}: given by its own flag already")
    simulate.update(extra)
    analyze = False if args.no_analyze else (_settings(args.analyze_set, "--analyze-set") or True)

    from cgaa.distributed.cluster import describe, load_config, open_client
    from cgaa.distributed.replicas import run_replicas

    on_dask = args.dask is not None or args.scheduler is not None
    cfg = load_config(args.dask or None, address=args.scheduler) if on_dask else None
    threads = args.threads if args.threads is not None else (cfg.task_threads if cfg else None)
    with (open_client(cfg) if on_dask else contextlib.nullcontext()) as client:
        if client is not None and not args.no_progress:
            print(f"cgaa replicas: on Dask ({describe(client)})", flush=True)
        rec = run_replicas(args.input, args.model, args.out, replicas=args.replicas, seed=args.seed, client=client,
                           simulate=simulate, analyze=analyze, overwrite=args.overwrite,
                           retries=cfg.retries if cfg else 0, threads=threads, progress=not args.no_progress)
    failed = [r for r in rec["replicas"] if r["status"] != "finished"]
    for r in failed:
        print(f"cgaa replicas: replica {r['k']} (seed {r['seed']}, {r['run_dir']}) failed: {r['error']}")
    done = len(rec["replicas"]) - len(failed)
    where = f"; analysis in {rec['analysis']}" if rec.get("analysis") else ""
    print(f"cgaa replicas: {done} of {len(rec['replicas'])} replicas finished in {args.out}{where}")
    return 1 if failed else 0
