"""``cgaa build``: pack an electrolyte box (recipe or explicit composition) into a PDB or
PDBx/mmCIF file."""
from __future__ import annotations

import argparse
from typing import Optional
import sys


def _pairs(text: str, what: str) -> dict:
    """'EC:3,EMC:7' -> {'EC': 3.0, 'EMC': 7.0}; a bare name gets None."""
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, _, val = item.partition(":")
        try:
            out[name.strip()] = float(val) if val else None
        except ValueError:
            raise ValueError(f"{what}: '{item}' is not NAME:NUMBER") from None
    if not out:
        raise ValueError(f"{what}: nothing given")
    return out


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "build", help="build a packed electrolyte box (PDB or PDBx/mmCIF) from a recipe or a composition",
        description="Molecule counts from the composition, box size from the density, packing "
                    "with packmol; writes a PDB with CONECT records and the periodic box, or PDBx/mmCIF "
                    "(-o box.cif; needed above 99,999 atoms, which PDB cannot number).")
    src = p.add_argument_group("composition (a recipe, or --salt/--solvents)")
    src.add_argument("--recipe", help="shipped recipe name (see --list) or a recipe YAML file")
    src.add_argument("--salt", help="salt(s): NAME or NAME:CONC[,NAME:CONC] (e.g. LiPF6 or LiPF6:1.0,LiFSI:0.2)")
    conc = src.add_mutually_exclusive_group()
    conc.add_argument("--molarity", type=float, help="salt concentration in mol/L of solution")
    conc.add_argument("--molality", type=float, help="salt concentration in mol/kg of solvent")
    src.add_argument("--solvents", help="solvent ratios NAME:RATIO,... (e.g. EC:3,EMC:7)")
    src.add_argument("--ratio", choices=("weight", "mole"), default="weight", help="solvent ratios are by weight or by mole (default weight)")
    src.add_argument("--density", type=float, help="density in g/cm^3 used to size the box (required with --solvents; overrides a recipe's)")
    src.add_argument("--temperature", type=float, default=298.15, help="temperature recorded in a custom recipe, K")
    p.add_argument("--atoms", type=int, default=3000, help="target number of atoms (default 3000)")
    p.add_argument("-o", "--output", help="output file, .pdb or .cif (PDBx/mmCIF) (default box.pdb, or box.cif "
                   "above 99,999 atoms)")
    p.add_argument("--seed", type=int, default=0, help="packmol seed (default 0)")
    p.add_argument("--tolerance", type=float, default=2.0, help="packmol minimum distance between molecules, Angstrom (default 2.0)")
    p.add_argument("--list", action="store_true", help="list shipped recipes, salts and species, then exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cgaa.systems.build import box_suffix_for, build_box, list_recipes, load_recipe, make_recipe
    from cgaa.cli import CLIError, check_output_file
    from cgaa.systems.species import get_species, list_salts, list_species

    if args.list:
        print("recipes: " + ", ".join(list_recipes()))
        print("salts:   " + ", ".join(list_salts()))
        print("species: " + ", ".join(f"{s} ({get_species(s).resname})" for s in list_species()))
        return 0
    if args.recipe and (args.salt or args.solvents):
        raise CLIError("give either --recipe or --salt/--solvents, not both")
    if args.output is not None:
        check_output_file(args.output, "-o")
    if args.recipe:
        recipe = load_recipe(args.recipe)
    elif args.solvents:
        if args.density is None:
            raise CLIError("--density (g/cm^3) is required with --solvents")
        salts = _pairs(args.salt, "--salt") if args.salt else {}
        unit = "mol/kg" if args.molality is not None else "mol/L"
        single = args.molality if args.molality is not None else args.molarity
        for k, v in salts.items():
            if v is None:
                if single is None or len(salts) > 1:
                    raise CLIError(f"--salt {k}: give its concentration as {k}:CONC or with --molarity/--molality")
                salts[k] = single
        solvents = _pairs(args.solvents, "--solvents")
        if any(v is None for v in solvents.values()):
            raise CLIError("--solvents: every solvent needs a ratio, e.g. EC:3,EMC:7")
        recipe = make_recipe(salts, solvents, concentration_unit=unit, solvent_ratio=args.ratio,
                             temperature=args.temperature, density=args.density)
    else:
        raise CLIError("give --recipe NAME or --salt/--molarity/--solvents/--density (see cgaa build --list)")
    output = args.output
    if output is None:
        output = "box" + box_suffix_for(recipe, args.atoms)
    try:
        res = build_box(recipe, args.atoms, output, seed=args.seed, tolerance=args.tolerance,
                        density=args.density if args.recipe else None)
    except RuntimeError as err:  # packmol failures: message carries its log
        raise CLIError(str(err)) from None
    print(res.summary())
    note = _default_model_note(res)
    if note:
        print(note, file=sys.stderr)
    return 0


def _default_model_note(res) -> Optional[str]:
    """The small-box warning for the shipped default model (None: it fits, or no model is shipped)."""
    from cgaa.core.modelfile import read_metadata
    from cgaa.openmm.torchforce import default_model_path
    from cgaa.systems.build import small_box_note

    try:
        path = default_model_path()
    except FileNotFoundError:
        return None
    cutoff = float(read_metadata(path)["config"]["cutoff"])
    return small_box_note(res.box_length, res.n_atoms, cutoff, model=f"the default model ({path.name})")
