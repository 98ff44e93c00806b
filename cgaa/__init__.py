"""cgaa: coarse-grained all-atom machine-learning force fields for battery electrolytes.

Message passing runs on grains (molecules and ions); the model still returns a force on
every atom, split into inter-grain and intra-grain parts. Units inside: Å, eV, eV/Å.
"""
__version__ = "0.1.0"

__all__ = ["__version__"]
