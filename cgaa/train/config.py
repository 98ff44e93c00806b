"""Training / fine-tuning configuration (YAML). Every key is documented here and in
docs/training.md; unknown keys are rejected with their full path.

Example::

    data:
      train: [teacher.xyz]
      val_fraction: 0.1
      test_fraction: 0.1
    model:
      cutoff: 8.0
      channels: 16
    training:
      epochs: 50
      batch_size: 4
      lr: 0.005
    output:
      dir: runs/lipf6
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import yaml
from cgaa.core.model import ModelConfig

#: ModelConfig fields that come from the data, not from the user.
VOCABULARY_KEYS = ("elements", "grain_types", "grain_type_names", "masses")


@dataclass
class DataConfig:
    """Where the labelled frames are and how to split them.

    train: extxyz file(s) (paths relative to the config file).
    validation, test: optional separate files; if absent the split comes from ``train``.
    val_fraction, test_fraction: fractions of ``train`` frames held out when no separate files.
    split_seed: seed of the random split.
    energy_key, forces_key: force a label key (default: REF_energy/energy/..., REF_forces/forces/...).
    """

    train: List[str] = field(default_factory=list)
    validation: List[str] = field(default_factory=list)
    test: List[str] = field(default_factory=list)
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    energy_key: Optional[str] = None
    forces_key: Optional[str] = None


@dataclass
class LossConfig:
    """Loss weights: energy per atom (eV/atom)², inter-grain force (net force per grain,
    (eV/Å)²), intra-grain force ((eV/Å)² per atom component) and molecular virial per atom
    ((eV/atom)² per tensor component; needs frames with a stress label, ``REF_stress``).

    The virial term is what teaches the model the pressure: thermal frames at one density
    say little about how the energy changes with volume, so without it NPT boxes drift."""

    energy: float = 1.0
    forces_inter: float = 1.0
    forces_intra: float = 1.0
    virial: float = 0.0


@dataclass
class TrainingConfig:
    """Optimisation.

    epochs: maximum number of passes over the training frames.
    batch_size: frames per optimiser step (split across processes under torchrun).
    lr, weight_decay: AdamW learning rate and decoupled weight decay.
    scheduler: ``plateau`` (ReduceLROnPlateau on validation loss), ``cosine`` or ``none``.
    scheduler_patience, scheduler_factor, min_lr: ReduceLROnPlateau / cosine settings.
    ema_decay: exponential moving average of weights (0 disables); validation, checkpoints'
      "best" and deployment use the averaged weights.
    early_stopping_patience: stop after this many epochs without validation improvement (0: never).
    grad_clip: maximum gradient norm (0 disables).
    seed: seed of initialisation and of the frame order (epoch e shuffles with seed + e).
    dtype: ``float32`` or ``float64``.
    device: ``cpu``, ``cuda`` or ``cuda:N``.
    loss: the loss weights (see LossConfig).
    """

    epochs: int = 100
    batch_size: int = 4
    lr: float = 5e-3
    weight_decay: float = 0.0
    scheduler: str = "plateau"
    scheduler_patience: int = 5
    scheduler_factor: float = 0.5
    min_lr: float = 1e-5
    ema_decay: float = 0.99
    early_stopping_patience: int = 20
    grad_clip: float = 10.0
    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"
    loss: LossConfig = field(default_factory=LossConfig)


@dataclass
class FinetuneConfig:
    """Forgetting-aware fine-tuning (``cgaa finetune``).

    start: deployed model (.pt from ``cgaa deploy``) or training checkpoint to start from.
    old_data: extxyz file(s) of the data the model was trained on (for replay, EWC and
      the before/after report).
    replay_fraction: fraction of every batch drawn from the old data (0 disables replay).
    ewc_lambda: strength λ of elastic weight consolidation, λ/2·Σ F_k(θ_k − θ*_k)² (0 disables).
    fisher_frames: old frames used to estimate the diagonal Fisher information.
    old_eval_data: held-out extxyz file(s) of the old composition for the before/after
      report (default: old_data, which replay and EWC also use).
    old_eval_frames: old frames used to report the error before and after (0: all).
    """

    start: str = ""
    old_data: List[str] = field(default_factory=list)
    replay_fraction: float = 0.25
    ewc_lambda: float = 100.0
    fisher_frames: int = 20
    old_eval_data: List[str] = field(default_factory=list)
    old_eval_frames: int = 0


@dataclass
class OutputConfig:
    """dir: run directory (checkpoints, metrics.csv, plots), relative to the config file."""

    dir: str = "runs/cgaa"


@dataclass
class TrainConfig:
    """A whole training (or fine-tuning) run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: Dict[str, Any] = field(default_factory=dict)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    finetune: Optional[FinetuneConfig] = None
    base_dir: str = "."

    def resolve(self, path: Union[str, Path]) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("base_dir")
        if d["finetune"] is None:
            d.pop("finetune")
        return d


