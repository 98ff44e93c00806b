"""Chemical systems: the species library (:mod:`cgaa.systems.species`), recipes and packed boxes
(:mod:`cgaa.systems.build`, ``cgaa build``), box files (PDB/PDBx, :mod:`cgaa.systems.boxfile`)
and OpenMM topologies from ASE atoms or per-atom residue records (:mod:`cgaa.systems.topology`).

May import :mod:`cgaa.core` only.
"""
