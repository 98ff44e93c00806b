"""The training loop: ``cgaa train config.yaml``.

* frames of different sizes are batched by evaluating each frame of a batch and
  averaging their losses (each frame is a whole periodic box, so per-frame work is large);
* per-grain-type reference energies by least squares, energy scale = RMS force, and
  neighbour/grain-size normalisations from the training data, before the first step;
* AdamW, ReduceLROnPlateau or cosine schedule, EMA of weights, gradient clipping, early
  stopping; validation with the EMA weights;
* ``last.pt`` (every epoch) and ``best.pt`` (best validation) written atomically, ``best.pt``
  first, so a run killed at any moment (even ``kill -9``) leaves a ``last.pt`` from which
  ``resume=True`` continues exactly (the frame order of epoch e is seeded by seed + e);
* a run directory that holds a run is never overwritten unless asked (``overwrite=True``,
  ``cgaa train --overwrite``); its checks, and those of the data files, come before any work;
* a NaN/inf loss stops training with an error; the last good checkpoint is kept;
* ``metrics.csv`` and ``learning_curve.png`` in the run directory;
* data-parallel under ``torchrun`` (torch.distributed, gloo on CPU): each process takes
  every world_size-th frame of a batch and gradients are summed across processes, so the
  result equals a single process with the same global batch.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from cgaa._version import __version__
from cgaa.data.contacts import closest_contacts
from cgaa.data.dataset import (Frame, check_covered, data_statistics, fit_reference_energies, frame_tensors,
                               load_frames, model_inputs, split_frames, vocabulary_of)
from cgaa.core.modelfile import TRAINING_CHECKPOINT_FORMAT
from cgaa.core.fileio import atomic_path, file_sha256, write_text_atomic
from cgaa.core.resources import repository_path
from cgaa.core.modelfile import is_deployed_model
from cgaa.train.config import TrainConfig, check_files
from cgaa.train.loss import check_virial_labels, frame_loss, predict
from cgaa.core.model import CGAAModel, ModelConfig, count_parameters
from cgaa.train.evaluate import errors

CHECKPOINT_FORMAT = TRAINING_CHECKPOINT_FORMAT


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. NaN loss); the message says what and where."""


# ---------------------------------------------------------------- distributed
def _budget_spent(history: List[Dict], max_hours: float) -> bool:
    """Whether the epochs in ``history`` took ``max_hours`` (h) or more (rank 0's clock decides for all)."""
    import torch.distributed as dist

    spent = torch.tensor([sum(h["seconds"] for h in history) >= max_hours * 3600.0], dtype=torch.int32)
    if dist.is_available() and dist.is_initialized():
        dist.broadcast(spent, src=0)
    return bool(spent.item())


