"""Pool the per-replica diffusivities of several observables comparisons into one
teacher-vs-CGAA table (replica mean ± standard error, relative difference as
`cgaa bench observables` computes it).

Each input is an `observables.json` of `cgaa bench observables` (ENGINE=FILE takes that
engine's replicas) or a `report.json` of `cgaa analyze` over several replicas (ENGINE=FILE
takes its per-replica D, `D_replicas`).

Usage: python pool_replicas.py teacher=A/observables.json cgaa=A/observables.json \
           teacher=B/analysis/report.json cgaa=C/observables.json [--json OUT]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List

from cgaa.bench.observables import DIFFUSING, ENGINES, mean_se, relative_difference


def replica_d(engine: str, path: Path) -> List[Dict[str, float]]:
    """Per-replica {species: D (m²/s)} of ``engine`` in an observables or analysis report."""
    rep = json.loads(path.read_text())
    if "engines" in rep:  # cgaa bench observables
        return [r["D_m2_s"] for r in rep["engines"][engine]["replicas"] if r.get("status", "ok") == "ok"]
    per = {s: v["D_replicas"]["values"] for s, v in rep["species"].items()}  # cgaa analyze
    n = {len(v) for v in per.values()}.pop()
    return [{s: per[s][k] for s in per} for k in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", metavar="ENGINE=FILE")
    ap.add_argument("--json", help="write the pooled table here")
    args = ap.parse_args()
    pooled: Dict[str, List[Dict[str, float]]] = {e: [] for e in ENGINES}
    for item in args.inputs:
        engine, path = item.split("=", 1)
        if engine not in ENGINES:
            raise SystemExit(f"{item}: engine must be one of {', '.join(ENGINES)}")
        pooled[engine] += replica_d(engine, Path(path))
    table = {"replicas": {e: len(v) for e, v in pooled.items()}, "D_1e-10_m2_s": {}}
    print(f"replicas: teacher {len(pooled['teacher'])}, cgaa {len(pooled['cgaa'])}")
    print("| species | teacher | cgaa | CGAA vs teacher |\n|---|---|---|---|")
    for s in DIFFUSING:
        (t, te), (c, ce) = (mean_se([r[s] * 1e10 for r in pooled[e]]) for e in ("teacher", "cgaa"))
        rel, rel_se = relative_difference(c, ce, t, te)
        table["D_1e-10_m2_s"][s] = {"teacher": [t, te], "cgaa": [c, ce], "relative": [rel, rel_se],
                                    "per_replica": {e: [r[s] * 1e10 for r in pooled[e]] for e in ENGINES}}
        print(f"| D[{s}] | {t:.2f} ± {te:.2f} | {c:.2f} ± {ce:.2f} | {100 * rel:+.0f} ± {100 * rel_se:.0f} % |")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1) + "\n")


if __name__ == "__main__":
    main()
