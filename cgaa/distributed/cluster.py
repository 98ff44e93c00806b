"""A Dask client from a small YAML file: a LocalCluster by default, a running scheduler by
address, or Slurm/PBS batch jobs through ``dask-jobqueue``.

The file (every key optional; :data:`KEYS` lists them)::

    cluster: local              # local (default) | slurm | pbs
    address: tcp://head:8786    # or: connect to a running scheduler (then no cluster is started)
    local:                      # keywords of dask.distributed.LocalCluster
      n_workers: 4
      threads_per_worker: 1
    jobqueue:                   # keywords of dask_jobqueue.SLURMCluster / PBSCluster
      cores: 16
      processes: 4
      memory: 64GB
      walltime: "04:00:00"
      account: myproject
      job_script_prologue: ["source /path/to/venv/bin/activate"]
    jobs: 4                     # batch jobs to submit (cluster.scale(jobs=...)), or
    adapt: {minimum_jobs: 0, maximum_jobs: 8}
    retries: 2                  # a task that raises (not a refused label) is run again this often
    allowed_failures: 3         # times a task may lose its worker before the set stops (a started cluster)
    wait_for_workers: 1         # workers to wait for before submitting ...
    timeout_s: 600              # ... for at most this many seconds
    threads: 1                  # torch / OpenMM CPU threads inside each task
    chunk_frames: 4             # cgaa label: frames per task

A worker that dies (killed, out of memory, its batch job ended) is noticed by the scheduler,
which runs its tasks again on another worker (up to ``allowed_failures`` times per task); the
callers (:mod:`cgaa.distributed.label`, :mod:`cgaa.distributed.replicas`) make every task's output
atomic and skip work already done, so a task run again neither loses nor repeats a result.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Union

PathLike = Union[str, Path]
#: Cluster kinds (``cluster:``); ``address:`` connects to a running scheduler instead.
KINDS = ("local", "slurm", "pbs")
#: Keys of the configuration file.
KEYS = ("cluster", "address", "local", "jobqueue", "jobs", "adapt", "retries", "allowed_failures",
        "wait_for_workers", "timeout_s", "threads", "chunk_frames")
#: LocalCluster defaults: worker processes (a worker killed mid-task must not take the client
#: with it), one thread each (torch and OpenMM use their own threads: ``threads``).
LOCAL_DEFAULTS = {"processes": True, "threads_per_worker": 1}
INSTALL = 'pip install "cgaa[dask]"'


@dataclass
class DaskConfig:
    """The settings of :func:`open_client` (see the module docstring for each key)."""

    cluster: str = "local"
    address: Optional[str] = None
    local: Dict[str, Any] = field(default_factory=dict)
    jobqueue: Dict[str, Any] = field(default_factory=dict)
    jobs: Optional[int] = None
    adapt: Optional[Dict[str, Any]] = None
    retries: int = 2
    allowed_failures: Optional[int] = None
    wait_for_workers: int = 1
    timeout_s: float = 600.0
    threads: Optional[int] = None
    chunk_frames: Optional[int] = None
    source: str = "dask configuration"

    @property
    def task_threads(self) -> Optional[int]:
        """Threads per task: ``threads``, else the local workers' threads (1 by default), else None
        (leave torch's and OpenMM's defaults: a batch job's worker owns its cores)."""
        if self.threads is not None:
            return int(self.threads)
        if self.address is None and self.cluster == "local":
            return int(self.local.get("threads_per_worker", LOCAL_DEFAULTS["threads_per_worker"]) or 1)
        return None


def _positive(value: Any, key: str, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where}: {key} must be an integer >= {minimum}, got {value!r}")
    return value


def config_from_dict(data: Optional[Dict[str, Any]], source: str = "dask configuration") -> DaskConfig:
    """A :class:`DaskConfig` from a mapping (the parsed YAML); ValueError naming ``source`` and
    the key for an unknown key or a bad value."""
    data = dict(data or {})
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
    bad = sorted(k for k in data if k not in KEYS)
    if bad:
        raise ValueError(f"{source}: unknown key(s) {', '.join(map(str, bad))} (known: {', '.join(KEYS)})")
    cfg = DaskConfig(source=source)
    address = data.get("address")
    kind = data.get("cluster")
    if address is not None:
        if kind not in (None, "address"):
            raise ValueError(f"{source}: give cluster ({kind}) or address ({address}), not both")
        cfg.address, cfg.cluster = str(address), "address"
    else:
        kind = "local" if kind is None else str(kind).lower()
        if kind not in KINDS:
            raise ValueError(f"{source}: cluster must be one of {', '.join(KINDS)} (or give address:), not {kind!r}")
        cfg.cluster = kind
    for key in ("local", "jobqueue"):
        v = data.get(key) or {}
        if not isinstance(v, dict):
            raise ValueError(f"{source}: {key} must be a mapping of keyword arguments, got {v!r}")
        setattr(cfg, key, dict(v))
    if cfg.jobqueue and cfg.cluster not in ("slurm", "pbs"):
        raise ValueError(f"{source}: jobqueue keywords are for cluster: slurm or pbs, not {cfg.cluster}")
    if cfg.local and cfg.cluster != "local":
        raise ValueError(f"{source}: local keywords are for cluster: local, not {cfg.cluster}")
    if data.get("jobs") is not None and data.get("adapt") is not None:
        raise ValueError(f"{source}: give jobs (a fixed number of batch jobs) or adapt, not both")
    if data.get("jobs") is not None:
        cfg.jobs = _positive(data["jobs"], "jobs", source)
    if data.get("adapt") is not None:
        if not isinstance(data["adapt"], dict):
            raise ValueError(f"{source}: adapt must be a mapping (e.g. {{minimum_jobs: 0, maximum_jobs: 8}})")
        cfg.adapt = dict(data["adapt"])
    if (cfg.jobs or cfg.adapt) and cfg.cluster not in ("slurm", "pbs"):
        raise ValueError(f"{source}: jobs/adapt are for cluster: slurm or pbs, not {cfg.cluster}")
    for key, minimum in (("retries", 0), ("allowed_failures", 0), ("wait_for_workers", 0), ("threads", 1),
                         ("chunk_frames", 1)):
        if data.get(key) is not None:
            setattr(cfg, key, _positive(data[key], key, source, minimum))
    if data.get("timeout_s") is not None:
        t = data["timeout_s"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0:
            raise ValueError(f"{source}: timeout_s must be a number of seconds > 0, got {t!r}")
        cfg.timeout_s = float(t)
    return cfg


def load_config(path: Optional[PathLike] = None, *, address: Optional[str] = None) -> DaskConfig:
    """The configuration of YAML file ``path`` (None: all defaults, a LocalCluster); ``address``
    (``--scheduler``) replaces the file's cluster by that running scheduler. FileNotFoundError /
    ValueError name the file."""
    import yaml

    data: Dict[str, Any] = {}
    source = "dask configuration"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"dask configuration {p} not found")
        data = yaml.safe_load(p.read_text()) or {}
        source = str(p)
        if not isinstance(data, dict):
            raise ValueError(f"{p}: expected a mapping of settings (cluster:, address:, ...), got {type(data).__name__}")
    if address is not None:
        for key in ("cluster", "local", "jobqueue", "jobs", "adapt"):
            data.pop(key, None)
        data["address"] = address
    return config_from_dict(data, source)


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ValueError(f"running on Dask needs dask.distributed: {INSTALL}") from None
    return distributed


def make_cluster(cfg: DaskConfig):
    """The cluster ``cfg`` describes (not for ``address``): a LocalCluster, or a
    SLURMCluster/PBSCluster scaled to ``jobs`` (or adaptive). ValueError when dask-jobqueue
    is missing or a keyword is refused."""
    import dask

    distributed = _distributed()
    settings = {} if cfg.allowed_failures is None else {
        "distributed.scheduler.allowed-failures": int(cfg.allowed_failures)}
    with dask.config.set(settings):  # the scheduler reads it when it starts
        if cfg.cluster == "local":
            kw = {**LOCAL_DEFAULTS, **cfg.local}
            kw.setdefault("dashboard_address", None)
            try:
                return distributed.LocalCluster(**kw)
            except TypeError as err:
                raise ValueError(f"{cfg.source}: local: {err}") from None
        try:
            import dask_jobqueue
        except ImportError:
            raise ValueError(f"cluster: {cfg.cluster} needs dask-jobqueue: {INSTALL}") from None
        cls = dask_jobqueue.SLURMCluster if cfg.cluster == "slurm" else dask_jobqueue.PBSCluster
        try:
            cluster = cls(**cfg.jobqueue)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{cfg.source}: jobqueue ({cls.__name__}): {err}") from None
    if cfg.adapt:
        cluster.adapt(**cfg.adapt)
    else:
        cluster.scale(jobs=int(cfg.jobs or 1))
    return cluster


@contextlib.contextmanager
def open_client(cfg: Optional[DaskConfig] = None) -> Iterator[Any]:
    """A ``dask.distributed.Client`` for ``cfg`` (default: a LocalCluster of worker processes);
    the cluster it started is closed on exit (a scheduler given by address is left running).
    Waits for ``wait_for_workers`` workers, at most ``timeout_s`` seconds (then TimeoutError
    naming the cluster)."""
    cfg = cfg or DaskConfig()
    distributed = _distributed()
    cluster = None
    if cfg.address is not None:
        client = distributed.Client(cfg.address, timeout=f"{cfg.timeout_s}s")
    else:
        cluster = make_cluster(cfg)
        client = distributed.Client(cluster)
    try:
        if cfg.wait_for_workers:
            try:
                client.wait_for_workers(int(cfg.wait_for_workers), timeout=cfg.timeout_s)
            except (TimeoutError, OSError) as err:
                where = cfg.address or cfg.cluster
                raise TimeoutError(f"dask ({where}): fewer than {cfg.wait_for_workers} workers after "
                                   f"{cfg.timeout_s:g} s ({err}); check the cluster's queue or logs") from None
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def describe(client: Any) -> str:
    """'N workers, T threads at ADDRESS' for progress lines."""
    try:
        info = client.scheduler_info()
        workers = info.get("workers", {})
        threads = sum(int(w.get("nthreads", 0)) for w in workers.values())
        return f"{len(workers)} workers, {threads} threads at {info.get('address', '?')}"
    except Exception:  # a description only
        return "dask"
