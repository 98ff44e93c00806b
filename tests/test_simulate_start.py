"""How a run starts and what its summary says: a fresh box is thermalised before step 0 and
starts at its temperature; a continuation (``continue_from`` / ``--continue-from``) starts
exactly where the run it continues ended (no minimisation, no new velocities); short runs
get a report interval that fits them and a summary of the run itself."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
pytest.importorskip("openmmtorch")
from openmm import unit  # noqa: E402

from cgaa.md.reporter import degrees_of_freedom  # noqa: E402
from cgaa.md.rundir import load_state_csv  # noqa: E402
from cgaa.md.run import run_simulation  # noqa: E402
from cgaa.md.settings import default_report_interval, resolve_settings  # noqa: E402
from test_openmm import small_system, stabilizer  # noqa: E402
from test_simulate import _dcd, _run, system_parts  # noqa: E402,F401

T = 298.15


def _dof(parts):
    from cgaa.openmm import create_system

    model, top, pos = parts
    return degrees_of_freedom(create_system(top, model, constraints="hbonds"))  # 3*68 - 24 - 3 = 177


def _fresh(parts, out, **kw):
    model, top, pos = parts
    args = dict(platform="Reference", temperature=T, steps=300, report_interval=5, checkpoint_interval=300,
                minimize_iterations=1000, progress=False, customize_system=stabilizer(pos), seed=11)
    args.update(kw)
    return run_simulation((top, pos), model, out, **args)


def test_fresh_box_starts_at_its_temperature(tmp_path, system_parts):  # noqa: F811
    """After minimisation a box at rest at its minimum loses half of the drawn kinetic
    energy to the potential within a few tens of fs (the old start: 188 K at 25 fs for the
    1000-atom electrolyte at 298 K). The default thermalisation (1 ps Langevin at 10/ps
    before step 0) gives a run whose first reports and production mean are at the target.

    Tolerance: the kinetic temperature of N_dof degrees of freedom fluctuates by
    σ = T·sqrt(2/N_dof) (177 here: σ = 31.7 K); every one of the first reports (first 50 fs)
    must be above T − 3σ, and the mean of the production reports (correlated samples, so
    its spread is at most σ) within 3σ of T."""
    dof = _dof(system_parts)
    assert dof == 177
    sigma = T * math.sqrt(2.0 / dof)
    res = _fresh(system_parts, tmp_path / "new")
    st = load_state_csv(tmp_path / "new" / "state.csv")
    t = st["temperature_K"]
    assert st["step"][0] == 0 and st["time_ps"][0] == 0.0  # step 0 is the end of the thermalisation
    early = t[st["step"] <= 50]
    assert early.min() > T - 3 * sigma, early
    assert abs(t.mean() - T) < 3 * sigma, t.mean()
    assert res.mean_temperature_K == pytest.approx(t.mean())
    th = json.loads((tmp_path / "new" / "run.json").read_text())["history"][0]["thermalization"]
    assert th["steps"] == 1000 and th["friction_per_ps"] == 10.0 and th["in_outputs"] is False
    assert abs(th["temperature_mean_second_half_K"] - T) < 3 * sigma
    info = json.loads((tmp_path / "new" / "run.json").read_text())
    assert info["settings"]["thermalize_ps"] == 1.0 and info["settings"]["thermalize_friction_per_ps"] == 10.0
    # the old start (no thermalisation): the first reports fall far below the target
    _fresh(system_parts, tmp_path / "old", thermalize_ps=0.0)
    old = load_state_csv(tmp_path / "old" / "state.csv")
    assert old["temperature_K"][old["step"] <= 50].min() < T - 3 * sigma, old["temperature_K"][:12]


def test_continuation_starts_where_the_run_ended(tmp_path, system_parts, capsys):  # noqa: F811
    """continue_from: positions, velocities and box of final_state.xml, the source's model
    copy and dynamics settings; no minimisation, no new velocities, no thermalisation: the
    first state row is the source's last, temperature and positions."""
    model, top, pos = system_parts
    src = tmp_path / "equil"
    _run(system_parts, src, steps=40, temperature=320.0, seed=3)
    cont = tmp_path / "prod"
    res = run_simulation(None, None, cont, continue_from=src, steps=30, report_interval=10, progress=False,
                         customize_system=stabilizer(pos))
    a, b = load_state_csv(src / "state.csv"), load_state_csv(cont / "state.csv")
    assert list(b["step"]) == [0, 10, 20, 30] and res.steps == 30
    for k in ("temperature_K", "potential_energy_kJ_mol", "kinetic_energy_kJ_mol", "volume_nm3"):
        assert b[k][0] == pytest.approx(a[k][-1], rel=1e-12, abs=0), k
    ta, tb = _dcd(src / "traj.dcd", src / "topology.pdb"), _dcd(cont / "traj.dcd", cont / "topology.pdb")
    assert np.array_equal(tb.xyz[0], ta.xyz[-1])
    fin = openmm.XmlSerializer.deserialize((src / "final_state.xml").read_text())
    top_c = openmm.app.PDBFile(str(cont / "topology.pdb"))
    assert np.allclose(top_c.getPositions(asNumpy=True).value_in_unit(unit.nanometer),
                       fin.getPositions(asNumpy=True).value_in_unit(unit.nanometer), atol=1e-4)
    info = json.loads((cont / "run.json").read_text())
    assert info["settings"]["temperature"] == 320.0 and info["settings"]["minimize"] is False  # inherited
    assert info["continued_from"]["run"] == str(src) and info["continued_from"]["velocities"] == "kept"
    assert info["continued_from"]["step"] == 40
    assert "minimization" not in info["history"][0] and "thermalization" not in info["history"][0]
    assert (cont / "model.pt").read_bytes() == (src / "model.pt").read_bytes()  # the continued run's model
    # continuing into the run itself, or into a directory holding a run, is refused
    with pytest.raises(ValueError, match="is the run continue_from names"):
        run_simulation(None, None, src, continue_from=src, steps=10, progress=False)
    with pytest.raises(ValueError, match="already holds a run"):
        run_simulation(None, None, cont, continue_from=src, steps=10, progress=False)
    with pytest.raises(ValueError, match="no final_state.xml"):
        (tmp_path / "crashed").mkdir()
        for f in ("run.json", "topology.pdb"):
            (tmp_path / "crashed" / f).write_bytes((src / f).read_bytes())
        run_simulation(None, None, tmp_path / "c2", continue_from=tmp_path / "crashed", steps=10, progress=False)


