"""cgaa: coarse-grained all-atom machine-learning force fields for battery electrolytes.

Message passing runs on grains (molecules and ions); the model still returns a force on
every atom, split into inter-grain and intra-grain parts. Units inside: Å, eV, eV/Å.
"""
__version__ = "0.1.0"

__all__ = ["__version__", "load_model"]


def load_model(path, device="cpu"):
    """Load a deployed CGAA model (see :func:`cgaa.deploy.load_model`)."""
    from cgaa.deploy import load_model as _load

    return _load(path, device)
