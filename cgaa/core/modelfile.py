"""Export a CGAA model as TorchScript with metadata, and load it back with checks.

A deployed file is a TorchScript archive of :class:`cgaa.core.model.CGAAModel` (topology
independent) with ``cgaa_metadata.json`` inside: format and package versions, units,
cutoff, elements, grain types, force mode and the full model config, so a later load can
check compatibility and rebuild the eager model (for fine-tuning) from its weights.
"""
from __future__ import annotations

import datetime
import errno
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch

from cgaa._version import __version__
from cgaa.core.fileio import atomic_path
from cgaa.core.model import CGAAModel, ModelConfig
from cgaa.core.modelmeta import METADATA_FILE, archive_metadata
from cgaa.core.inputs import grain_type_indices, species_indices

FORMAT_VERSION = 1
#: ``format`` of a training checkpoint of ``cgaa train`` (a torch.save dict), which is not a
#: deployed model: stages that must tell the two apart (``cgaa simulate --model best.pt``) read it here;
#: the prefix matches a checkpoint of any format version.
TRAINING_CHECKPOINT_PREFIX = "cgaa-checkpoint-"
TRAINING_CHECKPOINT_FORMAT = TRAINING_CHECKPOINT_PREFIX + "1"
UNITS = {"length": "angstrom", "energy": "eV", "forces": "eV/angstrom"}


