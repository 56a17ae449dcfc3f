"""The import graph of qutils: no circles, and every layer imports only the layers below it.

Layers, bottom to top: the building blocks (data, models, attacks, the DCT, measurement), the
defenses, the evaluation (cascade, audit, claims, results), the chapters (``qutils.experiments``),
and the book-wide summaries that read every chapter (``qutils.chapters``, the list of their records,
``qutils.comparison`` and ``qutils.ledger``).
Imports inside functions count (a lazy import is still an import), and so does
``importlib.import_module`` of a ``qutils`` name; importing ``qutils.a.b`` runs ``qutils/a/__init__``
too, so that counts as an import of ``qutils.a``.
"""
import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "qutils"
#: the summaries above the chapters: they read every chapter's records
ABOVE_CHAPTERS = {"qutils.chapters", "qutils.comparison", "qutils.ledger", "qutils.make_models"}
#: (importer prefix, forbidden prefix): a building block never reaches up
FORBIDDEN = [("qutils.attacks", "qutils.defenses"), ("qutils.attacks", "qutils.models"),
             ("qutils.models", "qutils.defenses"), ("qutils.models", "qutils.attacks"),
             ("qutils.dct", "qutils.defenses"), ("qutils.metrics", "qutils.evaluate"),
             ("qutils.metrics", "qutils.audit")]


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """``{module: {qutils modules it imports}}`` for the package at ``root``."""
    top = root.name
    mods = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph = {m: set() for m in mods}

    def add(m, target):
        if target not in mods or (m + ".").startswith(target + "."):
            return  # not ours, m itself, or a package m is inside (its __init__ ran before m)
        graph[m].add(target)
        parts = target.split(".")
        for k in range(2, len(parts)):  # the packages on the way run their __init__
            anc = ".".join(parts[:k])
            if anc in mods and not (m + ".").startswith(anc + "."):
                graph[m].add(anc)

    for m, path in mods.items():
        package = m if path.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != top:
                    continue
                add(m, target)
                for alias in node.names:
                    add(m, f"{target}.{alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    add(m, alias.name)
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
                arg = node.args[0] if node.args else None
                text = arg.value if isinstance(arg, ast.Constant) else ast.unparse(arg) if arg is not None else ""
                prefix = text.strip("f'\"").split("{")[0].rstrip(".")
                if prefix.startswith(top):
                    graph[m].add(prefix if prefix in mods else f"{prefix} (dynamic)")
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.fixture(scope="module")
def graph():
    return import_graph(ROOT)


def test_no_circles(graph):
    assert circles(graph) == [], "import circles: " + "; ".join(" <-> ".join(c) for c in circles(graph))


def test_nothing_below_the_chapters_imports_them(graph):
    up = {m: sorted(t for t in targets if t.startswith("qutils.experiments"))
          for m, targets in graph.items()
          if not m.startswith("qutils.experiments") and m not in ABOVE_CHAPTERS}
    assert {m: t for m, t in up.items() if t} == {}


@pytest.mark.parametrize("low,high", FORBIDDEN, ids=[f"{a}-{b}" for a, b in FORBIDDEN])
def test_building_blocks_do_not_reach_up(graph, low, high):
    bad = {m: sorted(t for t in targets if t.startswith(high)) for m, targets in graph.items() if m.startswith(low)}
    assert {m: t for m, t in bad.items() if t} == {}


def test_the_checker_sees_lazy_dynamic_and_package_imports(tmp_path):
    """The graph on a made-up package: a circle closed by an import inside a function, an
    ``importlib.import_module`` of an f-string, and an import of a submodule that runs its package."""
    pkg = tmp_path / "qutils"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n    return a\n")
    (pkg / "c.py").write_text("import importlib\n\ndef g(n):\n    return importlib.import_module(f'qutils.sub.{n}')\n")
    (pkg / "sub" / "__init__.py").write_text("from ..d import x\n")
    (pkg / "sub" / "m.py").write_text("")
    (pkg / "d.py").write_text("from .sub.m import y\n")
    g = import_graph(pkg)
    assert g["qutils.a"] == {"qutils.b"} and g["qutils.b"] == {"qutils.a"}
    assert "qutils.sub" in g["qutils.c"]
    assert g["qutils.d"] == {"qutils.sub.m", "qutils.sub"}  # the package's __init__ runs too
    found = circles(g)
    assert ["qutils.a", "qutils.b"] in found and ["qutils.d", "qutils.sub"] in found


MAX_LINES = 400  #: a module a contributor reads whole; beyond this it is split by concern (issue 26)


def test_no_module_is_longer_than_a_contributor_reads_whole():
    """``qutils.certify`` (786 lines) and the Q-Layer chapter's ``measure`` (474) were split by concern;
    a module that grows past the limit again fails here rather than in a review."""
    long = {str(p.relative_to(ROOT.parent)): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
