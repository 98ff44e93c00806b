"""Benchmarks and validation (``cgaa bench``): speed, memory, accuracy and observables.

* :mod:`cgaa.bench.speed` — time per energy+force evaluation and per OpenMM MD step
  (ns/day at 1 fs) and peak memory of the CGAA model, the all-atom baseline (the same
  network with every atom its own grain), the classical teacher in OpenMM and, when the
  optional ``sevenn`` package is installed, SevenNet-0; every configuration runs in a
  fresh subprocess so memory peaks do not mix.
  The measurements live in :mod:`cgaa.bench.speed_workers` (the subprocess worker),
  the report in :mod:`cgaa.bench.speed_report`.
* :mod:`cgaa.bench.accuracy` — CGAA and the all-atom baseline trained on the same
  teacher data with the same budget, test errors side by side.
* :mod:`cgaa.bench.observables` — teacher MD vs CGAA MD with the same protocol:
  diffusivities, Li–O(carbonyl) RDF peak and coordination number, NPT density.
* :mod:`cgaa.bench.report` — machine description, JSON/Markdown/PNG output.

Units in reports: seconds, milliseconds, ns/day, MiB, m²/s, nm, g/cm³, eV, eV/Å.
"""