def dist_info() -> Tuple[int, int]:
    """(rank, world size); initialises torch.distributed under torchrun (gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("CGAA_DIST_BACKEND") == "nccl" else "gloo"
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def _allreduce_grads(model: torch.nn.Module, world: int) -> None:
    if world <= 1:
        return
    import torch.distributed as dist

    for p in model.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


# ---------------------------------------------------------------- helpers
def _dtype(name: str) -> torch.dtype:
    return torch.float64 if name == "float64" else torch.float32


def _set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))


def new_model_config(cfg: TrainConfig, frames: Sequence[Frame]) -> ModelConfig:
    """ModelConfig from the user's ``model:`` section, the data's vocabulary and statistics."""
    elements, keys, names = vocabulary_of(frames)
    hyper = dict(cfg.model)
    probe = ModelConfig(elements, keys, names, **hyper)
    stats = data_statistics(frames, probe.cutoff, probe.intra_cutoff, probe.all_atom)
    for k in ("avg_neighbors", "avg_intra_neighbors", "avg_grain_size"):
        hyper.setdefault(k, round(float(stats[k]), 3))
    if not probe.all_atom and "contact_floor" not in hyper:  # all-atom: bonded atoms are "grains"
        hyper["contact_floor"] = closest_contacts(frames, elements)
    return ModelConfig(elements, keys, names, **hyper)


@torch.no_grad()
def refit_reference_energies(model: CGAAModel, frames: Sequence[Frame]) -> float:
    """Shift the per-grain-type reference energies by a least-squares fit of the model's
    energy residuals on ``frames`` (removes any leftover offset); returns the RMS residual
    per atom (eV) after the shift."""
    conf = model.config
    p0 = next(model.parameters())
    counts = np.zeros((len(frames), len(conf.grain_types)))
    resid = np.zeros(len(frames))
    for k, f in enumerate(frames):
        ref = frame_tensors(f, conf, p0.dtype, p0.device)
        counts[k] = np.bincount(ref["grain_type"].cpu().numpy(), minlength=len(conf.grain_types))
        resid[k] = f.energy - float(model(**model_inputs(ref), compute_forces=False)["energy"])
    delta, *_ = np.linalg.lstsq(counts, resid, rcond=None)
    model.type_energy += torch.as_tensor(delta, dtype=model.type_energy.dtype, device=model.type_energy.device)
    n_atoms = np.array([f.n_atoms for f in frames])
    return float(np.sqrt(np.mean(((resid - counts @ delta) / n_atoms) ** 2)))


def initialise_energies(model: CGAAModel, frames: Sequence[Frame]) -> Dict[str, float]:
    """Fit per-grain-type reference energies and set the energy scale (RMS force, eV/Å·Å)."""
    ref = fit_reference_energies(frames, model.config)
    rms = float(np.sqrt(np.mean(np.concatenate([f.forces.ravel() for f in frames]) ** 2)))
    with torch.no_grad():
        model.type_energy.copy_(torch.as_tensor(ref, dtype=model.type_energy.dtype))
        model.energy_scale.fill_(max(rms, 1e-3))
    return {"force_rms": rms}


class EMA:
    """Exponential moving average of a model's parameters (buffers copied as they are)."""

    def __init__(self, model: CGAAModel, decay: float):
        self.decay = decay
        # a fresh model loaded with the weights (e3nn's compiled modules cannot be deep-copied)
        p0 = next(model.parameters())
        self.model = CGAAModel(model.config).to(device=p0.device, dtype=p0.dtype)
        self.model.load_state_dict(model.state_dict())
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = self.decay
        for pe, p in zip(self.model.parameters(), model.parameters()):
            pe.mul_(d).add_(p.detach(), alpha=1.0 - d)
        for be, b in zip(self.model.buffers(), model.buffers()):
            be.copy_(b)


def _make_scheduler(opt, cfg: TrainConfig):
    t = cfg.training
    if t.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=t.scheduler_factor,
                                                          patience=t.scheduler_patience, min_lr=t.min_lr)
    if t.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t.epochs, eta_min=t.min_lr)
    return None


def save_checkpoint(path: Path, state: Dict) -> Path:
    """torch.save a checkpoint dict atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


class CheckpointError(ValueError):
    """A file that is not a readable cgaa training checkpoint; ``reason`` says what it is instead."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path} is not a cgaa training checkpoint: {reason}")
        self.path, self.reason = path, reason


