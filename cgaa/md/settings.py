"""Settings of a run (``run_simulation`` / ``cgaa simulate``): the allowed values, the
defaults, what a restart may not change, and :func:`resolve_settings`, which merges the
given ones with a restart's saved ones (run.json) and the defaults and checks them.

Settings are a plain dict (run.json stores it as it is). The ones in
:data:`CGAA_SYSTEM_SETTINGS` build the CGAA System from a model; a run of a given
``openmm.System`` (``run_simulation(system=...)``) must leave them unset and records them
as None.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from cgaa.core import units
from cgaa.openmm.mts import check_substeps


ENSEMBLES = ("nvt", "npt", "nve")


PLATFORMS = ("Reference", "CPU", "CUDA", "OpenCL")


PRECISIONS = ("single", "mixed", "double")


#: Defaults of :func:`run_simulation` (None there means: this value, or the saved one on restart).
DEFAULTS: Dict[str, Any] = {
    "ensemble": "nvt",
    "temperature": 298.15,
    "pressure": 1.0,
    "timestep_fs": 1.0,
    "steps": 10000,
    "report_interval": None,  # min(1000, max(1, steps // 10)): see :func:`default_report_interval`
    "checkpoint_interval": 10000,
    "platform": "CPU",
    "precision": "mixed",
    "seed": 0,
    "minimize": True,
    "minimize_iterations": 1000,
    "friction_per_ps": 1.0,
    "barostat_interval": 25,
    "max_force": 1.0e5,
    "max_temperature": None,
    "n_atoms": 3000,
    "constraints": "hbonds",
    "bond_guard": "auto",
    "contact_guard": True,
    "fast_substeps": 1,
    "thermalize_ps": 1.0,
    "thermalize_friction_per_ps": 10.0,
}


#: The longest default report interval (steps); shorter runs report 10 times (:func:`default_report_interval`).
MAX_DEFAULT_REPORT_INTERVAL = 1000


#: Settings a continuation (``continue_from=``, ``cgaa simulate --continue-from``) takes from the
#: run it continues unless given: the dynamics of that run and where it ran.
INHERITED_BY_CONTINUATION = ("ensemble", "temperature", "pressure", "timestep_fs", "seed", "friction_per_ps",
                             "barostat_interval", "constraints", "bond_guard", "contact_guard", "fast_substeps",
                             "platform", "precision", "max_force", "max_temperature")


#: Settings that define the dynamics: a restart may not change them.
FIXED_ON_RESTART = ("ensemble", "temperature", "pressure", "timestep_fs", "report_interval",
                     "seed", "friction_per_ps", "barostat_interval", "constraints",
                     "bond_guard", "contact_guard", "fast_substeps")


#: Settings that only shape the CGAA System built from a model (H-bond constraints, the bond
#: and contact guards). A given System (``run_simulation(system=...)``) is run as it is: these
#: must then be left unset (ValueError otherwise) and are recorded as None.
CGAA_SYSTEM_SETTINGS = ("constraints", "bond_guard", "contact_guard")


# ---------------------------------------------------------------------------- settings
def default_report_interval(steps: int) -> int:
    """``min(1000, max(1, steps // 10))``: a run reports at least about 10 times (a 200-step
    run every 20 steps), a long one every 1000 steps."""
    return min(MAX_DEFAULT_REPORT_INTERVAL, max(1, int(steps) // 10))


def check_bond_guard(value: Any) -> Any:
    """``"auto"`` or a bool (numpy bools become bools); ValueError naming the allowed values
    otherwise (a string such as ``"off"`` would otherwise switch the guard on)."""
    if isinstance(value, str) and value == "auto":
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"bond_guard must be 'auto', True or False, not {value!r}")


def resolve_settings(given: Dict[str, Any], saved: Optional[Dict[str, Any]] = None, *,
                     given_system: bool = False) -> Dict[str, Any]:
    """Merge user settings (None = unset) with the saved ones (restart) and the defaults;
    ValueError naming any bad value, or a dynamics setting a restart tries to change.

    given_system: the run integrates a given ``openmm.System``: the settings of
    :data:`CGAA_SYSTEM_SETTINGS` must be unset (ValueError naming the first one given) and
    come out as None."""
    if given_system:
        for k in CGAA_SYSTEM_SETTINGS:
            if given.get(k) is not None:
                raise ValueError(f"{k}={given[k]!r}: {k} shapes the CGAA System built from a model; a given "
                                 "openmm.System (system=) is run as it is, so leave it unset (add constraints "
                                 "or restraints to the System itself)")
    elif given.get("bond_guard") is not None:
        check_bond_guard(given["bond_guard"])
    s: Dict[str, Any] = {}
    for k, default in DEFAULTS.items():
        v = given.get(k)
        if saved is not None and k in saved:
            if v is not None and k in FIXED_ON_RESTART and v != saved[k]:
                raise ValueError(f"restart: {k} was {saved[k]!r} in this run, cannot change it to {v!r} "
                                 "(start a new run directory instead)")
            s[k] = saved[k] if v is None else v
        else:
            s[k] = default if v is None else v
    if given_system:
        for k in CGAA_SYSTEM_SETTINGS:
            s[k] = None
    elif saved is not None and "contact_guard" not in saved and given.get("contact_guard") is None:
        s["contact_guard"] = False  # a run from before the contact guard continues without one
    if s["ensemble"] not in ENSEMBLES:
        raise ValueError(f"ensemble must be one of {ENSEMBLES}, not {s['ensemble']!r}")
    if given.get("pressure") is not None and s["ensemble"] != "npt":
        raise ValueError(f"pressure={given['pressure']!r} is only used with ensemble='npt' (a barostat); this "
                         f"run's ensemble is {s['ensemble']!r}: leave pressure unset or run ensemble='npt'")
    if not float(s["timestep_fs"]) > 0:
        raise ValueError(f"timestep_fs must be > 0, got {s['timestep_fs']}")
    if given.get("time_ps") is not None:
        if given.get("steps") is not None:
            raise ValueError("give steps or time_ps, not both")
        t_ps, dt_ps = float(given["time_ps"]), float(s["timestep_fs"]) * units.PS_PER_FS
        if not t_ps >= 0:
            raise ValueError(f"time_ps must be >= 0, got {given['time_ps']}")
        s["steps"] = int(round(t_ps / dt_ps))
        if t_ps > 0 and s["steps"] == 0:
            raise ValueError(f"time_ps={t_ps:g} ps is less than half a time step (timestep_fs={float(s['timestep_fs']):g} "
                             "fs): the run would have 0 steps; give a longer time_ps or steps")
    if not given_system:
        _check_cgaa_system_settings(s)
    if s["platform"] not in PLATFORMS:
        raise ValueError(f"platform must be one of {PLATFORMS}, not {s['platform']!r}")
    if s["precision"] not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {s['precision']!r}")
    for k in ("temperature", "friction_per_ps", "max_force"):
        if not float(s[k]) > 0:
            raise ValueError(f"{k} must be > 0, got {s[k]}")
    if s["ensemble"] == "npt" and not float(s["pressure"]) > 0:
        raise ValueError(f"pressure must be > 0 bar for npt, got {s['pressure']}")
    for k in ("steps",):
        if int(s[k]) < 0:
            raise ValueError(f"{k} must be >= 0, got {s[k]}")

    s["fast_substeps"] = check_substeps(s["fast_substeps"])
    if s["report_interval"] is None:
        s["report_interval"] = default_report_interval(int(s["steps"]))
    for k in ("report_interval", "checkpoint_interval", "barostat_interval", "n_atoms"):
        if int(s[k]) < 1:
            raise ValueError(f"{k} must be >= 1, got {s[k]}")
    if saved is None and given.get("report_interval") is not None and 0 < int(s["steps"]) < int(s["report_interval"]):
        raise ValueError(f"report_interval={int(s['report_interval'])} is longer than the run ({int(s['steps'])} "
                         "steps): only step 0 would be reported; give a report_interval of at most the run's "
                         f"steps (or leave it unset: {default_report_interval(int(s['steps']))} for this run)")
    if not float(s["thermalize_ps"]) >= 0:
        raise ValueError(f"thermalize_ps must be >= 0, got {s['thermalize_ps']}")
    if not float(s["thermalize_friction_per_ps"]) > 0:
        raise ValueError(f"thermalize_friction_per_ps must be > 0, got {s['thermalize_friction_per_ps']}")
    if s["max_temperature"] is None:
        t = float(s["temperature"])
        s["max_temperature"] = max(3.0 * t, t + 1000.0)
    return s


def _check_cgaa_system_settings(s: Dict[str, Any]) -> None:
    """Check and normalise (in place) the settings of :data:`CGAA_SYSTEM_SETTINGS`."""
    s["constraints"] = str(s["constraints"]).lower()
    if s["constraints"] not in ("hbonds", "none"):
        raise ValueError(f"constraints must be 'hbonds' or 'none', not {s['constraints']!r}")
    s["bond_guard"] = check_bond_guard(s["bond_guard"])
    if not isinstance(s["contact_guard"], (bool, np.bool_)):
        raise ValueError(f"contact_guard must be True or False, not {s['contact_guard']!r}")
    s["contact_guard"] = bool(s["contact_guard"])
