"""``cgaa simulate``: CGAA molecular dynamics in OpenMM (thin shell over :mod:`cgaa.md.run`)."""
from __future__ import annotations

import argparse
import math
import re
import sys

DESCRIPTION = """\
All-atom MD with a CGAA model in OpenMM.

  cgaa simulate box.pdb --model model.pt --steps 200000 --out run/
  cgaa simulate lipf6-ec-emc-1m --n-atoms 3000 --ensemble npt --time-ps 100 --out run/
  cgaa simulate --restart --out run/ --steps 400000      # continue (and extend) a run
  cgaa simulate --continue-from equil/ --ensemble nvt --time-ps 50 --out prod/   # new run from equil's end
  cgaa simulate box.pdb --timestep 2 --fast-substeps 2 --time-ps 100   # network every 2 fs, bonds at 1 fs

INPUT is a box file from `cgaa build` (PDB with CONECT records and CRYST1 box, or
PDBx/mmCIF .cif above 99,999 atoms; one residue per molecule) or a recipe name (built on
the fly). Its coordinates must be finite and within 10 box lengths of the origin (else an
error names the atom); molecules wrapped into the box atom by atom are made whole.

A new run minimises the energy (capped steepest descent with the default H-bond
constraints), draws velocities at --temperature and thermalises them for --thermalize-ps
(1 ps at 10/ps friction, not in the outputs), so step 0 starts at the temperature. It
writes to --out: traj.dcd (unwrapped, for MSD), state.csv (time, energies, temperature,
volume, density, ns/day), checkpoint.chk (+ the previous one; size and SHA-256 recorded in
checkpoint.json), final_state.xml, topology.pdb (topology.cif above 99,999 atoms),
model.pt and run.json. A run stops with a clear message on NaN energy, absurd forces or
temperature, keeping the last good checkpoint; Ctrl-C saves a checkpoint and exits with
code 130 (during minimisation or thermalisation: nothing to keep, the directory is reused
by the next run). --restart continues from the last checkpoint that verifies (else the
previous one, with a warning) and appends to traj.dcd and state.csv. --continue-from
starts a new run from a finished run's final positions, velocities and box. Units: K,
bar, fs, ps. Full documentation: docs/simulate.md.
"""

#: run_simulation's argument names as the command line spells them (errors name the flags).
FLAG_NAMES = {
    "timestep_fs": "--timestep", "report_interval": "--report-interval",
    "checkpoint_interval": "--checkpoint-interval", "friction_per_ps": "--friction",
    "barostat_interval": "--barostat-interval", "max_force": "--max-force", "max_temperature": "--max-temperature",
    "n_atoms": "--n-atoms", "fast_substeps": "--fast-substeps", "time_ps": "--time-ps",
    "minimize_iterations": "--minimize-iterations", "thermalize_ps": "--thermalize-ps",
    "thermalize_friction_per_ps": "--thermalize-friction", "bond_guard": "--bond-guard",
    "contact_guard": "--no-contact-guard", "continue_from": "--continue-from", "out_dir": "--out",
    "restart=True": "--restart", "overwrite=True": "--overwrite", "new_velocities": "--new-velocities",
    "system_input": "INPUT",
}
#: Plain names mapped only where a message puts them as a setting (``temperature must be``, ``pressure=``).
PLAIN_SETTINGS = ("ensemble", "temperature", "pressure", "steps", "platform", "precision", "seed", "constraints",
                  "model")


def cli_message(message: str) -> str:
    """``message`` with the API's argument names replaced by the command line's flags
    (``timestep_fs`` → ``--timestep``, ``ensemble='npt'`` → ``--ensemble npt``, ...)."""
    msg = message
    for api, flag in FLAG_NAMES.items():
        if "=" in api:
            msg = msg.replace(f"{api} ({flag})", flag).replace(api, flag)
    msg = re.sub(r"\b(\w+)=(['\"]?)([\w.+-]+)\2", _flag_value, msg)
    for api in sorted(FLAG_NAMES, key=len, reverse=True):
        if "=" not in api:
            msg = re.sub(rf"(?<![\w-]){re.escape(api)}\b", FLAG_NAMES[api], msg)
    for name in PLAIN_SETTINGS:
        msg = re.sub(rf"^(restart: )?{name}( must| was| \S+: this is)", rf"\1--{name}\2", msg)
    return msg


def _flag_value(m: "re.Match") -> str:
    name, value = m.group(1), m.group(3)
    if f"{name}={value}" in FLAG_NAMES:
        return FLAG_NAMES[f"{name}={value}"]
    flag = FLAG_NAMES.get(name) or (f"--{name}" if name in PLAIN_SETTINGS else None)
    if flag is None:
        return m.group(0)
    return f"{flag} {value}"