def load_checkpoint(path: Path) -> Dict:
    """Load a cgaa training checkpoint; FileNotFoundError, or :class:`CheckpointError` (a
    ValueError) saying what the file is instead (a directory, empty, truncated, not a torch
    file, a deployed model, another torch file)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(path, "it is a directory (give its best.pt or last.pt)")
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "the file is empty (0 bytes)")
    if is_deployed_model(path):
        raise CheckpointError(path, "it is a deployed model (from `cgaa deploy`); give the best.pt or last.pt "
                                    "of a training run")
    try:
        with zipfile.ZipFile(str(path)) as z:
            names = z.namelist()
        if not any(n.endswith("/data.pkl") for n in names):
            raise CheckpointError(path, "a zip archive, but not a torch file (no data.pkl inside)")
    except zipfile.BadZipFile:
        pass  # the legacy torch format, or not a torch file: torch.load says which
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - pickle, zip, EOF and I/O errors of a foreign or cut file
        first = (str(err).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(path, f"torch cannot read it ({type(err).__name__}: {first}); truncated, or "
                                    "another kind of file?") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        what = f"format {state.get('format')!r}" if isinstance(state, dict) else f"a {type(state).__name__}"
        raise CheckpointError(path, f"a torch file holding {what}, expected format {CHECKPOINT_FORMAT!r}")
    return state


#: files of a run directory that make it hold a run (refused unless resume or overwrite)
RUN_FILES = ("last.pt", "best.pt", "metrics.csv")
#: every file a run writes (removed by ``overwrite=True`` before the new run's first epoch)
RUN_OUTPUTS = RUN_FILES + ("learning_curve.png", "test_metrics.json", "finetune_report.json")


def check_run_dir(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> Path:
    """The run directory of ``cfg``, checked before any work: FileNotFoundError when ``resume``
    finds no last.pt; FileExistsError when it already holds a run (last.pt, best.pt or
    metrics.csv) and neither ``resume`` nor ``overwrite`` is given; NotADirectoryError when
    output.dir is a file."""
    run_dir = cfg.resolve(cfg.output.dir)
    src = f"{cfg.source}: " if cfg.source else ""
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"{src}output.dir {run_dir} is a file, not a run directory")
    if resume and overwrite:
        raise ValueError("give resume (--resume) or overwrite (--overwrite), not both")
    if resume:
        if not (run_dir / "last.pt").is_file():
            raise FileNotFoundError(f"cannot resume: no {run_dir / 'last.pt'} (output.dir of {cfg.source or 'the config'}); "
                                    "start without --resume")
        return run_dir
    held = [n for n in RUN_FILES if (run_dir / n).exists()]
    if held and not overwrite:
        raise FileExistsError(f"{src}output.dir {run_dir} already holds a training run ({', '.join(held)}): give "
                              "--resume to continue it, --overwrite to replace it, or another output.dir")
    return run_dir


def _clean_run_dir(run_dir: Path, overwrite: bool, resume: bool) -> None:
    """Remove the temporary files an interrupted write left (a kill during an atomic save) and,
    with ``overwrite``, the outputs of the run being replaced."""
    for name in RUN_OUTPUTS:
        for tmp in run_dir.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
        if overwrite and not resume:
            (run_dir / name).unlink(missing_ok=True)


def model_from_checkpoint(state: Dict, weights: str = "ema") -> CGAAModel:
    """Rebuild the model of a checkpoint with its EMA (default) or raw weights."""
    cfg = ModelConfig.from_dict(state["model_config"])
    model = CGAAModel(cfg).to(_dtype(state.get("dtype", "float32")))
    model.load_state_dict(state[weights] if state.get(weights) is not None else state["model"])
    return model


# ---------------------------------------------------------------- the run
@dataclass
class TrainResult:
    """What a training run produced."""

    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    epochs_run: int
    best_val_loss: float
    test_metrics: Optional[Dict]


def _progress(iterable, enabled: bool, **kw):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kw)


def _evaluate_loss(model, tensors: Sequence[Dict], cfg: TrainConfig) -> Dict[str, float]:
    tot = {"loss": 0.0, "energy": 0.0, "forces_inter": 0.0, "forces_intra": 0.0, "force_sq": 0.0, "n_f": 0.0,
           "virial": 0.0, "n_vir": 0.0}
    for ref in tensors:
        out = predict(model, ref)
        loss, parts = frame_loss(out, ref, cfg.training.loss)
        tot["loss"] += float(loss.detach())
        for k, v in parts.items():
            tot[k] += v
        tot["n_vir"] += "virial" in parts
        d = (out["forces"].detach() - ref["forces"]).double()
        tot["force_sq"] += float((d * d).sum())
        tot["n_f"] += d.numel()
    n = max(len(tensors), 1)
    return {"loss": tot["loss"] / n,
            "energy_rmse_meV_per_atom": math.sqrt(tot["energy"] / n) * 1000,
            "forces_inter_mse": tot["forces_inter"] / n, "forces_intra_mse": tot["forces_intra"] / n,
            "forces_rmse_eV_per_A": math.sqrt(tot["force_sq"] / max(tot["n_f"], 1)),
            "virial_rmse_meV_per_atom": (math.sqrt(tot["virial"] / tot["n_vir"]) * 1000 if tot["n_vir"]
                                         else float("nan"))}


def write_metrics_csv(path: Path, history: List[Dict]) -> None:
    """The per-epoch history as CSV (rewritten atomically)."""
    if not history:
        return
    buf = io.StringIO()
    names: List[str] = []
    for h in history:  # runs resumed from older versions may lack newer columns
        names += [k for k in h if k not in names]
    w = csv.DictWriter(buf, fieldnames=names)
    w.writeheader()
    w.writerows(history)
    write_text_atomic(path, buf.getvalue())


def learning_curve(path: Path, history: List[Dict]) -> None:
    """Train/validation loss and validation force RMSE per epoch (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.semilogy(ep, [h["train_loss"] for h in history], label="train")
    a.semilogy(ep, [h["val_loss"] for h in history], label="validation (EMA)")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend()
    b.plot(ep, [h["val_forces_rmse_eV_per_A"] for h in history], color="C2")
    b.set_xlabel("epoch")
    b.set_ylabel("validation force RMSE (eV/Å)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def run_training(cfg: TrainConfig, model: CGAAModel, train: Sequence[Frame], val: Sequence[Frame],
                 test: Sequence[Frame], resume: bool = False, progress: bool = True,
                 penalty=None, replay: Optional[Sequence[Frame]] = None, replay_fraction: float = 0.0,
                 extra_state: Optional[Dict] = None, overwrite: bool = False) -> TrainResult:
    """The optimisation loop on prepared frames (used by :func:`train` and fine-tuning).

    penalty: optional callable(model) → scalar tensor added to every step's loss (EWC).
    replay / replay_fraction: a fraction of each batch drawn from ``replay`` frames.
    resume / overwrite: see :func:`check_run_dir`.
    """
    rank, world = dist_info()
    t = cfg.training
    dtype = _dtype(t.dtype)
    dev = torch.device(t.device)
    run_dir = check_run_dir(cfg, resume, overwrite)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        _clean_run_dir(run_dir, overwrite, resume)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    model = model.to(dev)
    conf = model.config
    to_t = lambda fs: [frame_tensors(f, conf, dtype, dev) for f in fs]  # noqa: E731
    train_t, val_t, test_t = to_t(train), to_t(val), to_t(test)
    replay_t = to_t(replay or [])
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    sched = _make_scheduler(opt, cfg)
    ema = EMA(model, t.ema_decay) if t.ema_decay > 0 else None
    start_epoch, best, best_epoch, bad_epochs, history = 0, float("inf"), -1, 0, []
    if resume:
        st = load_checkpoint(last_path)
        model.load_state_dict(st["model"])
        if ema is not None and st.get("ema") is not None:
            ema.model.load_state_dict(st["ema"])
        opt.load_state_dict(st["optimizer"])
        if sched is not None and st.get("scheduler") is not None:
            sched.load_state_dict(st["scheduler"])
        start_epoch, best, best_epoch = st["epoch"], st["best_val_loss"], st["best_epoch"]
        bad_epochs, history = st["bad_epochs"], st["history"]
        if rank == 0:  # a kill between last.pt and metrics.csv left the table one epoch behind
            write_metrics_csv(run_dir / "metrics.csv", history)

    files_record = data_files(cfg)

    def state(epoch: int) -> Dict:
        return {
            "format": CHECKPOINT_FORMAT, "cgaa_version": __version__, "dtype": t.dtype,
            "model_config": conf.to_dict(), "model": model.state_dict(),
            "ema": None if ema is None else ema.model.state_dict(),
            "optimizer": opt.state_dict(), "scheduler": None if sched is None else sched.state_dict(),
            "epoch": epoch, "best_val_loss": best, "best_epoch": best_epoch, "bad_epochs": bad_epochs,
            "history": history, "train_config": cfg.to_dict(), "data_files": files_record,
            **(extra_state or {}),
        }

    eval_model = ema.model if ema is not None else model
    n_replay = int(round(replay_fraction * t.batch_size)) if replay_t else 0
    n_new = t.batch_size - n_replay
    epochs = _progress(range(start_epoch, t.epochs), progress and rank == 0, desc="train", unit="epoch",
                       initial=start_epoch, total=t.epochs)
    epoch = start_epoch
    for epoch in epochs:
        if t.max_hours and _budget_spent(history, t.max_hours):
            break
        t0 = time.time()
        rng = np.random.default_rng(t.seed + epoch)
        order = rng.permutation(len(train_t))
        model.train()
        losses = []
        for b0 in range(0, len(order), n_new):
            batch = [train_t[i] for i in order[b0:b0 + n_new]]
            if n_replay:
                batch += [replay_t[i] for i in rng.choice(len(replay_t), size=n_replay, replace=True)]
            opt.zero_grad(set_to_none=False)
            batch_loss = 0.0
            for k, ref in enumerate(batch):
                if k % world != rank:
                    continue
                out = predict(model, ref, create_graph=True, virial=t.loss.virial > 0)
                loss, _ = frame_loss(out, ref, t.loss)
                loss = loss / len(batch)
                if not torch.isfinite(loss):
                    raise TrainingError(
                        f"loss is {float(loss.detach())} at epoch {epoch}, step {b0 // n_new}: training stopped; "
                        f"the last good checkpoint is {last_path if last_path.exists() else 'not written yet'} "
                        "(lower training.lr or check the data)")
                loss.backward()
                batch_loss += float(loss.detach())
            _allreduce_grads(model, world)
            if penalty is not None:
                pen = penalty(model)
                pen.backward()
                batch_loss += float(pen.detach())
            if t.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            opt.step()
            if ema is not None:
                ema.update(model)
            if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
                raise TrainingError(f"weights became NaN/inf at epoch {epoch}: training stopped; the last good "
                                    f"checkpoint is {last_path if last_path.exists() else 'not written yet'} "
                                    "(lower training.lr)")
            losses.append(batch_loss)
        if world > 1:
            import torch.distributed as dist

            tl = torch.tensor([float(np.mean(losses))], dtype=torch.float64)
            dist.all_reduce(tl)
            train_loss = float(tl)  # each rank's share is already divided by the global batch
        else:
            train_loss = float(np.mean(losses))
        eval_model.eval()
        val = _evaluate_loss(eval_model, val_t if val_t else train_t, cfg)
        if not math.isfinite(val["loss"]):
            raise TrainingError(f"validation loss is {val['loss']} at epoch {epoch}: training stopped; "
                                f"last good checkpoint {last_path}")
        if sched is not None:
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.step(val["loss"])
            else:
                sched.step()
        improved = val["loss"] < best
        if improved:
            best, best_epoch, bad_epochs = val["loss"], epoch, 0
        else:
            bad_epochs += 1
        history.append({"epoch": epoch, "lr": opt.param_groups[0]["lr"], "train_loss": train_loss,
                        "val_loss": val["loss"], "val_energy_rmse_meV_per_atom": val["energy_rmse_meV_per_atom"],
                        "val_forces_rmse_eV_per_A": val["forces_rmse_eV_per_A"],
                        "val_forces_inter_mse": val["forces_inter_mse"],
                        "val_forces_intra_mse": val["forces_intra_mse"],
                        "val_virial_rmse_meV_per_atom": val["virial_rmse_meV_per_atom"],
                        "seconds": time.time() - t0})
        if rank == 0:
            st = state(epoch + 1)
            # best.pt before last.pt: a kill between the two leaves last.pt one epoch behind, and the
            # resumed run repeats that epoch and writes the same best.pt again
            if improved:
                save_checkpoint(best_path, st)
            save_checkpoint(last_path, st)
            write_metrics_csv(run_dir / "metrics.csv", history)
        if progress and rank == 0 and hasattr(epochs, "set_postfix"):
            epochs.set_postfix(val_loss=f"{val['loss']:.3g}", F_rmse=f"{val['forces_rmse_eV_per_A']:.3f}")
        if t.early_stopping_patience and bad_epochs >= t.early_stopping_patience:
            break
    test_metrics = None
    if rank == 0:
        learning_curve(run_dir / "learning_curve.png", history)
        if best_path.exists():
            # the best weights with reference energies re-fitted on the training residuals
            st = load_checkpoint(best_path)
            for key in ("ema", "model"):
                # weights refitted already (a run resumed after its end, or extended, whose best epoch
                # came before): refit once, as the uninterrupted run does (a second least-squares
                # shift is ~0, but need not be exactly 0)
                if st.get(key) is None or key in st.get("energy_refit_rms_eV_per_atom", {}):
                    continue
                m = CGAAModel(conf).to(device=dev, dtype=dtype)
                m.load_state_dict(st[key])
                # replayed old frames count too, so fine-tuning does not shift old compositions' energies
                refit_frames = list(train) + list(replay or [])
                st.setdefault("energy_refit_rms_eV_per_atom", {})[key] = refit_reference_energies(m, refit_frames)
                st[key] = m.state_dict()
            save_checkpoint(best_path, st)
        if test_t and best_path.exists():

            best_model = model_from_checkpoint(load_checkpoint(best_path)).to(dev)
            test_metrics = errors(best_model, conf, test, dtype=dtype, device=dev).summary()
            write_text_atomic(run_dir / "test_metrics.json", json.dumps(test_metrics, indent=2))
    return TrainResult(run_dir, best_path, last_path, len(history), best, test_metrics)


def data_files(cfg: TrainConfig) -> List[Dict[str, str]]:
    """The data files of ``cfg`` as ``{"role", "path", "sha256"}`` (path resolved, made relative to
    the repository when inside it; sha256 of the file's content, "" for a missing file), so a
    model card can name its data by a path inside the repository or by content."""
    d = cfg.data
    out = []
    for role, xs in (("train", d.train), ("validation", d.validation or []), ("test", d.test or [])):
        for x in xs:
            path = cfg.resolve(x).resolve()
            out.append({"role": role, "path": repository_path(path),
                        "sha256": file_sha256(path) if path.is_file() else ""})
    return out


def load_splits(cfg: TrainConfig, all_atom: bool,
                prior: Optional[str] = None) -> Tuple[List[Frame], List[Frame], List[Frame]]:
    """Training, validation and test frames as the config says (labels as residuals over
    ``prior``, see :mod:`cgaa.priors`)."""
    d = cfg.data
    files = lambda xs: [cfg.resolve(x) for x in xs]  # noqa: E731
    frames = load_frames(files(d.train), all_atom, d.energy_key, d.forces_key, prior)
    val_frac = 0.0 if d.validation else d.val_fraction
    test_frac = 0.0 if d.test else d.test_fraction
    train, val, test = split_frames(frames, val_frac, test_frac, d.split_seed)
    if d.validation:
        val = load_frames(files(d.validation), all_atom, d.energy_key, d.forces_key, prior)
    if d.test:
        test = load_frames(files(d.test), all_atom, d.energy_key, d.forces_key, prior)
    if not val:
        raise ValueError("the validation split is empty: set data.val_fraction > 0 or data.validation")
    return train, val, test


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, overwrite: bool = False) -> TrainResult:
    """Train a new CGAA model as ``cfg`` says (see :mod:`cgaa.train.config`).

    resume: continue the run in ``output.dir`` from its last.pt; overwrite: replace the run
    that ``output.dir`` holds (without either, a run directory holding a run is refused,
    :func:`check_run_dir`). The data files and the run directory are checked first."""
    check_files(cfg)
    check_run_dir(cfg, resume, overwrite)
    rank, _ = dist_info()
    all_atom = bool(cfg.model.get("all_atom", False))
    train_f, val_f, test_f = load_splits(cfg, all_atom, cfg.model.get("prior"))
    _set_seed(cfg.training.seed)
    mconf = new_model_config(cfg, train_f)
    check_covered(list(val_f) + list(test_f), mconf)
    check_virial_labels(list(train_f) + list(val_f), cfg.training.loss)
    model = CGAAModel(mconf).to(_dtype(cfg.training.dtype))
    initialise_energies(model, train_f)
    if rank == 0 and progress:

        print(f"cgaa train: {len(train_f)} train / {len(val_f)} validation / {len(test_f)} test frames; "
              f"{len(mconf.elements)} elements, grain types {', '.join(mconf.grain_type_names)}; "
              f"{count_parameters(model)} parameters")
    return run_training(cfg, model, train_f, val_f, test_f, resume=resume, progress=progress, overwrite=overwrite)
