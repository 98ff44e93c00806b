"""Quantum-level teachers as ordinary ASE calculators, from optional PyPI packages.

* :func:`sevennet_d3` — SevenNet-0 (``sevenn``; the universal MLIP of the CGAA method's own group,
  trained on PBE/PBE+U data of the Materials Project, its weights ship inside the package) plus
  Grimme's D3 dispersion with Becke–Johnson damping for PBE (``dftd3``, the DFT-D3 project's
  Python API): the default quantum-level teacher (``cgaa label -c sevenn``). D3(BJ): Grimme,
  Ehrlich, Goerigk, J. Comput. Chem. 32, 1456 (2011); SevenNet-0: Park et al., J. Chem. Theory
  Comput. 20, 4857 (2024). Install with ``pip install "cgaa[sevenn]"``.
* :func:`gfn2_xtb` — GFN2-xTB (``tblite``), an independent semi-empirical quantum reference for
  validation sets and spot checks (Bannwarth, Ehlert, Grimme, J. Chem. Theory Comput. 15, 1652
  (2019)). Install with ``pip install "cgaa[xtb]"``.

All return energies in eV, forces in eV/Å and stresses in eV/Å³ (ASE's units and sign), so no
conversion is needed at this boundary. Both run offline: no weights are fetched at run time.
Measured cost per frame on this project's machine: docs/data.md.
"""
from __future__ import annotations

import importlib
from typing import Any

#: Extras that install each teacher (``pip install "cgaa[<extra>]"``).
EXTRAS = {"sevenn": "sevenn", "xtb": "xtb"}


def _require(module: str, teacher: str, extra: str):
    """Import ``module`` or raise ValueError saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ValueError(f"calculator '{teacher}' needs the optional package of `pip install \"cgaa[{extra}]\"` "
                         f"(import {module} failed: {err}); it runs on the pinned torch") from None


def sevennet_d3(model: str = "7net-0", device: str = "cpu", d3: bool = True, functional: str = "PBE",
                damping: str = "d3bj", **kwargs: Any):
    """SevenNet-0 (+ D3(BJ) dispersion) as one ASE calculator (energy eV, forces eV/Å, stress eV/Å³).

    model: a SevenNet checkpoint name known to ``sevenn`` (``7net-0``: SevenNet-0, shipped in the
    package); device: torch device; d3: add the D3 correction (``functional``, ``damping`` as
    ``dftd3.ase.DFTD3`` takes them: PBE, as SevenNet-0's training data); kwargs go to
    ``SevenNetCalculator``."""
    calc_mod = _require("sevenn.calculator", "sevenn", EXTRAS["sevenn"])
    ml = calc_mod.SevenNetCalculator(model, device=device, **kwargs)
    if not d3:
        return ml
    d3_mod = _require("dftd3.ase", "sevenn", EXTRAS["sevenn"])
    from ase.calculators.mixing import SumCalculator

    return SumCalculator([ml, d3_mod.DFTD3(method=functional, damping=damping)])


def gfn2_xtb(method: str = "GFN2-xTB", charge: float = 0.0, accuracy: float = 1.0, max_iterations: int = 250,
             **kwargs: Any):
    """GFN2-xTB (tblite) as an ASE calculator (energy eV, forces eV/Å; stress for periodic cells).

    charge: the frame's total charge (e; 0 for a neutral electrolyte box); accuracy and
    max_iterations: tblite's SCC settings; kwargs go to ``tblite.ase.TBLite``."""
    mod = _require("tblite.ase", "xtb", EXTRAS["xtb"])
    return mod.TBLite(method=method, charge=charge, accuracy=accuracy, max_iterations=max_iterations,
                      verbosity=0, **kwargs)


__all__ = ["EXTRAS", "gfn2_xtb", "sevennet_d3"]
