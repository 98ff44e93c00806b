"""cgaa: coarse-grained all-atom machine-learning force fields for battery electrolytes.

Message passing runs on grains (molecules and ions); the model still returns a force on
every atom, split into inter-grain and intra-grain parts. Units inside: Å, eV, eV/Å.

The package follows the data flow, one stage per subpackage (docs/architecture.md):
``core`` (units, grains, neighbours, model, model files) → ``systems`` (species, boxes) →
``teacher`` (force field, sampling, labelling) → ``priors`` → ``data`` → ``train`` →
``openmm`` → ``md`` → ``analysis`` → ``bench``; ``cli``/``commands`` are the shell.

Importing ``cgaa`` is cheap (no torch, no openmm): the stages load them when imported.
"""
from cgaa._version import __version__

__all__ = ["__version__", "load_model"]


def load_model(path, device="cpu"):
    """Load a deployed CGAA model (:func:`cgaa.core.modelfile.load_model`; ``path`` a .pt file
    written by ``cgaa deploy``, ``device`` a torch device name)."""
    # imported here: `import cgaa` (the CLI, the openmm-ml entry point) must not load torch
    from cgaa.core.modelfile import load_model as _load

    return _load(path, device)
