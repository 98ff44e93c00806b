"""Every name the documentation gives exists where it says: each dotted ``cgaa.…`` name in
backquotes in README.md and docs/*.md imports (module) or resolves (attribute), and the public
entry points of the OpenMM boundary and the CLI are where users reach them."""
import importlib
import importlib.metadata
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
FILE_SUFFIXES = {"json", "pt", "py", "yaml", "yml", "md", "xyz", "txt", "png", "csv", "pdb", "cif", "dcd"}
NAME = re.compile(r"`[^`]*?\b(cgaa(?:\.[A-Za-z_]\w*)+)")


def documented_names():
    out = {}
    for page in PAGES:
        for m in NAME.finditer(page.read_text()):
            name = m.group(1).rstrip(".")
            if name.rsplit(".", 1)[1] not in FILE_SUFFIXES:  # `cgaa.json` is a file, not a name
                out.setdefault(name, page.name)
    return sorted(out.items())


def resolve(dotted: str):
    """The object ``dotted`` names: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ModuleNotFoundError:
            continue
        for attr in parts[k:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_the_pages_document_names():
    names = dict(documented_names())
    assert len(names) > 40  # the scan finds the API tables, not nothing
    assert "cgaa.openmm.create_system" in names


@pytest.mark.parametrize("name,page", documented_names())
def test_documented_name_exists(name, page):
    try:
        resolve(name)
    except (ImportError, AttributeError) as err:
        pytest.fail(f"{page} names {name}, which does not exist: {err}")


def test_resolve_refuses_a_missing_name():
    with pytest.raises(AttributeError):
        resolve("cgaa.openmm.create_sytem")
    with pytest.raises(ModuleNotFoundError):
        resolve("cgaaa.openmm")


def test_public_entry_points():
    import cgaa
    import cgaa.openmm
    from cgaa.cli import COMMANDS, build_parser
    from cgaa.openmm.mlpotential import CGAAPotentialImplFactory

    for name in cgaa.openmm.__all__:
        assert getattr(cgaa.openmm, name) is not None
    assert callable(cgaa.openmm.create_system) and callable(cgaa.load_model)
    assert cgaa.__version__ == importlib.metadata.version("cgaa")
    assert callable(CGAAPotentialImplFactory)
    subcommands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert set(subcommands) == set(COMMANDS) == {"build", "sample", "label", "train", "evaluate", "finetune", "deploy",
                                                 "simulate", "replicas", "analyze", "bench", "demo"}