def _build(cls, data: Any, where: str):
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ValueError(f"config section '{where}' must be a mapping, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in known or key == "base_dir":
            choices = ", ".join(k for k in known if k != "base_dir")
            raise ValueError(f"unknown config key '{path}' (known in '{where or 'top level'}': {choices})")
        sub = _SECTIONS.get((cls, key))
        if sub is not None:
            kwargs[key] = _build(sub, value, path)
        elif key in ("train", "validation", "test", "old_data", "old_eval_data") and isinstance(value, str):
            kwargs[key] = [value]
        else:
            kwargs[key] = value
    return cls(**kwargs)


_SECTIONS = {
    (TrainConfig, "data"): DataConfig,
    (TrainConfig, "training"): TrainingConfig,
    (TrainConfig, "output"): OutputConfig,
    (TrainConfig, "finetune"): FinetuneConfig,
    (TrainingConfig, "loss"): LossConfig,
}


def _check(cfg: TrainConfig) -> None:

    known = {f.name for f in dataclasses.fields(ModelConfig)} - set(VOCABULARY_KEYS)
    for key in cfg.model:
        if key not in known:
            raise ValueError(f"unknown config key 'model.{key}' (known: {', '.join(sorted(known))})")
    t = cfg.training
    if t.scheduler not in ("plateau", "cosine", "none"):
        raise ValueError(f"training.scheduler must be plateau, cosine or none, not {t.scheduler!r}")
    if t.dtype not in ("float32", "float64"):
        raise ValueError(f"training.dtype must be float32 or float64, not {t.dtype!r}")
    for name in ("epochs", "batch_size"):
        if int(getattr(t, name)) < 1:
            raise ValueError(f"training.{name} must be ≥ 1")
    if not t.lr > 0:
        raise ValueError("training.lr must be > 0")
    if not 0 <= t.ema_decay < 1:
        raise ValueError("training.ema_decay must be in [0, 1)")
    if cfg.finetune is None and not cfg.data.train:
        raise ValueError("data.train: give at least one extxyz file")
    if cfg.finetune is not None:
        f = cfg.finetune
        if not f.start:
            raise ValueError("finetune.start: give the model or checkpoint to start from")
        if not 0 <= f.replay_fraction < 1:
            raise ValueError("finetune.replay_fraction must be in [0, 1)")
        if f.ewc_lambda < 0:
            raise ValueError("finetune.ewc_lambda must be ≥ 0")
        if (f.replay_fraction > 0 or f.ewc_lambda > 0) and not f.old_data:
            raise ValueError("finetune.old_data: replay and EWC need the old training data")


def config_from_dict(data: Dict[str, Any], base_dir: Union[str, Path] = ".") -> TrainConfig:
    """Validate a config mapping (ValueError naming the key at fault)."""
    cfg = _build(TrainConfig, data or {}, "")
    cfg.base_dir = str(base_dir)
    _check(cfg)
    return cfg


def load_config(path: Union[str, Path]) -> TrainConfig:
    """Read and validate a YAML config; relative paths in it are relative to its folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None
    try:
        return config_from_dict(data, path.parent)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
