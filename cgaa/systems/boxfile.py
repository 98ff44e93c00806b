"""Box files: a periodic system's topology (one residue per grain, bonds, box vectors) and
positions, as PDB or PDBx/mmCIF, read and written through OpenMM.

The format follows the file name: ``.pdb`` is PDB, ``.cif``/``.pdbx``/``.mmcif`` is
PDBx/mmCIF. A PDB file holds at most 99,999 atoms (five columns of atom serial number; beyond
that OpenMM writes hexadecimal serials, which mdtraj reads without any bonds), so larger boxes
are written as PDBx/mmCIF, whose bonds (``_struct_conn``) and box (``_cell``) both OpenMM and
mdtraj read back. Positions are stored to 0.001 Å (PDB) or 0.0001 Å (PDBx/mmCIF).

Free-text remarks (the recipe a box was built from) are ``REMARK`` records in PDB and ``#``
comment lines before the ``data_`` block in PDBx/mmCIF; :func:`box_remarks` reads both.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence

import numpy as np

from cgaa.core.fileio import PathLike, atomic_path

#: most atoms a PDB file can number (five-column serial field)
PDB_MAX_ATOMS = 99_999
PDB_SUFFIXES = (".pdb",)
PDBX_SUFFIXES = (".cif", ".pdbx", ".mmcif")
BOX_SUFFIXES = PDB_SUFFIXES + PDBX_SUFFIXES
#: stem of the topology file of a ``cgaa simulate`` run directory (``topology.pdb`` or ``topology.cif``)
RUN_TOPOLOGY_STEM = "topology"
#: trajectory, run record and state table of a ``cgaa simulate`` run directory: written by
#: :mod:`cgaa.md.rundir`, read by :mod:`cgaa.analysis` (defined here, which both stages import)
RUN_TRAJ_FILE = "traj.dcd"
RUN_JSON_FILE = "run.json"
RUN_STATE_FILE = "state.csv"


def box_format(path: PathLike) -> str:
    """``'pdb'`` or ``'pdbx'`` from the suffix of ``path``; ValueError naming the file otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix in PDB_SUFFIXES:
        return "pdb"
    if suffix in PDBX_SUFFIXES:
        return "pdbx"
    raise ValueError(f"{path}: unknown box file type '{suffix}'; use one of {', '.join(BOX_SUFFIXES)} "
                     "(PDB, or PDBx/mmCIF for any size)")


def box_suffix(n_atoms: int) -> str:
    """File suffix for a box of ``n_atoms``: ``.pdb`` while PDB can hold it, else ``.cif``."""
    return ".pdb" if int(n_atoms) <= PDB_MAX_ATOMS else ".cif"


def check_box_file(path: PathLike, n_atoms: int) -> None:
    """Raise ValueError (before any work is done) if ``path`` cannot hold ``n_atoms`` atoms:
    a directory, an unknown suffix, or a PDB file for more than 99,999 atoms."""
    if Path(path).is_dir():
        raise ValueError(f"{path} is a directory; give a box file name, e.g. {Path(path) / 'box.pdb'}")
    if box_format(path) == "pdb" and int(n_atoms) > PDB_MAX_ATOMS:
        raise ValueError(f"{path}: {n_atoms} atoms do not fit the PDB format (at most {PDB_MAX_ATOMS}); "
                         f"write PDBx/mmCIF instead, e.g. {Path(path).with_suffix('.cif')}")


def write_box(path: PathLike, topology, positions: Any, *, remarks: Sequence[str] = (),
              keep_ids: bool = False) -> Path:
    """Write a topology (with its periodic box) and positions as PDB or PDBx/mmCIF (by the
    suffix of ``path``), atomically: a temporary file in the same folder, then a rename.

    positions: an OpenMM Quantity, or an (N, 3) array in Å. remarks: lines of free text
    (REMARK records / ``#`` comments). keep_ids: keep the topology's residue ids and chain
    names (True for a topology read from a file) instead of renumbering from 1. PDB also gets
    CONECT records for every bond of a non-standard residue (all of cgaa's species).
    """
    from openmm.app import PDBFile, PDBxFile
    from openmm.unit import angstrom, is_quantity

    path = Path(path)
    fmt = box_format(path)
    check_box_file(path, topology.getNumAtoms())
    if not is_quantity(positions):
        positions = np.asarray(positions, dtype=float) * angstrom
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        if fmt == "pdb":
            for r in remarks:
                fh.write(f"REMARK   {r}\n")
            PDBFile.writeFile(topology, positions, fh, keepIds=keep_ids)
        else:
            for r in remarks:
                fh.write(f"# {r}\n")
            PDBxFile.writeFile(topology, positions, fh, keepIds=keep_ids)
    return path


def _atom_label(line: str) -> str:
    """'atom 11 (C1 of EC 3)' from a PDB ATOM/HETATM record."""
    serial, name, res, seq = line[6:11].strip(), line[12:16].strip(), line[17:20].strip(), line[22:26].strip()
    return f"atom {serial or '?'} ({name or '?'} of {res or '?'} {seq})".replace(" )", ")")


