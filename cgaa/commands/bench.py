"""``cgaa bench``: speed/memory, accuracy and observables benchmarks (thin shell over cgaa.bench)."""
from __future__ import annotations

import argparse
from typing import Optional, Tuple
from pathlib import Path

DESCRIPTION = """\
Benchmarks of CGAA against the all-atom baseline (the same network, every atom its own
grain), the classical teacher and, if the optional 'sevenn' package is installed,
SevenNet-0 -- measured side by side on this machine. Modes:

  speed        time per energy+force evaluation, time per OpenMM MD step (ns/day at 1 fs)
               and peak memory (RSS, and the live tensors of one ML evaluation; CUDA max
               allocated on GPU), each configuration in a fresh process; ratios and the
               fitted cost-scaling exponent
                 cgaa bench speed --sizes 1000,3000,10000 --out bench/speed
  accuracy     CGAA and the all-atom baseline trained on the same teacher frames with the
               same budget; test-set errors side by side
                 cgaa bench accuracy --train train.xyz --test test.xyz --epochs 3 --out bench/acc
  observables  teacher MD vs CGAA MD, same box and protocol, >= 2 replicas each: Li, PF6,
               EC, EMC diffusivities, Li-O(carbonyl) RDF peak and coordination number,
               NPT density, relative differences with uncertainties
                 cgaa bench observables --atoms 1000 --replicas 2 --time-ps 200 --out bench/obs
  pool         the replicas of several observables runs (batches of --seed) in one comparison:
               protocols checked, a run counted twice refused, means and errors recomputed
                 cgaa bench pool bench/obs-s0/observables.json bench/obs-s2/observables.json \\
                     --out bench/obs-pooled

Each mode writes <mode>.json (machine, date, versions, exact command, every number with
its unit in the key), <mode>.md (tables) and PNG plots to --out. `cgaa bench MODE --help`
documents each mode's options.
"""


