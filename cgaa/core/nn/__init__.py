"""Equivariant building blocks (e3nn) for the CGAA model: radial bases, gates, convolutions."""
from cgaa.core.nn.radial import GaussianBasis, PolynomialEnvelope, safe_direction
from cgaa.core.nn.blocks import MLP, Gate, Convolution, hidden_irreps

__all__ = ["GaussianBasis", "PolynomialEnvelope", "safe_direction", "MLP", "Gate",
           "Convolution", "hidden_irreps"]