def test_continuation_through_the_cli_with_new_velocities(tmp_path, capsys):
    """`cgaa simulate --continue-from equil/ --out prod/`: the CLI path, the default keeps the
    velocities; --new-velocities draws (and thermalises) new ones."""
    from openmm.app import PDBFile

    from cgaa.cli import main
    from cgaa.core.modelfile import save_model

    weak, top, pos, _ = small_system(rms_force=0.02)
    pdb = tmp_path / "box.pdb"
    with open(pdb, "w") as fh:
        PDBFile.writeFile(top, pos * unit.nanometer, fh)
    m = save_model(weak, tmp_path / "weak.pt")
    common = ["--platform", "Reference", "--no-progress", "--threads", "1"]
    assert main(["simulate", str(pdb), "--model", str(m), "--out", str(tmp_path / "equil"), "--steps", "20",
                 "--report-interval", "10", "--temperature", "50", "--minimize-iterations", "5",
                 "--thermalize-ps", "0.02"] + common) == 0
    assert main(["simulate", "--continue-from", str(tmp_path / "equil"), "--out", str(tmp_path / "prod"),
                 "--steps", "20", "--report-interval", "10"] + common) == 0
    a, b = (load_state_csv(tmp_path / d / "state.csv") for d in ("equil", "prod"))
    assert b["temperature_K"][0] == pytest.approx(a["temperature_K"][-1], rel=1e-12)
    assert main(["simulate", "--continue-from", str(tmp_path / "equil"), "--out", str(tmp_path / "hot"),
                 "--steps", "20", "--report-interval", "10", "--temperature", "300", "--new-velocities",
                 "--thermalize-ps", "0.05"] + common) == 0
    hot = json.loads((tmp_path / "hot" / "run.json").read_text())
    assert hot["continued_from"]["velocities"] == "new at 300.0 K" and hot["history"][0]["thermalization"]
    assert load_state_csv(tmp_path / "hot" / "state.csv")["temperature_K"][0] > 150.0
    capsys.readouterr()
    assert main(["simulate", str(pdb), "--continue-from", str(tmp_path / "equil"), "--out", str(tmp_path / "x")]
                + common) == 2
    assert "do not give INPUT" in capsys.readouterr().err


