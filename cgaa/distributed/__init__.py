"""Running cgaa's embarrassingly parallel jobs on Dask (``pip install "cgaa[dask]"``).

* :mod:`cgaa.distributed.cluster`: a ``dask.distributed.Client`` from a YAML file (a
  LocalCluster by default, a scheduler address, or Slurm/PBS through ``dask-jobqueue``);
* :mod:`cgaa.distributed.tasks`: a set of tasks with retries, results committed once here;
* :mod:`cgaa.distributed.label`: ``cgaa label --dask``, frames in chunks, same output bytes;
* :mod:`cgaa.distributed.replicas`: replica sets of ``cgaa simulate`` runs + one analysis
  (``cgaa replicas``), and the replica runs of ``cgaa bench observables --dask``.

Training across nodes stays on ``torchrun`` (docs/training.md); docs/scaling.md says what runs
where and how large a box fits.
"""
