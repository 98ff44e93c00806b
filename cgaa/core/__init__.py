"""The core: units, grains, neighbour lists, model inputs, the CGAA network and its file format.

Every other stage may import from here; nothing here imports another stage.

* :mod:`cgaa.core.units` — the one module that converts units (Å/eV ↔ nm/kJ/mol, time, volume);
* :mod:`cgaa.core.grains` — grain perception and bookkeeping (:class:`~cgaa.core.grains.GrainMap`);
* :mod:`cgaa.core.neighbors` — periodic O(N) neighbour pairs (vesin);
* :mod:`cgaa.core.inputs` — model inputs from atoms and grains;
* :mod:`cgaa.core.nn` — e3nn building blocks; :mod:`cgaa.core.model` — ``CGAAModel``/``ModelConfig``;
* :mod:`cgaa.core.modelfile` — deployed model files (TorchScript + metadata), save and load;
  :mod:`cgaa.core.modelmeta` — their metadata entry, read without torch;
* :mod:`cgaa.core.fileio` — atomic writes and hashes; :mod:`cgaa.core.resources` — shipped data folders.
"""
