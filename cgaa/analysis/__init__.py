"""Transport and structure analysis of electrolyte MD trajectories.

Works on any trajectory mdtraj reads (DCD/XTC + PDB topology) from ``cgaa simulate``
or a plain OpenMM script, written *unwrapped* (``enforcePeriodicBox=False``). Foreign
trajectories are checked, not trusted: the time between frames must come from a record
cgaa can vouch for (the run's run.json, an OpenMM DCD header, frame times the file
vouches for) or from ``dt_ps``; length units, atom count and order, and truncated files
are checked too (:mod:`cgaa.analysis.io`, :mod:`cgaa.analysis.checks`).

High level::

    from cgaa.analysis import analyze, write_report
    res = analyze("traj.dcd", "topology.pdb", temperature_K=298.15, viscosity_Pa_s=2.5e-3)
    write_report(res, "analysis/")

Building blocks (positions nm, times ps, D m²/s, σ S/m): :func:`msd_fft`,
:func:`remove_com_drift`, :func:`detect_wrapping`, :func:`unwrap`,
:func:`diffusion_coefficient`, :func:`yeh_hummer_correction`,
:func:`nernst_einstein_conductivity`, :func:`einstein_helfand_conductivity`,
:func:`haven_ratio`, :func:`transference_numbers`, :func:`rdf`, :func:`shell_composition`, :func:`identify_species`,
:func:`classify_oxygens`, :func:`mean_se`, :func:`stability_check`. Methods and references: docs/analysis.md.
"""
from cgaa.analysis.conductivity import (EinsteinHelfandResult, charge_displacement, einstein_helfand_conductivity,
                                        haven_ratio, nernst_einstein_conductivity,
                                        transference_numbers)
from cgaa.analysis.diffusion import (YEH_HUMMER_XI, DiffusionResult, FitWindow, box_length_for_correction,
                                     diffusion_coefficient, fit_msd, loglog_slope, select_fit_window,
                                     yeh_hummer_correction)
from cgaa.analysis.checks import check_atom_order, check_elements
from cgaa.analysis.io import (DCDHeader, LoadedTrajectory, RunRecords, dcd_timestep_ps, find_run_files,
                              frame_time_step, load_trajectory, read_dcd_header, read_run_records,
                              read_state_temperature, read_trajectory)
from cgaa.analysis.msd import (WrapCheck, WrappedTrajectoryError, detect_wrapping, molecule_centers, msd_direct,
                               msd_fft, remove_com_drift, system_com, unwrap)
from cgaa.analysis.pipeline import AnalysisResult, analyze, analyze_run_dir
from cgaa.analysis.report import plot_msd, plot_rdf, plot_shell, result_to_dict, write_report
from cgaa.analysis.stability import StabilityResult, stability_check
from cgaa.analysis.species import Species, classify_oxygens, identify_species, infer_bonds
from cgaa.analysis.stats import mean_se
from cgaa.analysis.structure import RDFResult, ShellResult, first_peak_and_minimum, rdf, shell_composition

__all__ = [
    "AnalysisResult", "DCDHeader", "DiffusionResult", "LoadedTrajectory", "RunRecords", "EinsteinHelfandResult", "FitWindow", "RDFResult", "ShellResult",
    "Species", "StabilityResult", "WrapCheck", "WrappedTrajectoryError", "YEH_HUMMER_XI",
    "analyze", "analyze_run_dir", "box_length_for_correction", "charge_displacement", "check_atom_order",
    "check_elements", "classify_oxygens", "frame_time_step", "read_dcd_header", "read_run_records", "read_trajectory",
    "dcd_timestep_ps", "detect_wrapping", "diffusion_coefficient", "einstein_helfand_conductivity",
    "find_run_files", "first_peak_and_minimum", "fit_msd", "haven_ratio", "identify_species", "infer_bonds",
    "load_trajectory", "loglog_slope", "mean_se", "molecule_centers", "msd_direct", "msd_fft", "nernst_einstein_conductivity",
    "plot_msd", "plot_rdf", "plot_shell", "rdf", "read_state_temperature", "remove_com_drift", "result_to_dict",
    "select_fit_window", "shell_composition", "stability_check", "system_com", "transference_numbers", "unwrap", "write_report", "yeh_hummer_correction",
]
