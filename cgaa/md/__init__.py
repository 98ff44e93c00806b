"""Molecular dynamics runs in OpenMM (the library behind ``cgaa simulate``).

* :mod:`cgaa.md.settings` — run settings, their defaults and what a restart may not change;
* :mod:`cgaa.md.rundir` — the run directory: file names, checkpoints with their size and SHA-256
  (verified before a restart loads them), truncation on restart, ``--out`` checks, write errors;
* :mod:`cgaa.md.inputs` — the input checked before anything runs: coordinates, molecules made
  whole, a training checkpoint given as the model, the finished run a continuation starts from;
* :mod:`cgaa.md.reporter` — state rows, trajectory frames and the safety checks at each report;
* :mod:`cgaa.md.minimize` — energy minimisation (progress, stops on Ctrl-C);
* :mod:`cgaa.md.run` — :func:`~cgaa.md.run.run_simulation`, the run as a sequence of stages (a CGAA
  System built from a model, or any given ``openmm.System``).

May import :mod:`cgaa.core`, :mod:`cgaa.systems` and :mod:`cgaa.openmm`.
"""
