"""Build electrolyte boxes: recipe -> molecule counts -> packmol -> PDB or PDBx/mmCIF
(OpenMM- and mdtraj-readable; :mod:`cgaa.systems.boxfile`).

Recipes: salt(s), concentration, solvent ratios, temperature, density.

A recipe is a small YAML file in ``systems/recipes/`` (or any path)::

    name: lipf6-ec-emc-1m
    salts: {LiPF6: 1.0}           # concentration of each salt
    concentration_unit: mol/L     # mol/L of solution (molarity) or mol/kg of solvent (molality)
    solvents: {EC: 3, EMC: 7}     # relative amounts ...
    solvent_ratio: weight         # ... by weight or by mole
    temperature: 298.15           # K
    density: 1.20                 # g/cm^3, literature value used to size the box
    density_reference: "..."      # where the density comes from

:func:`composition_counts` turns a recipe and a target atom count into molecule counts.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np
import yaml

from cgaa.core.resources import systems_dir
from cgaa.systems.species import Species, get_salt, get_species
from cgaa.core.units import AVOGADRO, angstrom_to_nm
from cgaa.systems.boxfile import box_suffix, check_box_file, write_box

#: cm³ per litre and g per kg (plain metric prefixes, not unit-system conversions).
_CM3_PER_L = 1000.0
_G_PER_KG = 1000.0
_CM3_PER_A3 = 1e-24

CONCENTRATION_UNITS = ("mol/L", "mol/kg")
RATIO_KINDS = ("weight", "mole")


@dataclass
class Recipe:
    """An electrolyte composition. Concentrations in ``concentration_unit``; density in
    g/cm³; temperature in K; solvent ratios relative (normalised internally)."""

    name: str
    salts: Dict[str, float]
    solvents: Dict[str, float]
    concentration_unit: str = "mol/L"
    solvent_ratio: str = "weight"
    temperature: float = 298.15
    density: float = 1.2
    density_reference: str = ""
    description: str = ""
    extra: Dict[str, object] = field(default_factory=dict)

    def validate(self) -> "Recipe":
        """Check names and numbers; raise ValueError naming the culprit. Returns self."""
        where = f"recipe '{self.name}'"
        if self.concentration_unit not in CONCENTRATION_UNITS:
            raise ValueError(f"{where}: concentration_unit '{self.concentration_unit}' is not one of {CONCENTRATION_UNITS}")
        if self.solvent_ratio not in RATIO_KINDS:
            raise ValueError(f"{where}: solvent_ratio '{self.solvent_ratio}' is not one of {RATIO_KINDS}")
        if not self.solvents:
            raise ValueError(f"{where}: no solvents given")
        for s in self.salts:
            get_salt(s)
        for s, r in self.solvents.items():
            sp = get_species(s)
            if sp.role != "solvent":
                raise ValueError(f"{where}: '{s}' is an ion ({sp.role}), not a solvent; put it in a salt")
            if not r >= 0:
                raise ValueError(f"{where}: solvent ratio of '{s}' must be >= 0, got {r}")
        if sum(self.solvents.values()) <= 0:
            raise ValueError(f"{where}: solvent ratios sum to zero")
        for s, c in self.salts.items():
            if not c >= 0:
                raise ValueError(f"{where}: concentration of '{s}' must be >= 0, got {c}")
        if not self.density > 0:
            raise ValueError(f"{where}: density must be > 0 g/cm^3, got {self.density}")
        if not self.temperature > 0:
            raise ValueError(f"{where}: temperature must be > 0 K, got {self.temperature}")
        return self

    def to_dict(self) -> Dict[str, object]:
        """Plain-dict form (as written in the YAML file)."""
        d = {"name": self.name, "description": self.description, "salts": dict(self.salts),
             "concentration_unit": self.concentration_unit, "solvents": dict(self.solvents),
             "solvent_ratio": self.solvent_ratio, "temperature": self.temperature,
             "density": self.density, "density_reference": self.density_reference}
        d.update(self.extra)
        return d


def recipes_dir() -> Path:
    """Folder of the shipped recipes."""
    return systems_dir() / "recipes"


def list_recipes() -> List[str]:
    """Names of the shipped recipes."""
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def load_recipe(name_or_path: Union[str, Path]) -> Recipe:
    """Load a shipped recipe by name (e.g. 'lipf6-ec-emc-1m') or a YAML file by path.

    Raises FileNotFoundError naming the recipe (and listing the shipped ones) when absent.
    """
    p = Path(name_or_path)
    if not (p.suffix in (".yaml", ".yml") and p.is_file()):
        p = recipes_dir() / f"{name_or_path}.yaml"
        if not p.is_file():
            raise FileNotFoundError(
                f"unknown recipe '{name_or_path}' (no such file, and not one of: {', '.join(list_recipes())})")
    try:
        data = yaml.safe_load(p.read_text())
    except UnicodeDecodeError:
        raise ValueError(f"recipe file {p}: not a text file (binary data), so not a YAML recipe") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or " ".join(str(err).split())
        raise ValueError(f"recipe file {p}: not valid YAML ({where}{problem})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"recipe file {p}: must be a mapping (name, salts, solvents, density, ...), got "
                         f"{type(data).__name__} {str(data)[:40]!r}")
    for key in ("salts", "solvents"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise ValueError(f"recipe file {p}: {key} must be a mapping NAME: AMOUNT, got {data[key]!r}")
    known = {"name", "description", "salts", "concentration_unit", "solvents", "solvent_ratio",
             "temperature", "density", "density_reference"}

    def num(key: str, value) -> float:
        try:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"recipe file {p}: {key} must be a number, got {value!r}") from None

    if "density" not in data:
        raise ValueError(f"recipe file {p}: missing key 'density' (g/cm^3, sizes the box)")
    r = Recipe(
        name=str(data.get("name", p.stem)), description=str(data.get("description", "")),
        salts={str(k): num(f"salts.{k}", v) for k, v in (data.get("salts") or {}).items()},
        solvents={str(k): num(f"solvents.{k}", v) for k, v in (data.get("solvents") or {}).items()},
        concentration_unit=str(data.get("concentration_unit", "mol/L")),
        solvent_ratio=str(data.get("solvent_ratio", "weight")),
        temperature=num("temperature", data.get("temperature", 298.15)),
        density=num("density", data["density"]),
        density_reference=str(data.get("density_reference", "")),
        extra={k: v for k, v in data.items() if k not in known})
    return r.validate()


def make_recipe(salts: Dict[str, float], solvents: Dict[str, float], *,
                concentration_unit: str = "mol/L", solvent_ratio: str = "weight",
                temperature: float = 298.15, density: float = 1.2,
                name: Optional[str] = None, density_reference: str = "user-supplied") -> Recipe:
    """A recipe from explicit values (what ``cgaa build --salt/--molarity/--solvents`` uses).

    salts: {salt name: concentration in ``concentration_unit``}; solvents: {name: ratio};
    density in g/cm³ (used to size the box); temperature in K.
    """
    if name is None:
        sal = "-".join(f"{k}{v:g}" for k, v in salts.items())
        sol = "-".join(f"{k}{v:g}" for k, v in solvents.items())
        name = f"custom-{sal}-{sol}".lower()
    return Recipe(name=name, salts=dict(salts), solvents=dict(solvents),
                  concentration_unit=concentration_unit, solvent_ratio=solvent_ratio,
                  temperature=temperature, density=density,
                  density_reference=density_reference).validate()


def _per_unit_amounts(recipe: Recipe) -> tuple[Dict[str, float], float]:
    """Moles of each species in one 'unit' of electrolyte, and that unit's volume in cm³.

    Unit = 1 L of solution (mol/L) or the solution containing 1 kg of solvent (mol/kg).
    """
    recipe.validate()
    tot = sum(recipe.solvents.values())
    if recipe.solvent_ratio == "weight":
        w = {s: r / tot for s, r in recipe.solvents.items()}
    else:
        mass = {s: r * get_species(s).molar_mass for s, r in recipe.solvents.items()}
        mtot = sum(mass.values())
        w = {s: m / mtot for s, m in mass.items()}
    salt_mass = sum(c * get_salt(s).molar_mass for s, c in recipe.salts.items())  # g per unit
    if recipe.concentration_unit == "mol/L":
        volume = _CM3_PER_L
        solvent_mass = recipe.density * volume - salt_mass
        if solvent_mass <= 0:
            raise ValueError(
                f"recipe '{recipe.name}': impossible composition: {salt_mass:.0f} g of salt per litre "
                f"exceeds the {recipe.density * volume:.0f} g that a litre weighs at density "
                f"{recipe.density} g/cm^3 (molarity too high for this density)")
    else:
        solvent_mass = _G_PER_KG
        volume = (solvent_mass + salt_mass) / recipe.density
    moles: Dict[str, float] = {}
    for s, c in recipe.salts.items():
        for ion, n in get_salt(s).ions:
            moles[ion] = moles.get(ion, 0.0) + c * n
    for s, wi in w.items():
        moles[s] = moles.get(s, 0.0) + solvent_mass * wi / get_species(s).molar_mass
    return moles, volume


def composition_counts(recipe: Recipe, n_atoms: int) -> Dict[str, int]:
    """Molecule/ion counts (species name -> count) for about ``n_atoms`` atoms.

    Counts are the recipe's amounts scaled to the target atom count and rounded; salts
    are rounded per formula unit so the box stays neutral. Raises ValueError when the box
    is too small to hold one formula unit of each salt.
    """
    if n_atoms <= 0:
        raise ValueError(f"number of atoms must be positive, got {n_atoms}")
    moles, _ = _per_unit_amounts(recipe)
    atoms_per_unit = sum(m * get_species(s).n_atoms for s, m in moles.items())
    scale = n_atoms / atoms_per_unit  # formula units per mole of the recipe unit
    counts: Dict[str, int] = {}
    for salt, c in recipe.salts.items():
        n_formula = int(round(c * scale))
        if c > 0 and n_formula == 0:
            need = int(0.5 / (c / atoms_per_unit)) + 1
            raise ValueError(
                f"recipe '{recipe.name}': {n_atoms} atoms is too small for {c} "
                f"{recipe.concentration_unit} {salt} (rounds to zero ion pairs); use at least {need} atoms")
        for ion, n in get_salt(salt).ions:
            counts[ion] = counts.get(ion, 0) + n_formula * n
    for s in recipe.solvents:
        counts[s] = counts.get(s, 0) + int(round(moles[s] * scale))
    counts = {s: n for s, n in counts.items() if n > 0}
    if not any(get_species(s).role == "solvent" for s in counts):
        raise ValueError(f"recipe '{recipe.name}': {n_atoms} atoms leaves no solvent molecule")
    return counts


def box_volume_A3(counts: Dict[str, int], density: float) -> float:
    """Cubic-box volume (Å³) that gives ``density`` (g/cm³) for these molecule counts."""
    mass_g = sum(n * get_species(s).molar_mass for s, n in counts.items()) / AVOGADRO
    return mass_g / density / _CM3_PER_A3


def describe_counts(counts: Dict[str, int], recipe: Recipe, volume_A3: float) -> Dict[str, float]:
    """Actual composition of a box: molarity (mol/L), molality (mol/kg), density (g/cm³),
    and solvent weight fractions, for the salts of ``recipe``."""
    vol_L = volume_A3 * _CM3_PER_A3 / _CM3_PER_L
    mass = {s: n * get_species(s).molar_mass / AVOGADRO for s, n in counts.items()}  # g
    solvent_mass = sum(m for s, m in mass.items() if get_species(s).role == "solvent")
    out: Dict[str, float] = {"density": sum(mass.values()) / (volume_A3 * _CM3_PER_A3)}
    for salt in recipe.salts:
        ions = get_salt(salt).ions
        n_formula = min(counts.get(ion, 0) // n for ion, n in ions)
        out[f"molarity[{salt}]"] = n_formula / AVOGADRO / vol_L
        out[f"molality[{salt}]"] = n_formula / AVOGADRO / (solvent_mass / _G_PER_KG)
    for s in recipe.solvents:
        out[f"wfrac[{s}]"] = mass.get(s, 0.0) / solvent_mass if solvent_mass else 0.0
    return out


# ----------------------------------------------------------------------------------------
# Packing

#: Bondi van der Waals radii (Å) used only for the "can the molecules fit" pre-check.
_VDW_RADIUS = {"H": 1.20, "Li": 1.82, "B": 1.92, "C": 1.70, "N": 1.55, "O": 1.52, "F": 1.47,
               "Na": 2.27, "P": 1.80, "S": 1.80}
#: Atomic spheres overlap inside molecules; ~0.5 of their summed volume is the molecular
#: vdW volume. Liquids pack at ~0.55-0.65 of that; above 0.9 packmol cannot place them.
_VDW_OVERLAP = 0.5
_MAX_PACKING = 0.9


@dataclass
class BuildResult:
    """What :func:`build_box` made. Lengths in Å, density in g/cm³, molarity in mol/L,
    molality in mol/kg."""

    path: Path
    recipe: Recipe
    counts: Dict[str, int]
    n_atoms: int
    box_length: float
    composition: Dict[str, float]
    min_distance: float
    seed: int

    def summary(self) -> str:
        """Human-readable report (counts, actual molarity/molality, density)."""
        lines = [f"wrote {self.path}: recipe {self.recipe.name}, {self.n_atoms} atoms, "
                 f"cubic box {self.box_length:.3f} A"]
        lines.append("  molecules: " + ", ".join(f"{s} {n}" for s, n in self.counts.items()))
        for k, v in self.composition.items():
            if k.startswith("molarity"):
                salt = k[len("molarity["):-1]
                lines.append(f"  {salt}: {v:.4f} mol/L (recipe {self.recipe.salts[salt]:g} "
                             f"{self.recipe.concentration_unit}), "
                             f"{self.composition[f'molality[{salt}]']:.4f} mol/kg")
        wf = ", ".join(f"{k[6:-1]} {v:.3f}" for k, v in self.composition.items() if k.startswith("wfrac"))
        lines.append(f"  solvent weight fractions: {wf}")
        lines.append(f"  density {self.composition['density']:.4f} g/cm3 "
                     f"(recipe {self.recipe.density:g}); closest atoms of different molecules "
                     f"{self.min_distance:.2f} A")
        return "\n".join(lines)


def find_packmol() -> str:
    """Path of the packmol executable (PyPI ``packmol`` ships it next to the Python
    interpreter; else PATH). FileNotFoundError if there is none."""
    cand = Path(sys.executable).parent / "packmol"
    if cand.is_file() and os.access(cand, os.X_OK):
        return str(cand)
    found = shutil.which("packmol")
    if found:
        return found
    raise FileNotFoundError("packmol executable not found (pip install packmol, or put it on PATH)")


def _template_pdb(sp: Species, path: Path) -> None:
    with open(path, "w") as fh:
        for i, (name, el, p) in enumerate(zip(sp.atom_names, sp.elements, sp.positions), start=1):
            fh.write("HETATM%5d %-4s %-3s A   1    %8.3f%8.3f%8.3f  1.00  0.00          %2s\n"
                     % (i, name if len(name) == 4 else " " + name, sp.resname, p[0], p[1], p[2], el))
        fh.write("END\n")


def _check_fits(counts: Dict[str, int], box: float, label: str) -> None:
    vol = sum(n * _VDW_OVERLAP * sum(4.0 / 3.0 * np.pi * _VDW_RADIUS[e] ** 3 for e in get_species(s).elements)
              for s, n in counts.items())
    frac = vol / box ** 3
    if frac > _MAX_PACKING:
        raise ValueError(
            f"{label}: impossible composition: the molecules cannot fit in a {box:.1f} A box "
            f"(packing fraction {frac:.2f} > {_MAX_PACKING}); is the density too high?")
    biggest = max(np.ptp(get_species(s).positions, axis=0).max() for s in counts)
    if biggest + 2.0 > box:
        raise ValueError(f"{label}: box of {box:.1f} A is smaller than the largest molecule "
                         f"({biggest:.1f} A); use more atoms")


def pack(counts: Dict[str, int], box_length: float, *, seed: int = 0, tolerance: float = 2.0,
         packmol: Optional[str] = None, timeout: float = 1800.0, label: str = "box") -> np.ndarray:
    """Pack molecules into a periodic cubic box with packmol.

    counts: species -> number (packed in this order); box_length in Å; tolerance: packmol
    minimum distance between atoms of different molecules (Å); seed for reproducibility.
    Returns positions (N, 3) in Å, molecules contiguous in the order of ``counts``.
    Raises RuntimeError with packmol's log when it fails.
    """
    exe = packmol or find_packmol()
    _check_fits(counts, box_length, label)
    L = box_length
    with tempfile.TemporaryDirectory(prefix="cgaa-packmol-") as tmp:
        tmpd = Path(tmp)
        inp = [f"tolerance {tolerance:.3f}", f"seed {int(seed) + 1}", "filetype pdb",
               "output packed.pdb", f"pbc 0. 0. 0. {L:.4f} {L:.4f} {L:.4f}", "nloop 400", ""]
        for s, n in counts.items():
            sp = get_species(s)
            _template_pdb(sp, tmpd / f"{s}.pdb")
            inp += [f"structure {s}.pdb", f"  number {n}", f"  inside box 0. 0. 0. {L:.4f} {L:.4f} {L:.4f}",
                    "end structure", ""]
        (tmpd / "pack.inp").write_text("\n".join(inp))
        try:
            with open(tmpd / "pack.inp") as fin:
                proc = subprocess.run([exe], stdin=fin, cwd=tmpd, capture_output=True, text=True,
                                      timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{label}: packmol did not finish within {timeout:.0f} s") from None
        log = proc.stdout + proc.stderr
        out = tmpd / "packed.pdb"
        ok = proc.returncode == 0 and out.is_file() and "Success!" in log
        if not ok:
            tail = "\n".join(log.strip().splitlines()[-40:])
            raise RuntimeError(f"{label}: packmol failed (exit code {proc.returncode}); its log ends:\n{tail}")
        xyz = [[float(ln[30:38]), float(ln[38:46]), float(ln[46:54])]
               for ln in out.read_text().splitlines() if ln.startswith(("ATOM", "HETATM"))]
    n_expected = sum(n * get_species(s).n_atoms for s, n in counts.items())
    if len(xyz) != n_expected:
        raise RuntimeError(f"{label}: packmol wrote {len(xyz)} atoms, expected {n_expected}")
    return np.asarray(xyz, dtype=float)


def small_box_note(box_length: float, n_atoms: int, cutoff: float, model: str = "the shipped model") -> Optional[str]:
    """A warning when a cubic box of ``box_length`` Å is too small for a model of ``cutoff`` Å
    (it needs the shortest height above twice the cutoff), naming the atom count that would fit
    (atoms scale with the volume); None when it fits."""
    if box_length > 2.0 * cutoff:
        return None
    need = int(np.ceil(n_atoms * (2.0 * cutoff * 1.02 / box_length) ** 3))
    return (f"warning: the {box_length:.1f} A box is not above twice the {cutoff:g} A cutoff of {model}: "
            f"cgaa simulate with it will refuse this box; build with --atoms {need} or more")


def atoms_in(counts: Dict[str, int]) -> int:
    """Number of atoms of a composition (species -> number of molecules)."""
    return int(sum(n * get_species(s).n_atoms for s, n in counts.items()))


def box_suffix_for(recipe: Union[Recipe, str, Path], n_atoms: int) -> str:
    """Suffix of the box file for :func:`build_box` of ``recipe`` at about ``n_atoms`` atoms:
    ``.pdb``, or ``.cif`` when the rounded molecule counts give more than 99,999 atoms."""

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    return box_suffix(atoms_in(composition_counts(recipe, n_atoms)))


def molecule_index(counts: Dict[str, int]) -> np.ndarray:
    """0-based molecule (= grain = residue) index of every atom, in packing order."""
    sizes = [get_species(s).n_atoms for s, n in counts.items() for _ in range(n)]
    return np.repeat(np.arange(len(sizes)), sizes)


def min_intermolecular_distance(positions: np.ndarray, molecule: np.ndarray, box_length: float,
                                cutoff: float = 3.0) -> float:
    """Smallest distance (Å) between atoms of different molecules, minimum image in a cubic
    box of ``box_length`` Å (returns ``cutoff`` if none is closer)."""
    from scipy.spatial import cKDTree

    wrapped = np.mod(positions, box_length)
    wrapped[wrapped >= box_length] = 0.0
    tree = cKDTree(wrapped, boxsize=box_length)
    pairs = tree.query_pairs(cutoff, output_type="ndarray")
    if len(pairs) == 0:
        return cutoff
    inter = pairs[molecule[pairs[:, 0]] != molecule[pairs[:, 1]]]
    if len(inter) == 0:
        return cutoff
    d = wrapped[inter[:, 0]] - wrapped[inter[:, 1]]
    d -= box_length * np.round(d / box_length)
    return float(np.sqrt((d * d).sum(axis=1)).min())


def make_topology(counts: Dict[str, int], box_length: Optional[float] = None):
    """OpenMM Topology: one chain, one residue per molecule/ion, template atom names and
    bonds; periodic box (cubic, ``box_length`` Å) if given."""
    from openmm import Vec3
    from openmm.app import Element, Topology
    from openmm.unit import nanometer


    top = Topology()
    chain = top.addChain()
    for s, n in counts.items():
        sp = get_species(s)
        for _ in range(n):
            res = top.addResidue(sp.resname, chain)
            atoms = [top.addAtom(name, Element.getBySymbol(el), res)
                     for name, el in zip(sp.atom_names, sp.elements)]
            for i, j in sp.bonds:
                top.addBond(atoms[i], atoms[j])
    if box_length is not None:
        L = angstrom_to_nm(box_length)
        top.setPeriodicBoxVectors([Vec3(L, 0, 0), Vec3(0, L, 0), Vec3(0, 0, L)] * nanometer)
    return top


def build_box(recipe: Union[Recipe, str, Path], n_atoms: int, output: Union[str, Path], *,
              seed: int = 0, tolerance: float = 2.0, density: Optional[float] = None,
              packmol: Optional[str] = None) -> BuildResult:
    """Build a packed, periodic electrolyte box and write it as PDB or PDBx/mmCIF.

    recipe: a :class:`Recipe`, a shipped recipe name or a YAML path; n_atoms: target atom
    count (the actual count follows from rounding the molecule counts); output: ``.pdb``
    (at most 99,999 atoms) or ``.cif`` path (:mod:`cgaa.systems.boxfile`), checked before packing;
    seed: packmol seed; tolerance: minimum packmol distance between molecules (Å);
    density: override of the recipe density (g/cm³) used to size the box.
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    if density is not None:
        recipe = Recipe(**{**recipe.__dict__, "density": float(density)}).validate()
    counts = composition_counts(recipe, n_atoms)
    check_box_file(output, atoms_in(counts))
    volume = box_volume_A3(counts, recipe.density)
    L = volume ** (1.0 / 3.0)
    pos = pack(counts, L, seed=seed, tolerance=tolerance, packmol=packmol, label=f"recipe '{recipe.name}'")
    mol = molecule_index(counts)
    dmin = min_intermolecular_distance(pos, mol, L)
    if dmin < 0.75 * tolerance:
        raise RuntimeError(f"recipe '{recipe.name}': packmol left atoms of different molecules "
                           f"{dmin:.2f} A apart (tolerance {tolerance} A); try another seed or more atoms")
    top = make_topology(counts, L)
    path = write_box(output, top, pos, remarks=[f"cgaa recipe {recipe.name} seed {seed}"])
    return BuildResult(path=path, recipe=recipe, counts=counts, n_atoms=len(pos), box_length=L,
                       composition=describe_counts(counts, recipe, volume), min_distance=dmin, seed=seed)