def _check_pdb_records(path: Path, text: str) -> None:
    """ValueError naming the line and atom of the first ATOM/HETATM record that is cut short,
    has coordinates that are not numbers or an element symbol that is no element; or naming the
    file when it has no atom records at all."""
    from ase.data import chemical_symbols

    known = {e.upper() for e in chemical_symbols[1:]}
    n = 0
    for k, line in enumerate(text.splitlines(), 1):
        if not line.startswith(("ATOM  ", "HETATM")):
            continue
        n += 1
        where = f"{path} line {k}, {_atom_label(line)}"
        if len(line.rstrip()) < 54:
            raise ValueError(f"{where}: the record ends at column {len(line.rstrip())}, before its coordinates end "
                             "(column 54): the file is truncated or not PDB")
        try:
            [float(line[c:c + 8]) for c in (30, 38, 46)]
        except ValueError:
            raise ValueError(f"{where}: coordinates {line[30:54].strip()!r} are not three numbers (columns 31-54)") from None
        symbol = line[76:78].strip()
        if symbol and symbol.upper() not in known:
            raise ValueError(f"{where}: unknown element {symbol!r} (columns 77-78)")
    if not n:
        raise ValueError(f"{path}: no ATOM/HETATM records: empty or not a PDB file")


def read_box(path: PathLike, *, require_box: bool = True):
    """Read a PDB or PDBx/mmCIF box file (by suffix) with OpenMM.

    Returns the ``openmm.app.PDBFile`` / ``PDBxFile`` (``.topology`` with the box vectors
    in nm, ``.positions``, ``.getPositions(asNumpy=True)`` in nm). FileNotFoundError, or
    ValueError naming the file and, where it is one atom's fault, the line and atom: an empty
    file, no atoms, a truncated record, coordinates that are not numbers, an unknown element,
    an atom whose element cannot be told, and (``require_box``) no periodic box."""
    from openmm.app import PDBFile, PDBxFile

    path = Path(path)
    fmt = box_format(path)
    kind = "PDB" if fmt == "pdb" else "PDBx/mmCIF"
    if path.is_dir():
        raise ValueError(f"box file {path} is a directory")
    if not path.is_file():
        raise FileNotFoundError(f"box file {path} does not exist")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file (binary data), so not a {kind} file") from None
    if not text.strip():
        raise ValueError(f"{path}: empty file, not a {kind} box")
    if fmt == "pdb":
        _check_pdb_records(path, text)
    elif not any(line.startswith("data_") for line in text.splitlines()):
        raise ValueError(f"{path}: no data_ block: not a PDBx/mmCIF file")
    reader = PDBFile if fmt == "pdb" else PDBxFile
    try:
        box = reader(str(path))
    except Exception as err:  # OpenMM raises bare Exceptions / KeyErrors for malformed files
        first = (str(err).strip().splitlines() or [""])[0]
        raise ValueError(f"{path}: not a readable {kind} file ({type(err).__name__}: {first})") from None
    top = box.topology
    if top.getNumAtoms() == 0:
        raise ValueError(f"{path}: no atoms")
    for atom in top.atoms():
        if atom.element is None:
            raise ValueError(f"{path}: atom {atom.index + 1} ({atom.name} of {atom.residue.name} {atom.residue.id}) has "
                             "no element: its element column is blank or unknown and its name does not tell")
    if require_box and top.getPeriodicBoxVectors() is None:
        record = "CRYST1 record" if fmt == "pdb" else "_cell block"
        raise ValueError(f"{path}: no periodic box (no {record}); cgaa needs a periodic box, as `cgaa build` writes")
    return box


def box_remarks(path: PathLike, max_lines: int = 50) -> List[str]:
    """Free-text remarks of a box file: PDB ``REMARK`` records, or the ``#`` comment lines
    before the PDBx/mmCIF ``data_`` block (as written by :func:`write_box`)."""
    fmt = box_format(path)
    out: List[str] = []
    with open(path) as fh:
        for _, line in zip(range(max_lines), fh):
            if fmt == "pdb":
                if line.startswith(("ATOM", "HETATM")):
                    break
                if line.startswith("REMARK"):
                    out.append(line[6:].strip())
            else:
                if line.startswith("data_"):
                    break
                if line.startswith("#"):
                    out.append(line[1:].strip())
    return out


def run_topology_name(n_atoms: int) -> str:
    """File name of a run directory's topology: ``topology.pdb``, or ``topology.cif`` above
    99,999 atoms."""
    return RUN_TOPOLOGY_STEM + box_suffix(n_atoms)


def find_run_topology(run_dir: PathLike) -> Optional[Path]:
    """The topology file (``topology.pdb`` or ``topology.cif``) of a run directory, or None."""
    for suffix in (".pdb", ".cif"):
        p = Path(run_dir) / (RUN_TOPOLOGY_STEM + suffix)
        if p.is_file():
            return p
    return None