def _ints(text: str):
    from cgaa.cli import CLIError

    try:
        out = [int(float(x)) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise CLIError(f"expected comma-separated integers, got {text!r}") from None
    if not out or any(x < 1 for x in out):
        raise CLIError(f"expected positive integers, got {text!r}")
    return out


def _names(text: str, known, what: str):
    from cgaa.cli import CLIError

    out = [x.strip() for x in str(text).split(",") if x.strip()]
    bad = [x for x in out if x not in known]
    if bad or not out:
        raise CLIError(f"unknown {what} {', '.join(bad) or repr(text)} (known: {', '.join(known)})")
    return out


def _settings(items):
    """``KEY=VALUE`` strings → dict (values parsed as YAML scalars: 0 → int, 4.5 → float)."""
    import yaml

    from cgaa.cli import CLIError

    out = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise CLIError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def register(subparsers) -> None:
    """Add the ``bench`` sub-command and its modes."""
    p = subparsers.add_parser("bench", help="speed/memory, accuracy and observables benchmarks",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = p.add_subparsers(dest="bench_mode", metavar="MODE")

    s = modes.add_parser("speed", help="time and memory per evaluation / MD step, ratios, scaling",
                         description="Time per energy+force evaluation and per OpenMM MD step, and peak "
                                     "memory, of CGAA, the all-atom baseline, the teacher and SevenNet-0 "
                                     "(if installed) on boxes of the given sizes. Each measurement runs in "
                                     "a fresh process.",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    s.add_argument("--sizes", default="1000,3000,10000", help="box sizes in atoms, comma-separated")
    s.add_argument("--recipe", default="lipf6-ec-emc-1m", help="electrolyte recipe of the boxes")
    s.add_argument("--engines", default="cgaa,allatom,teacher,sevenn",
                   help="engines: cgaa, allatom (same network, every atom a grain), teacher, sevenn")
    s.add_argument("--tasks", default="eval,md", help="eval (energy+forces) and/or md (OpenMM steps)")
    s.add_argument("--model", help="deployed CGAA model (default: the shipped one, else an untrained "
                                   "model of the shipped architecture; 'untrained' forces the latter)")
    s.add_argument("--cutoff", type=float, help="CGAA inter-grain cutoff in Å (untrained model only)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="hyper",
                   help="hyper-parameter of the untrained model (with --model untrained; ModelConfig names, "
                        "repeatable), e.g. --set intra_lmax=0 --set pair_cutoff=4: what-if timings")
    s.add_argument("--allatom-cutoff", type=float, default=5.0, help="all-atom baseline cutoff in Å")
    s.add_argument("--allatom-max-atoms", type=int, default=0,
                   help="skip the all-atom baseline for --sizes values above this (the requested "
                        "size is compared, not the packed box's atom count, which can be a few "
                        "atoms more; 0: no limit)")
    s.add_argument("--teacher-cutoff", type=float, default=1.0, help="teacher real-space cutoff in nm")
    s.add_argument("--threads", type=int, help="CPU threads (default: the cores available)")
    s.add_argument("--warmup", type=int, default=5, help="untimed warm-up calls / MD steps")
    s.add_argument("--repeats", type=int, default=10, help="at most this many timed evaluations")
    s.add_argument("--md-steps", type=int, default=50, help="at most this many timed MD steps")
    s.add_argument("--fast-substeps", type=int, default=1, metavar="N",
                   help="CGAA MD as r-RESPA (as cgaa simulate --timestep N --fast-substeps N): the network every "
                        "N fs, the prior's intra-grain terms every 1 fs; MD times are compared per fs")
    s.add_argument("--budget", type=float, default=60.0, help="seconds of timed calls per measurement "
                                                              "(at least 3 calls are timed)")
    s.add_argument("--timeout", type=float, default=600.0, help="seconds before a measurement is stopped")
    s.add_argument("--mem-limit", type=float, default=0.0, help="GiB of RSS at which a measurement is "
                                                                "stopped (0: none)")
    s.add_argument("--device", default="cpu", help="cpu or cuda")
    s.add_argument("--seed", type=int, default=0, help="packing and initialisation seed")
    s.add_argument("--out", default="bench/speed", help="output directory")
    s.set_defaults(func=run_speed_cmd)

    a = modes.add_parser("accuracy", help="CGAA vs all-atom baseline trained on the same data and budget",
                         description="Train CGAA and the all-atom baseline (same width/depth/lmax, atom "
                                     "cutoff --allatom-cutoff) on the same teacher frames with the same "
                                     "epochs and frames, then compare their test errors.",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a.add_argument("--train", nargs="+", help="labelled extxyz training file(s) (default: generate with the teacher)")
    a.add_argument("--test", nargs="+", help="labelled extxyz test file(s) (default: generate with the teacher)")
    a.add_argument("--max-train-frames", type=int, default=0, help="use at most this many training frames (0: all)")
    a.add_argument("--max-test-frames", type=int, default=0, help="use at most this many test frames (0: all)")
    a.add_argument("--epochs", type=int, default=3, help="training epochs of both models")
    a.add_argument("--batch-size", type=int, default=2, help="frames per optimiser step")
    a.add_argument("--lr", type=float, default=5e-3, help="learning rate")
    a.add_argument("--config", help="training YAML whose model section and training settings are the "
                                    "starting point (default: the shipped model's)")
    a.add_argument("--cutoff", type=float, help="CGAA inter-grain cutoff in Å (default: the config's)")
    a.add_argument("--allatom-cutoff", type=float, default=5.0, help="all-atom baseline cutoff in Å")
    a.add_argument("--generate-atoms", type=int, default=1000, help="box size when generating data")
    a.add_argument("--generate-frames", type=int, default=20, help="training frames when generating data")
    a.add_argument("--threads", type=int, help="CPU threads (default: the cores available)")
    a.add_argument("--seed", type=int, default=0, help="seed")
    a.add_argument("--out", default="bench/accuracy", help="output directory")
    a.set_defaults(func=run_accuracy_cmd)

    o = modes.add_parser("observables", help="teacher MD vs CGAA MD: diffusivities, RDF, density",
                         description="Run the teacher and the CGAA model with the same protocol (NPT by "
                                     "default) on the same box, several independent replicas each, and "
                                     "compare Li/PF6/EC/EMC diffusivities, the Li-O(carbonyl) RDF first "
                                     "peak and coordination number and the density. Batches of replicas "
                                     "(other --seed, other --out) are compared together with `cgaa bench pool`.",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    o.add_argument("--model", help="deployed CGAA model (default: the shipped one)")
    o.add_argument("--box", help="PDB box (default: build one from --recipe with --atoms)")
    o.add_argument("--recipe", default="lipf6-ec-emc-1m", help="recipe when building the box")
    o.add_argument("--atoms", type=int, default=1000, help="atoms when building the box")
    o.add_argument("--replicas", type=int, default=2, help="independent replicas per engine")
    o.add_argument("--time-ps", type=float, default=200.0, help="production time per replica, ps")
    o.add_argument("--equil-ps", type=float, default=20.0, help="equilibration per replica (not analysed), ps")
    o.add_argument("--timestep", type=float, default=1.0, help="timestep, fs")
    o.add_argument("--report-ps", type=float, default=1.0, help="time between frames, ps")
    o.add_argument("--ensemble", choices=("npt", "nvt"), default="npt", help="ensemble of the runs")
    o.add_argument("--temperature", type=float, default=298.15, help="K")
    o.add_argument("--engines", default="teacher,cgaa", help="engines to run: teacher, cgaa")
    o.add_argument("--teacher-cutoff", type=float, default=1.0, help="teacher real-space cutoff in nm")
    o.add_argument("--threads", type=int, help="CPU threads (default: the cores available)")
    o.add_argument("--seed", type=int, default=0, help="base seed (replica k uses seed + k)")
    o.add_argument("--out", default="bench/observables", help="output directory")
    o.add_argument("--resume", action="store_true", help="reuse finished replica runs in --out; continue interrupted ones from their "
                   "last checkpoint (every ~2 ps); a longer --time-ps extends finished runs; a run made with other "
                   "dynamics settings, or a CGAA run with another model file (by content), starts again")
    o.add_argument("--fit-window", metavar="START,END",
                   help="common MSD fit window in ps of lag for every species and both engines "
                        "(default: chosen per species by cgaa.analysis)")
    o.add_argument("--jobs", type=int, default=1,
                   help="replica runs at a time, each in its own process with --threads threads")
    o.add_argument("--start", "--cgaa-start", dest="start", choices=("box", "warmup", "teacher"), default="box",
                   help="where replica k of each engine starts. box: the packed box. warmup: the final state "
                        "(positions and box) of a teacher warm-up run k from the box (--warmup-ps), for both "
                        "engines, so both analyse the same equilibrated states and the CGAA density measures "
                        "the model's equilibrium rather than its recovery from the packed box. teacher (older): "
                        "CGAA from teacher replica k's final state, the teacher from the box (its analysed time "
                        "is then still equilibrating). --cgaa-start is an older name of --start")
    o.add_argument("--warmup-ps", type=float,
                   help="length of the teacher warm-up runs of --start warmup, ps (default: --equil-ps + --time-ps)")
    o.add_argument("--fast-substeps", type=int, default=1, metavar="N",
                   help="CGAA runs as r-RESPA: the network every N x --timestep, the prior's intra-grain terms every "
                        "--timestep (as cgaa simulate --fast-substeps); the teacher keeps --timestep")
    o.add_argument("--dask", metavar="CONFIG.yaml", nargs="?", const="",
                   help="run the replica runs as tasks on Dask instead of --jobs processes: a LocalCluster (--dask "
                        "alone), a scheduler address or Slurm/PBS jobs as the YAML file says (docs/scaling.md)")
    o.add_argument("--scheduler", metavar="ADDRESS", help="run the replica runs on the Dask scheduler at ADDRESS")
    o.set_defaults(func=run_observables_cmd)

    q = modes.add_parser("pool", help="pool the replicas of several observables runs into one comparison",
                         description="One teacher-vs-CGAA comparison from the replicas of several `cgaa bench "
                                     "observables` runs (e.g. batches with different --seed): replica means, "
                                     "standard errors, relative differences and target checks recomputed over "
                                     "every pooled replica. The runs must share one protocol (ensemble, times, "
                                     "fit window, CGAA step, model, box) unless --allow-mixed names the setting; "
                                     "a replica found in two sources (a run directory copied between batches) "
                                     "is refused. Writes pool.json, pool.md and pool.png.",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    q.add_argument("sources", nargs="+", metavar="[ENGINE=]FILE",
                   help="observables.json of `cgaa bench observables` (every engine of it), or ENGINE=FILE "
                        "(teacher or cgaa) for one engine's replicas, also from a `cgaa analyze` report.json "
                        "over several replicas (its per-replica diffusivities)")
    q.add_argument("--allow-mixed", default="", metavar="KEY,...",
                   help="protocol settings allowed to differ between sources (listed in the report): "
                        "ensemble, temperature_K, pressure_bar, timestep_fs, equilibration_ps, production_ps, "
                        "frame_interval_ps, fit_window_ps, teacher_cutoff_nm, cgaa_fast_substeps, model, "
                        "model_sha256, box")
    q.add_argument("--out", default="bench/pool", help="output directory")
    q.set_defaults(func=run_pool_cmd)
    p.set_defaults(func=_no_mode, bench_parser=p)


def _no_mode(args: argparse.Namespace) -> int:
    args.bench_parser.print_help()
    return 1


def run_speed_cmd(args: argparse.Namespace) -> int:
    """``cgaa bench speed``."""
    from cgaa.bench.report import command_line
    from cgaa.bench.speed import ENGINES, TASKS, run_speed, write_speed_outputs

    rep = run_speed(_ints(args.sizes), args.out, recipe=args.recipe,
                    engines=_names(args.engines, ENGINES, "engine"), tasks=_names(args.tasks, TASKS, "task"),
                    model=args.model, hyper=_settings(args.hyper), cutoff=args.cutoff,
                    allatom_cutoff=args.allatom_cutoff,
                    allatom_max_atoms=args.allatom_max_atoms,
                    teacher_cutoff_nm=args.teacher_cutoff, threads=args.threads, warmup=args.warmup,
                    repeats=args.repeats, md_steps=args.md_steps, budget_s=args.budget, timeout_s=args.timeout,
                    mem_limit_gib=args.mem_limit, seed=args.seed, device=args.device,
                    fast_substeps=args.fast_substeps, command=command_line())
    files = write_speed_outputs(rep, args.out)
    print(f"cgaa bench speed: wrote {', '.join(str(p) for p in files.values())}")
    return 0


def run_accuracy_cmd(args: argparse.Namespace) -> int:
    """``cgaa bench accuracy``."""
    from cgaa.bench.accuracy import run_accuracy
    from cgaa.bench.report import command_line

    rep, files = run_accuracy(args.out, train=args.train, test=args.test, max_train_frames=args.max_train_frames,
                              max_test_frames=args.max_test_frames, epochs=args.epochs,
                              batch_size=args.batch_size, lr=args.lr, config=args.config, cutoff=args.cutoff,
                              allatom_cutoff=args.allatom_cutoff, generate_atoms=args.generate_atoms,
                              generate_frames=args.generate_frames, threads=args.threads, seed=args.seed,
                              command=command_line())
    print(f"cgaa bench accuracy: wrote {', '.join(str(p) for p in files.values())}")
    return 0


def _window(text: Optional[str]) -> Optional[Tuple[float, float]]:
    """'5,20' → (5.0, 20.0); ValueError naming --fit-window otherwise."""
    if not text:
        return None
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"--fit-window must be START,END in ps (e.g. 5,20), not {text!r}") from None
    if not 0 <= a < b:
        raise ValueError(f"--fit-window: need 0 <= START < END, got {text!r}")
    return a, b


def run_observables_cmd(args: argparse.Namespace, runner: Optional[dict] = None) -> int:
    """``cgaa bench observables``."""
    if runner is None and (getattr(args, "dask", None) is not None or getattr(args, "scheduler", None)):
        return _observables_on_dask(args)
    runner = runner or {}
    from cgaa.bench.observables import ENGINES, run_observables
    from cgaa.bench.report import command_line

    rep, files = run_observables(Path(args.out), model=args.model, box=args.box, recipe=args.recipe,
                                 n_atoms=args.atoms, replicas=args.replicas, time_ps=args.time_ps,
                                 equil_ps=args.equil_ps, timestep_fs=args.timestep, report_ps=args.report_ps,
                                 ensemble=args.ensemble, temperature_K=args.temperature,
                                 engines=_names(args.engines, ENGINES, "engine"),
                                 teacher_cutoff_nm=args.teacher_cutoff, threads=args.threads, seed=args.seed,
                                 resume=args.resume, fit_window_ps=_window(args.fit_window), jobs=args.jobs,
                                 start=args.start, warmup_ps=args.warmup_ps,
                                 fast_substeps=args.fast_substeps, command=command_line(), **runner)
    print(f"cgaa bench observables: wrote {', '.join(str(p) for p in files.values())}")
    return 0


def _observables_on_dask(args: argparse.Namespace) -> int:
    """``cgaa bench observables --dask/--scheduler``: the replica runs as Dask tasks."""
    from cgaa.distributed.cluster import load_config, open_client
    from cgaa.distributed.replicas import observables_runner

    cfg = load_config(args.dask or None, address=args.scheduler)
    if args.threads is None and cfg.task_threads is not None:
        args.threads = cfg.task_threads
    with open_client(cfg) as client:
        return run_observables_cmd(args, runner={"runner": observables_runner(client, retries=cfg.retries)})


def run_pool_cmd(args: argparse.Namespace) -> int:
    """``cgaa bench pool``."""
    from cgaa.bench.pool import PROTOCOL_KEYS, pool_observables, write_pool_outputs
    from cgaa.bench.report import command_line

    mixed = _names(args.allow_mixed, PROTOCOL_KEYS, "--allow-mixed setting") if args.allow_mixed else []
    rep = pool_observables(args.sources, allow_mixed=mixed, command=command_line())
    files = write_pool_outputs(rep, args.out)
    n = rep["protocol"]["replicas"]
    li = rep.get("comparison", {}).get("D", {}).get("Li")
    if li:
        print(f"cgaa bench pool: D[Li] CGAA vs teacher {100 * li['relative']:+.0f} ± {100 * li['relative_se']:.0f} % "
              f"({n['teacher']} teacher, {n['cgaa']} CGAA replicas)")
    print(f"cgaa bench pool: wrote {', '.join(str(p) for p in files.values())}")
    return 0