def test_default_report_interval_fits_the_run():
    assert default_report_interval(200) == 20 and default_report_interval(10_000) == 1000
    assert default_report_interval(5) == 1 and default_report_interval(0) == 1
    assert default_report_interval(10**7) == 1000
    assert resolve_settings({"steps": 200})["report_interval"] == 20
    assert resolve_settings({"steps": 200, "report_interval": 7})["report_interval"] == 7  # explicit kept
    assert resolve_settings({"time_ps": 0.3})["report_interval"] == 30
    assert resolve_settings({"steps": 0, "report_interval": 50})["report_interval"] == 50  # step 0 only: fine
    with pytest.raises(ValueError, match=r"report_interval=1000 is longer than the run \(200 steps\)"):
        resolve_settings({"steps": 200, "report_interval": 1000})
    # a restart keeps its saved interval whatever its new length
    assert resolve_settings({"steps": 300}, {"report_interval": 1000, "steps": 100})["report_interval"] == 1000


def test_short_run_summary_describes_the_run(tmp_path, system_parts, capsys):  # noqa: F811
    """`cgaa simulate box.pdb --steps 200`: reports every 20 steps, the summary gives the mean
    temperature of the run's reports and the speed of the MD alone, the minimisation (with a
    progress line) apart; a report interval longer than the run is refused naming the flag."""
    from openmm.app import PDBFile

    from cgaa.cli import main
    from cgaa.core.modelfile import save_model

    weak, top, pos, _ = small_system(rms_force=0.02)
    pdb = tmp_path / "box.pdb"
    with open(pdb, "w") as fh:
        PDBFile.writeFile(top, pos * unit.nanometer, fh)
    m = save_model(weak, tmp_path / "weak.pt")
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["simulate", str(pdb), "--model", str(m), "--out", str(out), "--steps", "200", "--platform",
                 "Reference", "--temperature", "50", "--minimize-iterations", "30", "--thermalize-ps", "0.02",
                 "--threads", "1"]) == 0
    cap = capsys.readouterr()
    st = load_state_csv(out / "state.csv")
    assert list(st["step"]) == list(range(0, 201, 20))
    line = cap.out.strip().splitlines()[-1]
    m_t = re.search(r"mean T ([\d.]+) K over (\d+) reports", line)
    assert m_t and int(m_t.group(2)) == 11 and float(m_t.group(1)) == pytest.approx(st["temperature_K"].mean(), abs=0.06)
    md = re.search(r"MD ([\d.e+]+) ns/day \(([\d.]+) s\)", line)
    mini = re.search(r"minimisation ([\d.]+) s", line)
    assert md and mini and "thermalisation" in line, line
    info = json.loads((out / "run.json").read_text())
    h = info["history"][0]
    assert h["minimization"]["wall_s"] > 0 and h["md_wall_s"] > 0 and h["reports"] == 11
    # ns/day of the MD steps alone: 200 steps of 1 fs in md_wall_s
    assert h["ns_per_day"] == pytest.approx(200 * 1e-6 / (h["md_wall_s"] / 86400), rel=1e-6)
    assert "minimising the energy: capped steepest descent" in cap.err and "minimised in" in cap.err
    # an explicit interval longer than the run: an error naming --report-interval
    assert main(["simulate", str(pdb), "--model", str(m), "--out", str(tmp_path / "r2"), "--steps", "200",
                 "--report-interval", "1000", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--report-interval 1000 is longer than the run (200 steps)" in err and "report_interval" not in err
    assert not (tmp_path / "r2" / "run.json").exists()