def register(subparsers) -> None:
    """Add the ``simulate`` sub-command."""
    p = subparsers.add_parser("simulate", help="run CGAA molecular dynamics in OpenMM (NVT/NPT/NVE)",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", help="box file (.pdb or .cif) from `cgaa build`, or a recipe name")
    p.add_argument("--out", "-o", default="run", help="run directory (default: run); a directory holding a run is "
                                                      "refused unless --restart or --overwrite")
    p.add_argument("--model", "-m", help="deployed model .pt (default: the shipped model; on --restart the run's "
                                         "copy; with --continue-from that run's copy). A training checkpoint "
                                         "(best.pt) must be deployed first: cgaa deploy best.pt -o model.pt")
    p.add_argument("--ensemble", choices=("nvt", "npt", "nve"), help="nvt (Langevin, default), npt (+ Monte Carlo barostat), nve (Verlet)")
    p.add_argument("--temperature", "-T", type=float, metavar="K", help="temperature in K (default 298.15)")
    p.add_argument("--pressure", "-P", type=float, metavar="BAR",
                   help="pressure in bar, npt only (default 1; an error with --ensemble nvt/nve)")
    p.add_argument("--timestep", type=float, metavar="FS", help="time step in fs (default 1.0); with --fast-substeps "
                                                                "the step of the CGAA network")
    p.add_argument("--fast-substeps", type=int, metavar="N",
                   help="multiple time stepping (r-RESPA): integrate the classical forces inside molecules (the prior's "
                        "bonds, angles, torsions) N times per --timestep, the CGAA network and the forces between "
                        "molecules once (default 1: no splitting). --timestep 2 --fast-substeps 2 moves bonds at 1 fs "
                        "and calls the network every 2 fs, which keeps the shipped model's ion diffusion; at 4 fs "
                        "density and structure hold, ion diffusion does not (docs/simulate.md)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="total steps of the run (default 10000)")
    g.add_argument("--time-ps", type=float, metavar="PS",
                   help="total simulated time in ps (rounded to whole --timestep steps; less than half a step is an error)")
    p.add_argument("--report-interval", type=int, metavar="STEPS",
                   help="steps between frames/state rows (default min(1000, max(1, steps // 10)); longer than the "
                        "run is an error)")
    p.add_argument("--checkpoint-interval", type=int, metavar="STEPS",
                   help="steps between checkpoints (default 10000; step 0 and the last step always get one)")
    p.add_argument("--platform", choices=("Reference", "CPU", "CUDA", "OpenCL"), help="OpenMM platform (default CPU)")
    p.add_argument("--precision", choices=("single", "mixed", "double"), help="platform precision (default mixed)")
    p.add_argument("--seed", type=int, help="random seed for velocities, thermostat, barostat, packing (default 0)")
    p.add_argument("--friction", type=float, metavar="PER_PS", help="Langevin friction in 1/ps (default 1)")
    p.add_argument("--bond-guard", dest="bond_guard", action="store_true", default=None,
                   help="flat-bottom restraint, zero within ±0.1 Å of each bond's teacher length (default: "
                        "on for models without a bonded prior, off for models with one)")
    p.add_argument("--no-bond-guard", dest="bond_guard", action="store_false",
                   help="no bond guard: the ML potential alone holds molecules together")
    p.add_argument("--no-contact-guard", dest="contact_guard", action="store_false", default=None,
                   help="no repulsive wall between atoms of different grains (default: a wall at 0.9 x the closest "
                        "approach of each element pair in the model's training data, where the model records it)")
    p.add_argument("--constraints", choices=("hbonds", "none"),
                   help="hbonds (default): bonds to H held at the teacher force field's lengths; none: fully flexible")
    p.add_argument("--barostat-interval", type=int, metavar="STEPS", help="steps between barostat moves (default 25)")
    m = p.add_mutually_exclusive_group()
    m.add_argument("--minimize", dest="minimize", action="store_true", default=None,
                   help="minimise the energy first (the default of a new run; with --continue-from: minimise the "
                        "continued state too)")
    m.add_argument("--no-minimize", dest="minimize", action="store_false", help="skip the energy minimisation")
    p.add_argument("--minimize-iterations", type=int, metavar="N", help="max minimiser iterations (default 1000)")
    p.add_argument("--thermalize-ps", type=float, metavar="PS",
                   help="after drawing velocities, Langevin dynamics at --thermalize-friction for this long before "
                        "step 0 (default 1.0; 0: none); not in traj.dcd or state.csv, recorded in run.json")
    p.add_argument("--thermalize-friction", type=float, metavar="PER_PS",
                   help="friction of the thermalisation in 1/ps (default 10)")
    p.add_argument("--max-force", type=float, metavar="KJ_MOL_NM", help="stop above this force (default 1e5 kJ/mol/nm)")
    p.add_argument("--max-temperature", type=float, metavar="K", help="stop above this temperature (default max(3T, T+1000))")
    p.add_argument("--n-atoms", type=int, help="atoms when INPUT is a recipe (default 3000)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    p.add_argument("--restart", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--continue-from", metavar="RUN_DIR",
                   help="start a new run in --out from the finished run RUN_DIR: its final_state.xml (positions, "
                        "velocities, box), topology, model copy and dynamics settings (each may be given anew); "
                        "no minimisation and no new velocities unless --minimize / --new-velocities")
    p.add_argument("--new-velocities", action="store_true",
                   help="with --continue-from: draw new velocities at --temperature (and thermalise them)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing run in --out (its analysis/ folder too)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or progress lines")
    p.set_defaults(func=run)


def _summary(res) -> str:
    """The printed summary of a finished run: what it simulated (mean temperature of this
    invocation's reports), the speed of its MD steps, minimisation and thermalisation apart."""
    last = res.last
    parts = [f"{res.steps} steps ({res.time_ps:g} ps) in {res.out_dir}"]
    if res.n_reports:
        parts.append(f"mean T {res.mean_temperature_K:.1f} K over {res.n_reports} report"
                     f"{'s' if res.n_reports != 1 else ''} (last {last['temperature_K']:.1f} K)")
        if last and math.isfinite(last.get("density_g_cm3", float("nan"))):
            parts.append(f"density {last['density_g_cm3']:.4f} g/cm3 (last)")
    if res.md_wall_s > 0:
        parts.append(f"MD {res.ns_per_day:.3g} ns/day ({res.md_wall_s:.1f} s)")
    if res.minimization_s is not None:
        parts.append(f"minimisation {res.minimization_s:.1f} s")
    if res.thermalization_s is not None:
        parts.append(f"thermalisation {res.thermalization_s:.1f} s")
    return "cgaa simulate: " + ", ".join(parts)


def run(args: argparse.Namespace) -> int:
    """Run the simulation; returns the exit code (0 done, 1 unphysical stop or a failed
    write, 2 bad input, 130 Ctrl-C)."""
    from cgaa.cli import CLIError

    if args.restart and args.input:
        raise CLIError("--restart continues the run in --out; do not give INPUT")
    if args.restart and args.continue_from:
        raise CLIError("--restart continues the run in --out, --continue-from starts a new one: give one of them")
    if args.continue_from and args.input:
        raise CLIError("--continue-from starts from that run's final state; do not give INPUT as well")
    if not args.restart and not args.input and not args.continue_from:
        raise CLIError("give INPUT (a box file from `cgaa build` or a recipe name), --continue-from RUN_DIR, "
                       "or --restart")
    if args.new_velocities and not args.continue_from:
        raise CLIError("--new-velocities is for --continue-from (a new run draws new velocities anyway)")
    if args.threads is not None:
        if args.threads < 1:
            raise CLIError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)

    from cgaa.md.rundir import RunWriteError
    from cgaa.md.run import SimulationError, run_simulation

    try:
        res = run_simulation(
            args.input, args.model, args.out, ensemble=args.ensemble, temperature=args.temperature,
            pressure=args.pressure, timestep_fs=args.timestep, steps=args.steps, time_ps=args.time_ps,
            report_interval=args.report_interval, checkpoint_interval=args.checkpoint_interval,
            platform=args.platform, precision=args.precision, seed=args.seed, restart=args.restart,
            continue_from=args.continue_from, new_velocities=args.new_velocities,
            minimize=args.minimize, minimize_iterations=args.minimize_iterations,
            thermalize_ps=args.thermalize_ps, thermalize_friction_per_ps=args.thermalize_friction,
            friction_per_ps=args.friction, barostat_interval=args.barostat_interval,
            constraints=args.constraints, bond_guard=args.bond_guard, contact_guard=args.contact_guard,
            fast_substeps=args.fast_substeps, max_force=args.max_force, max_temperature=args.max_temperature,
            n_atoms=args.n_atoms,
            overwrite=args.overwrite, progress=not args.no_progress)
    except SimulationError as err:
        print(f"cgaa simulate: {err}", file=sys.stderr)
        return 1
    except RunWriteError as err:
        print(f"cgaa simulate: error: {err}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as err:
        try:
            renamed = type(err)(cli_message(str(err)))
        except TypeError:  # an error class that takes more than a message
            renamed = ValueError(cli_message(str(err)))
        raise renamed from None
    if res.before_first_step:
        print(f"cgaa simulate: interrupted before the first step (during minimisation or thermalisation): "
              f"nothing to continue; the same command starts {res.out_dir} again (no --overwrite needed)",
              file=sys.stderr)
        return 130
    if res.interrupted:
        print(f"cgaa simulate: interrupted at step {res.steps}; checkpoint saved in {res.files['checkpoint']} "
              f"(continue with: cgaa simulate --restart --out {res.out_dir})", file=sys.stderr)
        return 130
    print(_summary(res))
    return 0
