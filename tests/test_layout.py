"""The package layout of docs/architecture.md holds: stage packages import only the stages
the page allows, no two modules import each other in a circle, and imports sit at module top
except in the few modules that say why not."""
import ast
import collections
import pathlib

PKG = pathlib.Path(__file__).resolve().parent.parent / "cgaa"

#: docs/architecture.md, *Which stage may import which*.
ALLOWED = {
    "core": set(),
    "systems": {"core"},
    "analysis": {"core", "systems"},
    "teacher": {"core", "systems", "analysis"},
    "priors": {"core", "systems", "teacher"},
    "data": {"core", "priors"},
    "train": {"core", "data", "priors"},
    "openmm": {"core", "systems", "teacher", "priors"},
    "md": {"core", "systems", "openmm"},
    # runs the jobs of the stages on Dask; only bench's callers (commands) hand it bench's functions
    "distributed": {"core", "systems", "analysis", "teacher", "priors", "data", "train", "openmm", "md"},
}
#: Modules that import cgaa inside functions, for the reason docs/architecture.md states.
LAZY_OK = {"cgaa", "cgaa.cli", "cgaa.openmm", "cgaa.openmm.mlpotential"}


def _modules(pkg):
    out = {}
    for p in pkg.rglob("*.py"):
        parts = p.relative_to(pkg.parent).with_suffix("").parts
        name = ".".join(parts).removesuffix(".__init__")
        if not name.startswith("cgaa._data"):
            out[name] = p
    return out


def _imports(mods):
    """module → [(imported module, at top level?)] for every import of cgaa."""
    def resolve(name):
        while name and name not in mods:
            name = name.rsplit(".", 1)[0] if "." in name else ""
        return name

    out = collections.defaultdict(list)
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("cgaa"):
                targets = [resolve(f"{node.module}.{a.name}") or resolve(node.module) for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [resolve(a.name) for a in node.names if a.name.startswith("cgaa")]
            out[m] += [(t, node.col_offset == 0) for t in targets if t and t != m]
    return out


def _stage(module):
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in ALLOWED else None


def stage_violations(mods):
    """'m imports t (stage → stage)' for every import the layout forbids."""
    bad = []
    for m, targets in _imports(mods).items():
        s = _stage(m)
        if s is None:
            continue
        for t, _top in targets:
            ts = _stage(t)
            if ts is not None and ts != s and ts not in ALLOWED[s]:
                bad.append(f"{m} imports {t} ({s} → {ts})")
            if ts is None and t != "cgaa._version":
                bad.append(f"{m} imports {t}, outside the stage packages")
    return bad


def import_circles(mods):
    """Every circle of imports between modules found by a depth-first walk."""
    graph = {m: {t for t, _ in ts} for m, ts in _imports(mods).items()}
    state, stack, circles = {}, [], []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                circles.append(stack[stack.index(w):] + [w])
            elif w not in state:
                visit(w)
        stack.pop()
        state[v] = 2

    for m in sorted(mods):
        if m not in state:
            visit(m)
    return circles


def lazy_imports(mods):
    """Modules importing cgaa inside a function, apart from the stated exceptions."""
    return sorted({m for m, ts in _imports(mods).items() for _t, top in ts
                   if not top and m not in LAZY_OK and not m.startswith("cgaa.commands.")})


def test_stages_import_only_what_the_layout_allows():
    mods = _modules(PKG)
    assert {_stage(m) for m in mods} >= set(ALLOWED)  # every stage of the page exists
    bad = stage_violations(mods)
    assert not bad, "\n".join(bad)


def test_no_import_circle_between_modules():
    circles = import_circles(_modules(PKG))
    assert not circles, "import circles: " + "; ".join(" → ".join(c) for c in circles)


def test_cgaa_imports_sit_at_module_top():
    lazy = lazy_imports(_modules(PKG))
    assert not lazy, f"imports inside functions (move them to the top, or state why): {lazy}"


def test_the_checks_see_a_forbidden_import_a_circle_and_a_lazy_import(tmp_path):
    fake = tmp_path / "cgaa"
    (fake / "core").mkdir(parents=True)
    (fake / "md").mkdir()
    for d in (fake, fake / "core", fake / "md"):
        (d / "__init__.py").write_text("")
    (fake / "core" / "x.py").write_text("from cgaa.md.y import f\n")
    (fake / "md" / "y.py").write_text("from cgaa.core.x import g\n\n\ndef f():\n    from cgaa.core import x\n")
    mods = _modules(fake)
    assert stage_violations(mods) == ["cgaa.core.x imports cgaa.md.y (core → md)"]
    assert [set(c) for c in import_circles(mods)] == [{"cgaa.core.x", "cgaa.md.y"}]
    assert lazy_imports(mods) == ["cgaa.md.y"]
