"""Names of the classical priors a model file may carry (``ModelConfig.prior``).

A prior is a list of classical *terms* (:mod:`cgaa.priors` implements each one as an OpenMM
force); a model records it by a preset name or by its terms joined with ``+``, e.g.
``"teacher_intra"`` or ``"bonds+angles+coulomb"``. This module holds only the vocabulary, so
the model and its file format can check a name without importing OpenMM or the teacher.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

#: Every prior term, in the order its forces are added to a System.
TERMS: Tuple[str, ...] = ("bonds", "angles", "custom_angles", "torsions", "intra_nonbonded", "coulomb",
                          "dispersion")

_VALENCE = ("bonds", "angles", "custom_angles", "torsions")
#: Preset name → its terms (docs/training.md explains each; :mod:`cgaa.priors` says why each exists).
PRESETS: Dict[str, Tuple[str, ...]] = {
    "none": (),
    "teacher_bonded": ("bonds", "angles"),
    "teacher_valence": _VALENCE,
    "teacher_intra": _VALENCE + ("intra_nonbonded",),
    "teacher_coulomb": _VALENCE + ("intra_nonbonded", "coulomb"),
    "teacher_dispersion": _VALENCE + ("intra_nonbonded", "coulomb", "dispersion"),
}


def prior_terms(name: Optional[str]) -> Tuple[str, ...]:
    """The terms of prior ``name`` (a preset, or terms joined by ``+``; None → ``"none"``), in
    :data:`TERMS` order; ValueError naming the known presets and terms."""
    key = "none" if name is None else str(name).strip().lower()
    if key in PRESETS:
        return PRESETS[key]
    parts = [p.strip() for p in key.split("+")]
    unknown = [p for p in parts if p not in TERMS]
    if unknown or not parts:
        raise ValueError(f"unknown prior {name!r} (known: {', '.join(PRESETS)}; or terms joined by '+': "
                         f"{', '.join(TERMS)})")
    return tuple(t for t in TERMS if t in parts)


def check_prior(name: Optional[str]) -> str:
    """The canonical name of prior ``name``: its preset name when its terms are a preset's, else
    its terms joined by ``+`` in :data:`TERMS` order; ValueError as :func:`prior_terms`."""
    terms = prior_terms(name)
    for preset, t in PRESETS.items():
        if t == terms:
            return preset
    return "+".join(terms)


__all__ = ["PRESETS", "TERMS", "check_prior", "prior_terms"]