def model_metadata(model: CGAAModel, extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Metadata describing ``model``: versions, units, cutoff, vocabulary, force mode, config."""
    from ase.data import chemical_symbols

    c = model.config
    meta = {
        "format_version": FORMAT_VERSION,
        "cgaa_version": __version__,
        "torch_version": torch.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "units": dict(UNITS),
        "cutoff": c.cutoff,
        "elements": list(c.elements),
        "element_symbols": [chemical_symbols[z] for z in c.elements],
        "grain_types": [{"key": k, "name": n} for k, n in zip(c.grain_types, c.grain_type_names)],
        "force_mode": c.force_mode,
        "all_atom": c.all_atom,
        "dtype": str(model.masses.dtype).replace("torch.", ""),
        "config": c.to_dict(),
    }
    if extra:
        meta.update(extra)
    return meta


def save_model(model: CGAAModel, path: Union[str, Path], extra: Optional[Dict[str, Any]] = None) -> Path:
    """Script ``model`` with TorchScript and save it with metadata to ``path`` (atomically)."""
    if Path(path).is_dir():
        raise IsADirectoryError(errno.EISDIR, "the model output is a directory, not a file", str(path))
    model = model.eval()
    scripted = torch.jit.script(model)
    write_scripted(scripted, path, model_metadata(model, extra))
    return Path(path)


def write_scripted(module, path: Union[str, Path], meta: Dict[str, Any]) -> None:
    """Save a scripted module with ``meta`` as its cgaa metadata, atomically (an error leaves
    a file already at ``path`` as it was)."""
    if Path(path).is_dir():
        raise IsADirectoryError(errno.EISDIR, "the model output is a directory, not a file", str(path))
    with atomic_path(path) as tmp:
        torch.jit.save(module, str(tmp), _extra_files={METADATA_FILE: json.dumps(meta, indent=1)})


@dataclass
class DeployedModel:
    """A loaded deployed model: the TorchScript module, its metadata and config."""

    module: torch.jit.ScriptModule
    metadata: Dict[str, Any]
    path: Optional[Path] = None

    @property
    def config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.metadata["config"])

    def __call__(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        return self.module(*args, **kwargs)

    def to_eager(self) -> CGAAModel:
        """Rebuild the (trainable) eager model with the deployed weights."""
        model = CGAAModel(self.config).to(self.module.masses.dtype)
        model.load_state_dict(self.module.state_dict())
        return model

    def check_covers(self, numbers: Sequence[int], grain_map=None) -> None:
        """Raise ValueError naming the first element or grain type this model does not know."""

        c = self.config
        species_indices(numbers, c.elements)
        if grain_map is not None:
            grain_type_indices(grain_map, c.grain_types, c.grain_type_names)


def read_metadata(path: Union[str, Path]) -> Dict[str, Any]:
    """Metadata of a deployed model file, read from its archive without loading the TorchScript
    module (milliseconds instead of a second; :func:`cgaa.core.modelmeta.archive_metadata`); anything
    unusual goes through the full loader, whose errors name what is wrong with the file."""
    meta = archive_metadata(path)
    if meta is not None:
        return meta
    return _load(path, "cpu")[1]


def inference_only(module: torch.nn.Module) -> torch.nn.Module:
    """Switch off ``requires_grad`` of every parameter of ``module`` (in place; returned).

    Forces are gradients with respect to positions alone; with trainable parameters autograd
    also computed every weight's gradient at each call (17 % of an evaluation of the shipped
    model, docs/benchmarks.md). Training
    never uses a deployed module (fine-tuning rebuilds an eager model, :meth:`DeployedModel.to_eager`).
    """
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _not_a_model(path: Path) -> str:
    """What ``path`` is, when it is not a TorchScript archive with cgaa metadata."""
    import zipfile

    if path.stat().st_size == 0:
        return f"{path} is empty (0 bytes), not a cgaa model file"
    try:
        with zipfile.ZipFile(str(path)) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return f"{path} is not a cgaa model file (not a TorchScript archive, not even a zip file: truncated, or another kind of file?)"
    if any(n.endswith("/data.pkl") for n in names) and not any("/code/" in n for n in names):
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=False)
        except Exception:  # noqa: BLE001 - a torch file we cannot read: say what it looks like
            state = None
        if isinstance(state, dict) and str(state.get("format", "")).startswith("cgaa-checkpoint"):
            return (f"{path} is a training checkpoint, not a deployed model: deploy it first with "
                    f"`cgaa deploy {path} -o model.pt`")
        return (f"{path} is a torch.save file, not a deployed model (a TorchScript archive); deploy a training "
                "checkpoint with `cgaa deploy CHECKPOINT -o model.pt`")
    return f"{path} is a zip archive but not a TorchScript model (no code/ and constants.pkl inside)"


def _load(path: Union[str, Path], device: Union[str, torch.device]):
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"model {path} is a directory, not a model file")
    if not path.is_file():
        raise FileNotFoundError(f"no model file {path}")
    extra = {METADATA_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except Exception as err:  # noqa: BLE001 - RuntimeError mostly; OSError, EOFError for cut files
        raise ValueError(_not_a_model(path)) from None
    if not extra[METADATA_FILE]:
        raise ValueError(f"{path} has no {METADATA_FILE}: a TorchScript file, but not a cgaa deployed model")
    try:
        meta = json.loads(extra[METADATA_FILE])
    except ValueError as err:
        raise ValueError(f"{path}: its {METADATA_FILE} is not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: its {METADATA_FILE} is not a JSON object")
    return inference_only(module), meta


def check_metadata(meta: Dict[str, Any], path: Union[str, Path] = "model") -> None:
    """Raise ValueError if ``meta`` is not a deployed-model metadata this cgaa can use."""
    fv = meta.get("format_version")
    if not isinstance(fv, int) or fv > FORMAT_VERSION:
        raise ValueError(f"{path}: model format version {fv} is newer than this cgaa supports "
                         f"({FORMAT_VERSION}); upgrade cgaa")
    if meta.get("units") != UNITS:
        raise ValueError(f"{path}: model units {meta.get('units')} differ from cgaa's {UNITS}")
    major = str(meta.get("cgaa_version", "0")).split(".")[0]
    if major != __version__.split(".")[0]:
        raise ValueError(f"{path}: made by cgaa {meta.get('cgaa_version')}, incompatible with {__version__}")
    if "config" not in meta:
        raise ValueError(f"{path}: metadata has no model config")


def load_model(path: Union[str, Path], device: Union[str, torch.device] = "cpu") -> DeployedModel:
    """Load a deployed model, checking format, units and version (ValueError says what does not match)."""
    module, meta = _load(path, device)
    check_metadata(meta, path)
    return DeployedModel(module=module, metadata=meta, path=Path(path))


def is_deployed_model(path: Union[str, Path]) -> bool:
    """Whether ``path`` is a deployed model (a TorchScript archive with cgaa metadata)
    rather than a training checkpoint."""
    import zipfile

    try:
        with zipfile.ZipFile(str(path)) as z:
            return any(n.endswith("extra/" + METADATA_FILE) for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
