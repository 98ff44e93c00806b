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
import typing
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
    max_hours: a training-time budget: no epoch starts once the epochs run so far (summed over
      resumed segments) took this many hours (0: no limit); compares models at equal cost.
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
    max_hours: float = 0.0
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
    #: the YAML file the config came from ("" for a mapping), for error messages
    source: str = ""

    def resolve(self, path: Union[str, Path]) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("base_dir")
        d.pop("source")
        if d["finetune"] is None:
            d.pop("finetune")
        return d


#: TrainConfig fields set by cgaa, not by a config file
_INTERNAL = ("base_dir", "source")


def _typed(value: Any, hint: Any, path: str) -> Any:
    """``value`` checked against the field type ``hint`` (ValueError naming ``path`` and the
    value): integers may be written 10 or 10.0, numbers also as strings YAML did not read as
    numbers (``1e-3``: YAML 1.1 reads it as text)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Union:  # Optional[X]
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{path} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{path} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"{path} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{path} must be a string, got {value!r}")
        return value
    if origin in (list, List) and args and args[0] is str:
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list):
            raise ValueError(f"{path} must be a list of file names, got {value!r}")
        for k, item in enumerate(value):
            if not isinstance(item, str):
                raise ValueError(f"{path}[{k}] must be a file name, got {item!r}")
        return list(value)
    return value  # nested structures are checked by their own constructors


def _build(cls, data: Any, where: str):
    if data is None:
        return cls()
    if not isinstance(data, dict):
        if not where:
            raise ValueError("the config must be a mapping of sections (data, model, training, output, finetune), "
                             f"got {type(data).__name__} {str(data)[:40]!r}")
        raise ValueError(f"config section '{where}' must be a mapping, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in known or key in _INTERNAL:
            choices = ", ".join(k for k in known if k not in _INTERNAL)
            raise ValueError(f"unknown config key '{path}' (known in '{where or 'top level'}': {choices})")
        sub = _SECTIONS.get((cls, key))
        if sub is not None:
            kwargs[key] = _build(sub, value, path)
        elif key == "model":
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"config section 'model' must be a mapping, got {type(value).__name__}")
            kwargs[key] = dict(value or {})
        else:
            kwargs[key] = _typed(value, hints[key], path)
    return cls(**kwargs)


_SECTIONS = {
    (TrainConfig, "data"): DataConfig,
    (TrainConfig, "training"): TrainingConfig,
    (TrainConfig, "output"): OutputConfig,
    (TrainConfig, "finetune"): FinetuneConfig,
    (TrainingConfig, "loss"): LossConfig,
}


def _check_model(model: Dict[str, Any]) -> None:
    """The ``model`` section: known keys, their types, and values ModelConfig accepts."""
    hints = typing.get_type_hints(ModelConfig)
    known = {f.name for f in dataclasses.fields(ModelConfig)} - set(VOCABULARY_KEYS)
    for key in model:
        if key not in known:
            raise ValueError(f"unknown config key 'model.{key}' (known: {', '.join(sorted(known))})")
        model[key] = _typed(model[key], hints[key], f"model.{key}")
    try:  # the values, with a placeholder vocabulary (the real one comes from the data)
        ModelConfig([1], ["H"], **model)
    except (TypeError, ValueError) as err:
        raise ValueError("model: " + str(err).replace("invalid model config: ", "")) from None


def _check(cfg: TrainConfig) -> None:
    _check_model(cfg.model)
    t = cfg.training
    if t.scheduler not in ("plateau", "cosine", "none"):
        raise ValueError(f"training.scheduler must be plateau, cosine or none, not {t.scheduler!r}")
    if t.dtype not in ("float32", "float64"):
        raise ValueError(f"training.dtype must be float32 or float64, not {t.dtype!r}")
    for name in ("epochs", "batch_size"):
        if getattr(t, name) < 1:
            raise ValueError(f"training.{name} must be ≥ 1, got {getattr(t, name)}")
    if not t.lr > 0:
        raise ValueError(f"training.lr must be > 0, got {t.lr:g}")
    for name in ("weight_decay", "min_lr", "grad_clip", "scheduler_patience", "early_stopping_patience",
                 "max_hours"):
        if getattr(t, name) < 0:
            raise ValueError(f"training.{name} must be ≥ 0, got {getattr(t, name):g}")
    if not 0 < t.scheduler_factor < 1:
        raise ValueError(f"training.scheduler_factor must be in (0, 1), got {t.scheduler_factor:g}")
    if not 0 <= t.ema_decay < 1:
        raise ValueError(f"training.ema_decay must be in [0, 1), got {t.ema_decay:g}")
    for name in ("energy", "forces_inter", "forces_intra", "virial"):
        if getattr(t.loss, name) < 0:
            raise ValueError(f"training.loss.{name} must be ≥ 0, got {getattr(t.loss, name):g}")
    if not (t.device == "cpu" or t.device == "cuda" or (t.device.startswith("cuda:") and t.device[5:].isdigit())):
        raise ValueError(f"training.device must be cpu, cuda or cuda:N, not {t.device!r}")
    d = cfg.data
    for name in ("val_fraction", "test_fraction"):
        if not 0 <= getattr(d, name) < 1:
            raise ValueError(f"data.{name} must be in [0, 1), got {getattr(d, name):g}")
    if d.val_fraction + d.test_fraction >= 1:
        raise ValueError(f"data.val_fraction + data.test_fraction must be < 1, got {d.val_fraction:g} + "
                         f"{d.test_fraction:g}")
    if not cfg.output.dir:
        raise ValueError("output.dir: give the run directory")
    if cfg.finetune is None and not cfg.data.train:
        raise ValueError("data.train: give at least one extxyz file")
    if cfg.finetune is not None:
        f = cfg.finetune
        if not f.start:
            raise ValueError("finetune.start: give the model or checkpoint to start from")
        if not 0 <= f.replay_fraction < 1:
            raise ValueError(f"finetune.replay_fraction must be in [0, 1), got {f.replay_fraction:g}")
        if f.ewc_lambda < 0:
            raise ValueError(f"finetune.ewc_lambda must be ≥ 0, got {f.ewc_lambda:g}")
        for name in ("fisher_frames", "old_eval_frames"):
            if getattr(f, name) < 0:
                raise ValueError(f"finetune.{name} must be ≥ 0, got {getattr(f, name)}")
        if (f.replay_fraction > 0 or f.ewc_lambda > 0) and not f.old_data:
            raise ValueError("finetune.old_data: replay and EWC need the old training data")


def check_files(cfg: TrainConfig) -> None:
    """FileNotFoundError naming the config key (``data.train[1]``, ``finetune.start``...) and the
    path of the first file of ``cfg`` that does not exist (before any of them is read)."""
    where = f"{cfg.source}: " if cfg.source else ""
    entries = [(f"data.{k}", getattr(cfg.data, k)) for k in ("train", "validation", "test")]
    if cfg.finetune is not None:
        entries += [("finetune.start", [cfg.finetune.start])]
        entries += [(f"finetune.{k}", getattr(cfg.finetune, k)) for k in ("old_data", "old_eval_data")]
    for key, paths in entries:
        for k, p in enumerate(paths):
            if not p:
                continue
            name = key if key == "finetune.start" else f"{key}[{k}]"
            full = cfg.resolve(p)
            shown = f"{p!r}" + (f" (= {full})" if str(full) != str(p) else "")
            if full.is_dir():
                raise FileNotFoundError(f"{where}{name}: {shown} is a directory, not a file")
            if not full.is_file():
                raise FileNotFoundError(f"{where}{name}: {shown} does not exist")


def config_from_dict(data: Dict[str, Any], base_dir: Union[str, Path] = ".",
                     source: Union[str, Path] = "") -> TrainConfig:
    """Validate a config mapping (ValueError naming the key at fault). ``source``: the file it
    came from, named in later error messages."""
    cfg = _build(TrainConfig, {} if data is None else data, "")
    cfg.base_dir = str(base_dir)
    cfg.source = str(source)
    _check(cfg)
    return cfg


def load_config(path: Union[str, Path]) -> TrainConfig:
    """Read and validate a YAML config; relative paths in it are relative to its folder.
    Errors (FileNotFoundError, ValueError) name the file and the key or the YAML line."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"config file {path} is a directory, not a YAML file")
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file (binary data), so not a YAML config") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or " ".join(str(err).split())
        raise ValueError(f"{path}: not valid YAML ({where}{problem})") from None
    if data is None:
        raise ValueError(f"{path}: empty config (give at least data.train)")
    try:
        return config_from_dict(data, path.parent, source=path)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
