"""Regenerate ``opls_electrolyte.xml`` from the literature parameter tables below.

Run from the repository root:  ``python forcefields/teacher/make_opls_xml.py [--ion-scale 0.8]``

This is the *source* of the teacher force field: every number below is written in the
units of the paper/file it comes from (Å, kJ/mol, degrees; OPLS dihedral coefficients
V1..V4 in kJ/mol; bond constants in the k/2·(r-r0)² convention) and converted to OpenMM
units (nm, kJ/mol/nm², radians) with :mod:`cgaa.core.units`. Atom types are assigned from
the bond graph of the templates in ``systems/species/`` by the rules in :func:`atom_type`.
See README.md in this folder for the references and the documented analogues.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from xml.sax.saxutils import quoteattr

import yaml
from openmm.app import PDBFile

from cgaa.core.units import ANGSTROM_PER_NM, NM_PER_ANGSTROM

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
KCAL = 4.184  # kJ per thermochemical kcal (OPLS papers quote kcal/mol)
ION_SPECIES = {"Li", "Na", "PF6", "BF4", "FSI", "TFSI"}

# ----------------------------------------------------------------------------------------
# References (keys used in the comments written to the XML)
REFS = {
    "OPLS": "W. L. Jorgensen, D. S. Maxwell, J. Tirado-Rives, J. Am. Chem. Soc. 118, 11225 (1996)",
    "OPLS-ester": "M. L. P. Price, D. Ostrovsky, W. L. Jorgensen, J. Comput. Chem. 22, 1340 (2001): OPLS-AA esters",
    "OPLS-F": "E. K. Watkins, W. L. Jorgensen, J. Phys. Chem. A 105, 4118 (2001): OPLS-AA perfluoroalkanes/fluoroalkyl",
    "CLP-BF4-PF6": "J. N. Canongia Lopes, J. Deschamps, A. A. H. Padua, J. Phys. Chem. B 108, 2038 (2004); PF6- from Kaminski & Jorgensen, J. Chem. Soc. Perkin Trans. 2, 2365 (1999)",
    "CLP-TFSI": "J. N. Canongia Lopes, A. A. H. Padua, J. Phys. Chem. B 108, 16893 (2004): bistriflamide",
    "CLP-FSI": "CL&P il.ff database (A. A. H. Padua, J. N. Canongia Lopes et al., github.com/paduagroup/clandp), bis(fluorosulfonyl)amide entry (S, O, N shared with bistriflamide)",
    "Aqvist": "J. Aqvist, J. Phys. Chem. 94, 8021 (1990), Li+/Na+ as tabulated in CL&P il.ff",
    "analogue": "cgaa: OPLS-AA analogue (no carbonate-specific literature value used; see README.md)",
}

# ----------------------------------------------------------------------------------------
# Non-bonded: class -> (sigma / Å, epsilon / kJ/mol, reference)
LJ = {
    "C_c": (3.75, 0.105 * KCAL, "OPLS-ester"),   # carbonyl C (opls_465 analogue)
    "O_c": (2.96, 0.210 * KCAL, "OPLS-ester"),   # carbonyl O (opls_466)
    "OS": (3.00, 0.170 * KCAL, "OPLS-ester"),    # ester/ether O (opls_467)
    "CT": (3.50, 0.066 * KCAL, "OPLS"),
    "HC": (2.50, 0.030 * KCAL, "OPLS"),
    "F": (2.95, 0.053 * KCAL, "OPLS-F"),
    "Li": (2.126, 0.07648, "Aqvist"),
    "Na": (3.33, 0.01160, "Aqvist"),
    "P": (3.74, 0.83680, "CLP-BF4-PF6"),
    "FP": (3.12, 0.25520, "CLP-BF4-PF6"),
    "B": (3.58, 0.39750, "CLP-BF4-PF6"),
    "FB": (3.12, 0.25520, "CLP-BF4-PF6"),
    "NBT": (3.25, 0.71128, "CLP-TFSI"),
    "SBT": (3.55, 1.04600, "CLP-TFSI"),
    "OBT": (2.96, 0.87864, "CLP-TFSI"),
    "CBT": (3.50, 0.27614, "CLP-TFSI"),
    "F1": (2.95, 0.22175, "CLP-TFSI"),
    "FS": (2.95, 0.22175, "CLP-FSI"),
}

# Bonds: (class, class) -> (r0 / Å, k / kJ mol^-1 Å^-2 in k/2 (r-r0)^2 form, reference)
BONDS = {
    ("C_c", "O_c"): (1.229, 570.0 * KCAL * 2, "OPLS"),     # OPLS: K=570 kcal/mol/Å² in K(r-r0)^2
    ("C_c", "OS"): (1.327, 214.0 * KCAL * 2, "OPLS-ester"),
    ("CT", "OS"): (1.410, 320.0 * KCAL * 2, "OPLS"),
    ("CT", "HC"): (1.090, 340.0 * KCAL * 2, "OPLS"),
    ("CT", "CT"): (1.529, 268.0 * KCAL * 2, "OPLS"),
    ("CT", "F"): (1.332, 367.0 * KCAL * 2, "OPLS-F"),
    ("P", "FP"): (1.606, 3100.0, "CLP-BF4-PF6"),
    ("B", "FB"): (1.394, 3235.0, "CLP-BF4-PF6"),
    ("CBT", "F1"): (1.323, 3698.0, "CLP-TFSI"),
    ("CBT", "SBT"): (1.818, 1950.0, "CLP-TFSI"),
    ("OBT", "SBT"): (1.437, 5331.0, "CLP-TFSI"),
    ("NBT", "SBT"): (1.570, 3137.0, "CLP-TFSI"),
    ("FS", "SBT"): (1.575, 1879.0, "CLP-FSI"),
}

# Angles: (a, centre, b) -> (theta0 / deg, k / kJ mol^-1 rad^-2 in k/2 form, reference)
ANGLES = {
    ("O_c", "C_c", "OS"): (123.4, 83.0 * KCAL * 2, "OPLS-ester"),
    ("OS", "C_c", "OS"): (113.2, 83.0 * KCAL * 2, "analogue"),  # 360 - 2*123.4 (planar sp2 C)
    ("C_c", "OS", "CT"): (116.9, 83.0 * KCAL * 2, "OPLS-ester"),
    ("OS", "CT", "HC"): (109.5, 35.0 * KCAL * 2, "OPLS"),
    ("OS", "CT", "CT"): (109.5, 50.0 * KCAL * 2, "OPLS"),
    ("HC", "CT", "HC"): (107.8, 33.0 * KCAL * 2, "OPLS"),
    ("CT", "CT", "HC"): (110.7, 37.5 * KCAL * 2, "OPLS"),
    ("CT", "CT", "CT"): (112.7, 58.35 * KCAL * 2, "OPLS"),
    ("F", "CT", "OS"): (109.5, 50.0 * KCAL * 2, "analogue"),    # as F-CT-CT
    ("F", "CT", "CT"): (109.5, 50.0 * KCAL * 2, "OPLS-F"),
    ("F", "CT", "HC"): (107.0, 40.0 * KCAL * 2, "OPLS-F"),
    ("FB", "B", "FB"): (109.5, 669.5, "CLP-BF4-PF6"),
    ("F1", "CBT", "F1"): (107.1, 781.0, "CLP-TFSI"),
    ("F1", "CBT", "SBT"): (111.7, 694.0, "CLP-TFSI"),
    ("OBT", "SBT", "OBT"): (118.5, 969.0, "CLP-TFSI"),
    ("CBT", "SBT", "OBT"): (102.6, 870.0, "CLP-TFSI"),
    ("NBT", "SBT", "OBT"): (113.6, 789.0, "CLP-TFSI"),
    ("CBT", "SBT", "NBT"): (103.5, 764.0, "CLP-TFSI"),
    ("SBT", "NBT", "SBT"): (125.6, 671.0, "CLP-TFSI"),
    ("FS", "SBT", "OBT"): (104.1, 1077.0, "CLP-FSI"),
    ("FS", "SBT", "NBT"): (103.0, 902.0, "CLP-FSI"),
}
# F-P-F of PF6-: CL&P harmonic 90 deg, k = 1165 kJ/mol/rad². The six F are equivalent in
# the bond graph, so cis (90°) and trans (180°) pairs cannot be told apart by atom type:
# a CustomAngleForce uses the nearer of the two minima (see README.md).
PF6_ANGLE = (1165.0, "CLP-BF4-PF6")

# Proper dihedrals: (a, b, c, d) -> (V1, V2, V3, V4 / kJ/mol in the OPLS Fourier form, ref)
PROPERS = {
    ("O_c", "C_c", "OS", "CT"): (0.0, 5.124 * KCAL, 0.0, 0.0, "OPLS-ester"),
    ("OS", "C_c", "OS", "CT"): (4.669 * KCAL, 5.124 * KCAL, 0.0, 0.0, "analogue"),  # ester CT-C-OS-CT
    ("C_c", "OS", "CT", "HC"): (0.0, 0.0, 0.198 * KCAL, 0.0, "OPLS-ester"),
    ("C_c", "OS", "CT", "CT"): (0.650 * KCAL, -0.250 * KCAL, 0.670 * KCAL, 0.0, "analogue"),  # ether C-O-C-C
    ("C_c", "OS", "CT", "F"): (0.0, 0.0, 0.198 * KCAL, 0.0, "analogue"),  # as C-OS-CT-HC
    ("OS", "CT", "CT", "HC"): (0.0, 0.0, 0.468 * KCAL, 0.0, "OPLS"),
    ("OS", "CT", "CT", "OS"): (0.0, -9.8324, 1.2050, 0.0, "analogue"),  # OCCO (CL&P il.ff, AMBER98)
    ("OS", "CT", "CT", "CT"): (0.0, 0.0, 0.468 * KCAL, 0.0, "analogue"),  # as OS-CT-CT-HC
    ("OS", "CT", "CT", "F"): (0.0, 0.0, 1.9372, 0.0, "analogue"),  # as F-CF-CT-CT (CL&P)
    ("HC", "CT", "CT", "HC"): (0.0, 0.0, 0.300 * KCAL, 0.0, "OPLS"),
    ("HC", "CT", "CT", "CT"): (0.0, 0.0, 0.300 * KCAL, 0.0, "OPLS"),
    ("F", "CT", "CT", "HC"): (0.0, 0.0, 1.2134, 0.0, "OPLS-F"),
    ("OBT", "SBT", "CBT", "F1"): (0.0, 0.0, 1.4510, 0.0, "CLP-TFSI"),
    ("NBT", "SBT", "CBT", "F1"): (0.0, 0.0, 1.3220, 0.0, "CLP-TFSI"),
    ("OBT", "SBT", "NBT", "SBT"): (0.0, 0.0, -0.0150, 0.0, "CLP-TFSI"),
    ("CBT", "SBT", "NBT", "SBT"): (32.7730, -10.4200, -3.1950, 0.0, "CLP-TFSI"),
    ("FS", "SBT", "NBT", "SBT"): (13.4514, -12.3373, -8.4874, -2.8654, "CLP-FSI"),
}
# Improper for the planar carbonyl carbon (OPLS-AA improper O-C-X-X: V2 = 21 kcal/mol,
# i.e. k = 10.5 kcal/mol, periodicity 2, phase 180°).
IMPROPER_CC = (10.5 * KCAL, "OPLS")


def atom_type(species: str, elem: str, neigh: list[str], neigh_neigh_o: bool, nH: int,
              nF: int) -> tuple[str, float]:
    """Class and charge (e, unscaled) of one atom from its element and bond graph.

    ``neigh``: elements of the bonded atoms; ``neigh_neigh_o``: for H, whether its carbon
    is bonded to an oxygen; ``nH``/``nF``: H/F atoms on this (carbon) atom.
    """
    if species == "Li":
        return "Li", 1.0
    if species == "Na":
        return "Na", 1.0
    if species == "PF6":
        return ("P", 1.34) if elem == "P" else ("FP", -0.39)
    if species == "BF4":
        return ("B", 0.96) if elem == "B" else ("FB", -0.49)
    if species in ("FSI", "TFSI"):
        table = {"N": ("NBT", -0.66), "S": ("SBT", 1.02), "O": ("OBT", -0.53), "C": ("CBT", 0.35)}
        if elem == "F":
            return ("F1", -0.16) if "C" in neigh else ("FS", -0.13)
        return table[elem]
    # Carbonates (OPLS-AA ester-type charges; carbonyl C by neutrality of each molecule:
    # every C-O group CHn-O carries +0.25 like an OPLS ester alkoxy carbon group).
    if elem == "O":
        return ("O_c", -0.43) if len(neigh) == 1 else ("OS", -0.33)
    if elem == "F":
        return "F", -0.22
    if elem == "H":
        return "HC", (0.03 if neigh_neigh_o else 0.06)
    if elem == "C":
        n_o = neigh.count("O")
        if n_o == 3:
            return "C_c", 0.59
        if n_o == 1:  # alkoxy carbon: CHn(-OS) group totals +0.25 (H = +0.03 each; F = -0.22)
            # (a CH3 substituent, as in PC, is neutral as a whole: -0.18 + 3 x 0.06)
            return "CT", round(0.25 - 0.03 * nH + 0.22 * nF, 4)
        return "CT", round(-0.06 * nH, 4)  # alkyl CH3: -0.18
    raise ValueError(f"no teacher atom type for {elem} in {species}")


def torsion_terms(v: tuple[float, float, float, float]) -> list[tuple[int, float, float]]:
    """OPLS V1..V4 (kJ/mol) -> OpenMM periodic terms (n, phase / rad, k / kJ/mol)."""
    out = []
    for n, vn in enumerate(v, start=1):
        if vn != 0.0:
            out.append((n, 0.0 if n % 2 == 1 else math.pi, vn / 2.0))
    return out


def build_xml(ion_scale: float) -> str:
    """The complete ForceField XML text (OpenMM units)."""
    spec = yaml.safe_load((REPO / "systems" / "species.yaml").read_text())["species"]
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<!--",
             " cgaa teacher: classical all-atom OPLS-AA-type force field for battery electrolytes.",
             " GENERATED by forcefields/teacher/make_opls_xml.py (edit the tables there, not this file).",
             f" Ionic charges scaled by {ion_scale} (Li+, Na+, PF6-, BF4-, FSI-, TFSI-), see README.md.",
             " OPLS combination rules (geometric sigma and epsilon) and 1-4 scaling 0.5/0.5:",
             " cgaa.teacher.forcefield.create_system converts the LJ part to a geometric-mixing",
             " CustomNonbondedForce; loaded with plain ForceField.createSystem you get Lorentz-Berthelot.",
             " References:"]
    for k, v in REFS.items():
        lines.append(f"   [{k}] {v}")
    lines.append("-->")
    lines.append("<ForceField>")
    lines.append(' <Info><DateGenerated>by make_opls_xml.py</DateGenerated></Info>')
    types, residues, used_refs = [], [], set()
    charges_nb = []
    for key, entry in spec.items():
        pdb = PDBFile(str(REPO / "systems" / entry["template"]))
        atoms = list(pdb.topology.atoms())
        nb: dict[int, list] = {a.index: [] for a in atoms}
        for b in pdb.topology.bonds():
            nb[b[0].index].append(b[1])
            nb[b[1].index].append(b[0])
        res = entry["resname"]
        scale = ion_scale if key in ION_SPECIES else 1.0
        res_lines = [f'  <Residue name="{res}">']
        total = 0.0
        for a in atoms:
            el = a.element.symbol
            ne = [x.element.symbol for x in nb[a.index]]
            nno = any(y.element.symbol == "O" for x in nb[a.index] for y in nb[x.index])
            nH = ne.count("H")
            nF = ne.count("F")
            cls, q = atom_type(key, el, ne, nno, nH, nF)
            q *= scale
            total += q
            tname = f"{res}-{a.name}"
            sig, eps, ref = LJ[cls]
            used_refs.add(ref)
            types.append(f'  <Type name="{tname}" class="{cls}" element="{el}" mass="{a.element.mass._value:.4f}"/>')
            charges_nb.append(f'  <Atom type="{tname}" charge="{q:.6f}" sigma="{sig * NM_PER_ANGSTROM:.6f}" '
                              f'epsilon="{eps:.6f}"/>  <!-- {cls} [{ref}] -->')
            res_lines.append(f'   <Atom name="{a.name}" type="{tname}"/>')
        for b in pdb.topology.bonds():
            res_lines.append(f'   <Bond atomName1="{b[0].name}" atomName2="{b[1].name}"/>')
        res_lines.append("  </Residue>")
        residues.extend(res_lines)
        if abs(total - entry["charge"] * scale) > 1e-6:
            raise ValueError(f"{key}: charges sum to {total}, expected {entry['charge'] * scale}")
    lines.append(" <AtomTypes>")
    lines.extend(types)
    lines.append(" </AtomTypes>")
    lines.append(" <Residues>")
    lines.extend(residues)
    lines.append(" </Residues>")
    nm2 = ANGSTROM_PER_NM ** 2
    lines.append(" <HarmonicBondForce>")
    for (c1, c2), (r0, k, ref) in BONDS.items():
        lines.append(f'  <Bond class1="{c1}" class2="{c2}" length="{r0 * NM_PER_ANGSTROM:.5f}" k="{k * nm2:.2f}"/>  <!-- [{ref}] -->')
    lines.append(" </HarmonicBondForce>")
    lines.append(" <HarmonicAngleForce>")
    for (c1, c2, c3), (t0, k, ref) in ANGLES.items():
        lines.append(f'  <Angle class1="{c1}" class2="{c2}" class3="{c3}" angle="{math.radians(t0):.6f}" k="{k:.4f}"/>  <!-- [{ref}] -->')
    lines.append(" </HarmonicAngleForce>")
    k, ref = PF6_ANGLE
    lines.append(' <CustomAngleForce energy="0.5*k*min((theta-t1)^2, (theta-t2)^2)">  <!-- PF6- F-P-F: cis 90 deg, trans 180 deg -->')
    for p in ("k", "t1", "t2"):
        lines.append(f'  <PerAngleParameter name="{p}"/>')
    lines.append(f'  <Angle class1="FP" class2="P" class3="FP" k="{k:.2f}" t1="{math.pi / 2:.8f}" t2="{math.pi:.8f}"/>  <!-- [{ref}] -->')
    lines.append(" </CustomAngleForce>")
    lines.append(' <PeriodicTorsionForce ordering="default">')
    for cls, vals in PROPERS.items():
        *v, ref = vals
        terms = torsion_terms(tuple(v))
        if not terms:
            continue
        attrs = " ".join(f'class{i + 1}="{c}"' for i, c in enumerate(cls))
        tattrs = " ".join(f'periodicity{j}="{n}" phase{j}="{ph:.8f}" k{j}="{kk:.6f}"'
                          for j, (n, ph, kk) in enumerate(terms, start=1))
        lines.append(f"  <Proper {attrs} {tattrs}/>  <!-- [{ref}] -->")
    kimp, ref = IMPROPER_CC
    lines.append(f'  <Improper class1="C_c" class2="" class3="" class4="O_c" periodicity1="2" phase1="{math.pi:.8f}" k1="{kimp:.4f}"/>  <!-- [{ref}] -->')
    lines.append(" </PeriodicTorsionForce>")
    lines.append(' <NonbondedForce coulomb14scale="0.5" lj14scale="0.5">')
    lines.extend(charges_nb)
    lines.append(" </NonbondedForce>")
    lines.append("</ForceField>")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ion-scale", type=float, default=0.8)
    ap.add_argument("-o", "--output", default=str(HERE / "opls_electrolyte.xml"))
    args = ap.parse_args()
    Path(args.output).write_text(build_xml(args.ion_scale))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
