"""Write a model card (Markdown) for a deployed model from its metadata and test metrics.

``python -m cgaa.train.modelcard MODEL.pt METRICS.json HISTORY.csv CARD.md --command CMD``
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from cgaa.core.fileio import write_text_atomic
from cgaa.core.modelfile import read_metadata
from cgaa.priors import TERMS, prior_terms

#: Targets of the shipped model against its teacher (method paper's EC/EMC force RMSE).
TARGETS = {"forces_rmse_eV_per_A": 0.20, "energy_rmse_meV_per_atom": 5.0}


def _target_line(name: str, value: float, target: float, unit: str) -> str:
    if value <= target:
        return f"| {name} | {value:.3f} {unit} | ≤ {target} {unit} | met |"
    return f"| {name} | {value:.3f} {unit} | ≤ {target} {unit} | **not met** (by {value - target:.3f} {unit}, {value / target:.1f}×) |"


def data_sentence(files: Optional[List[Dict[str, str]]], data: Dict) -> str:
    """'Training files: …; test: …' naming each file by its path inside the repository (or its
    absolute path) and the first 12 hex digits of its SHA-256, from the checkpoint's
    ``data_files`` record; checkpoints written before it existed give the config's paths as
    written (relative to the training config)."""
    def name(f: Dict[str, str]) -> str:
        return f"`{f['path']}` (sha256 {f['sha256'][:12]})" if f.get("sha256") else f"`{f['path']}` (missing when deployed)"

    if files:
        train = [name(f) for f in files if f["role"] in ("train", "validation")]
        test = [name(f) for f in files if f["role"] == "test"] or ["a split of the training files"]
        return f"Training files: {', '.join(train)}; test: {', '.join(test)}"
    return (f"Training files (paths relative to the training config): {', '.join(map(str, data.get('train', [])))}; "
            f"test: {', '.join(map(str, data.get('test', [])))}")


def _between_molecules(prior: str) -> str:
    """What of prior ``prior`` acts between molecules, in words ('' for priors inside grains)."""
    try:
        keys = prior_terms(prior)
    except ValueError:
        return ""
    parts = [TERMS[k].description for k in keys if TERMS[k].between_molecules]
    return " and ".join(parts)


#: What the shipped classical model was trained on (the card's default wording).
CLASSICAL_TEACHER = ("the classical teacher force field (`forcefields/teacher/`) — it reproduces the teacher, "
                     "not quantum chemistry")
CLASSICAL_FRAMES = ("classical MD of a ~1000-atom box at 278, 298, 318 and 338 K, plus 10% hot (1.8×T) and 10% "
                    "distorted (σ = 0.03 Å) frames, and any further files listed (e.g. boxes at other densities; "
                    "see `forcefields/models/make_default_model.sh`)")


def model_card(meta: Dict, metrics: Dict, history: Optional[list], command: str, name: str,
               notes: Optional[str] = None, teacher: str = CLASSICAL_TEACHER, frames: str = CLASSICAL_FRAMES,
               targets: Optional[Dict[str, float]] = None,
               also: Optional[Sequence[Tuple[str, Dict]]] = None) -> str:
    """The card's Markdown text (``notes``: extra Markdown for the *Use in MD* section,
    e.g. measured MD behaviour; ``teacher``: what labelled the data, in words; ``frames``: how
    the frames were made; ``targets``: test-error targets, :data:`TARGETS` keys; ``also``:
    further held-out sets as (label, ``cgaa evaluate`` metrics) pairs, e.g. frames of the model's
    own MD, each a row with its force and energy RMSE (eV/Å, meV/atom) against the same targets)."""
    targets = {**TARGETS, **(targets or {})}
    c = meta["config"]
    prior = c.get("prior", "none")
    t = meta.get("training", {})
    data = (t.get("data") or {})
    lines = [
        f"# Model card: {name}",
        "",
        f"A CGAA model ({meta['force_mode']} forces) for {', '.join(g['name'] for g in meta['grain_types'])}, "
        f"trained on {teacher}. Reproduce it with:",
        "",
        "```",
        command,
        "```",
        "",
        "## Intended use",
        "",
        "1 M LiPF6 in EC:EMC 3:7 (w/w) near 278–338 K, boxes whose shortest height exceeds "
        f"2 × cutoff = {2 * c['cutoff']:.0f} Å. Elements: {' '.join(meta['element_symbols'])}. Outside that "
        "composition and temperature range, fine-tune first (`cgaa finetune`).",
        "",
        "## Data",
        "",
        f"{data_sentence(t.get('data_files'), data)} "
        f"(an independent teacher trajectory). Frames: {frames}.",
        "",
        "## Hyper-parameters",
        "",
        "| key | value |",
        "|---|---|",
    ]
    for k in ("cutoff", "num_layers", "channels", "lmax", "num_basis", "radial_hidden", "intra_layers", "intra_lmax",
              "intra_cutoff", "intra_num_basis", "embed_radius", "force_mode", "pair_cutoff", "pair_num_basis",
              "pair_rank", "atom_energy", "prior"):
        if k in c:
            lines.append(f"| {k} | {c[k]} |")
    if c.get("contact_floor"):
        from ase.data import chemical_symbols

        pairs = ", ".join(f"{chemical_symbols[int(a)]}–{chemical_symbols[int(b)]} {d:.2f}" for a, b, d in c["contact_floor"])
        lines.append(f"| contact_floor (closest approach between grains in the data, Å; the contact guard's "
                     f"walls sit at 0.9 ×) | {pairs} |")
    lines += [f"| epochs run (best) | {t.get('epochs')} ({t.get('best_epoch')}) |", "",
              "## Test metrics against the teacher", "",
              f"{metrics['n_frames']} held-out frames.", "",
              "| quantity | value | target | status |", "|---|---|---|---|",
              _target_line("force RMSE (total)", metrics["forces_rmse_eV_per_A"], targets["forces_rmse_eV_per_A"], "eV/Å"),
              _target_line("energy RMSE", metrics["energy_rmse_meV_per_atom"], targets["energy_rmse_meV_per_atom"],
                           "meV/atom"),
              ""]
    if also:
        lines += further_sets_table(also, targets) + [""]
    between = _between_molecules(prior)
    if prior != "none":
        where = (f"The prior also acts between molecules ({between}), so net grain forces are network + prior."
                 if between else "The prior acts inside grains only, so net grain forces are the network's alone.")
        lines += [f"Errors are those of model + prior (`{prior}`, see `cgaa.priors`) against the teacher; the "
                  "reference RMS and R² below are of the residual labels (teacher − prior) that the network "
                  f"learns. {where}", ""]
    lines += ["| quantity | RMSE | MAE | reference RMS | R² |", "|---|---|---|---|---|",
              f"| energy (meV/atom) | {metrics['energy_rmse_meV_per_atom']:.3f} | {metrics['energy_mae_meV_per_atom']:.3f} | | |"]
    for key, label in (("forces", "force, total (eV/Å)"), ("forces_inter", "force, inter-grain part per atom (eV/Å)"),
                       ("grain_net_forces", "net force per grain (eV/Å)"), ("forces_intra", "force, intra-grain part (eV/Å)")):
        lines.append(f"| {label} | {metrics[key + '_rmse_eV_per_A']:.3f} | {metrics[key + '_mae_eV_per_A']:.3f} | "
                     f"{metrics.get(key + '_reference_rms_eV_per_A', float('nan')):.3f} | "
                     f"{metrics.get(key + '_r2', float('nan')):.2f} |")
    if metrics.get("pressure_rmse_bar") is not None:
        lines.append(f"| molecular virial per atom (meV/atom) | {metrics['virial_mol_rmse_meV_per_atom']:.2f} | | | |")
        lines.append(f"| pressure (bar), mean error {metrics['pressure_mean_error_bar']:+.0f} | "
                     f"{metrics['pressure_rmse_bar']:.0f} | {metrics['pressure_mae_bar']:.0f} | | |")
    r2 = metrics.get("grain_net_forces_r2")
    if r2 is not None and r2 < 0.8:
        lines += ["", f"**Limitation:** the net force on each grain — the inter-grain force that moves molecules and "
                  f"ions, and so sets diffusion — is only partly learned (R² = {r2:.2f}); the total-force RMSE is "
                  "dominated by the intra-grain part. Transport from this model should be validated against the "
                  "teacher (`cgaa bench observables`) before it is trusted."]
    lines += ["", "Force RMSE per grain type (eV/Å): " + ", ".join(
        f"{k} {v['forces_rmse_eV_per_A']:.3f}" for k, v in metrics["per_grain_type"].items()),
              "Force RMSE per element (eV/Å): " + ", ".join(
        f"{k} {v['forces_rmse_eV_per_A']:.3f}" for k, v in metrics["per_element"].items()), ""]
    if history:
        lines += [f"Training took {sum(float(h['seconds']) for h in history) / 60:.0f} min for {len(history)} epochs "
                  "on the machine that ran the recipe.", ""]
    lines += ["## Use in MD", ""]
    if prior == "none":
        lines += ["Run it with `cgaa simulate`'s defaults — bonds to H constrained and the flat-bottom bond guard on "
                  "(docs/simulate.md): a model trained on thermal frames is not reliable for strongly stretched "
                  "bonds, and unguarded MD can pull a bond into that region.", ""]
    else:
        lines += [f"The classical prior `{prior}` is added automatically wherever the model runs "
                  "(`cgaa.openmm.create_system`, `MLPotential('cgaa')`, `cgaa simulate`); it holds bonds and angles "
                  "together however far MD strays from the training data, so `cgaa simulate`'s bond guard stays "
                  "off by default. Its default H-bond constraints allow 1 fs steps.", ""]
        if between:
            lines += ["Its terms between molecules hold the teacher's charges, so it cannot join a System that "
                      "already has a `NonbondedForce` (an MM force field's, e.g. in `createMixedSystem`): "
                      "`add_cgaa_force` refuses, as the charges would count twice. For ML/MM embedding use a "
                      "model with an intramolecular prior (`teacher_intra`).", ""]
    if notes:
        lines += [notes.strip(), ""]
    lines += [f"![parity]({name}.parity.png)", "", f"![learning curve]({name}.learning_curve.png)", "",
              f"Metadata: cgaa {meta['cgaa_version']}, torch {meta['torch_version']}, created {meta['created']}.", ""]
    return "\n".join(lines)


def further_sets_table(also: Sequence[Tuple[str, Dict]], targets: Dict[str, float]) -> List[str]:
    """Markdown rows for further held-out sets (label, ``cgaa evaluate`` metrics): frames, force
    RMSE (eV/Å), energy RMSE and signed mean error (meV/atom), pressure mean error (bar, when the
    frames have stress) and whether both targets are met."""
    rows = ["| further held-out set | frames | force RMSE (eV/Å) | energy RMSE (mean error) (meV/atom) | "
            "pressure mean error (bar) | targets |", "|---|---|---|---|---|---|"]
    for label, m in also:
        f, e = m["forces_rmse_eV_per_A"], m["energy_rmse_meV_per_atom"]
        mean = m.get("energy_mean_error_meV_per_atom")
        p = m.get("pressure_mean_error_bar")
        met = f <= targets["forces_rmse_eV_per_A"] and e <= targets["energy_rmse_meV_per_atom"]
        rows.append(f"| {label} | {m['n_frames']} | {f:.3f} | {e:.2f}"
                    + (f" ({mean:+.2f})" if mean is not None else "")
                    + f" | {'' if p is None else f'{p:+.0f}'} | {'met' if met else '**not met**'} |")
    return rows


def write_model_card(model: Union[str, Path], metrics_json: Union[str, Path], history_csv: Optional[Union[str, Path]],
                     out: Union[str, Path], command: str, notes: Optional[Union[str, Path]] = None,
                     also: Optional[Sequence[Tuple[str, Union[str, Path]]]] = None, **wording) -> Path:
    """Write the card for ``model`` (deployed .pt) with metrics from ``cgaa evaluate``
    (``notes``: a Markdown file added to the *Use in MD* section; ``also``: (label, metrics.json)
    pairs of further held-out sets; ``wording``: ``teacher``, ``frames``, ``targets`` of
    :func:`model_card`)."""

    meta = read_metadata(model)
    metrics = json.loads(Path(metrics_json).read_text())
    history = list(csv.DictReader(open(history_csv))) if history_csv and Path(history_csv).is_file() else None
    text = Path(notes).read_text() if notes else None
    further = [(label, json.loads(Path(path).read_text())) for label, path in (also or [])]
    return write_text_atomic(out, model_card(meta, metrics, history, command, Path(model).stem, text,
                                             also=further, **wording))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("model")
    p.add_argument("metrics")
    p.add_argument("history")
    p.add_argument("out")
    p.add_argument("--command", required=True)
    p.add_argument("--notes", help="Markdown file added to the card's 'Use in MD' section")
    p.add_argument("--teacher", default=CLASSICAL_TEACHER, help="what labelled the data, in words")
    p.add_argument("--frames", default=CLASSICAL_FRAMES, help="how the frames were made, in words")
    p.add_argument("--targets", default=None, metavar="F,E",
                   help="test-error targets: force RMSE eV/A, energy RMSE meV/atom (default 0.2,5: the method paper's)")
    p.add_argument("--also", action="append", default=[], metavar="LABEL=METRICS.json",
                   help="a further held-out set (e.g. frames of the model's own MD) evaluated by `cgaa evaluate`: "
                        "a row of the card's test table; repeatable")
    a = p.parse_args(argv)
    also = []
    for item in a.also:
        label, sep, path = item.rpartition("=")
        if not sep or not label:
            p.error(f"--also {item!r}: expected LABEL=METRICS.json")
        also.append((label, path))
    targets = None
    if a.targets:
        f, e = (float(x) for x in a.targets.split(","))
        targets = {"forces_rmse_eV_per_A": f, "energy_rmse_meV_per_atom": e}
    path = write_model_card(a.model, a.metrics, a.history, a.out, a.command, a.notes, teacher=a.teacher,
                            frames=a.frames, targets=targets, also=also)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
