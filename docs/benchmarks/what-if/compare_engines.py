"""Compare the replicas of one engine in one observables report with those of an engine in
another (e.g. CGAA at 1 fs against CGAA with r-RESPA), as `cgaa bench observables` compares
the teacher with CGAA: replica means ± standard errors and relative differences of D,
density, RDF first peak and first-shell coordination number.

Usage: python compare_engines.py REF.json@ENGINE OTHER.json@ENGINE [--json OUT]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from cgaa.bench.observables import compare, summarise


def replicas(spec: str):
    path, engine = spec.rsplit("@", 1)
    rep = json.loads(Path(path).read_text())
    return [r for r in rep["engines"][engine]["replicas"] if r.get("status", "ok") == "ok"], rep["protocol"]["ensemble"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ref")
    ap.add_argument("other")
    ap.add_argument("--json", help="write the comparison here")
    args = ap.parse_args()
    (ref, ens), (other, _) = replicas(args.ref), replicas(args.other)
    a, b = summarise(ref), summarise(other)
    c = compare(a, b, ens)
    print(f"reference {args.ref} ({len(ref)} replicas) vs {args.other} ({len(other)} replicas)")
    for s, v in c["D"].items():
        print(f"D[{s}] (1e-10 m2/s): {a['D_m2_s'][s] * 1e10:.2f} ± {a['D_se_m2_s'][s] * 1e10:.2f} vs "
              f"{b['D_m2_s'][s] * 1e10:.2f} ± {b['D_se_m2_s'][s] * 1e10:.2f}: "
              f"{100 * v['relative']:+.0f} ± {100 * v['relative_se']:.0f} %")
    print(f"density (g/cm3): {a['density_g_cm3']:.4f} ± {a['density_se_g_cm3']:.4f} vs {b['density_g_cm3']:.4f} ± "
          f"{b['density_se_g_cm3']:.4f}: {100 * c['density']['relative']:+.2f} ± {100 * c['density']['relative_se']:.2f} %")
    print(f"Li-O(carbonyl) CN: {a['rdf_cn_first_shell']:.2f} vs {b['rdf_cn_first_shell']:.2f}: "
          f"{100 * c['rdf_cn']['relative']:+.1f} ± {100 * c['rdf_cn']['relative_se']:.1f} %; first peak "
          f"{a['rdf_first_peak_nm']:.4f} vs {b['rdf_first_peak_nm']:.4f} nm")
    if args.json:
        Path(args.json).write_text(json.dumps({"ref": args.ref, "other": args.other, "ref_summary": a,
                                               "other_summary": b, "comparison": c}, indent=1) + "\n")


if __name__ == "__main__":
    main()
