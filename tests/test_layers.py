"""The host's folders are its data path, and imports only go down it.

band -> link -> detect -> sessions -> analysis -> export -> UI: a module may import
its own layer or a lower one, never a higher one, and no import (at module level or
inside a function) closes a circle. ``bands`` never imports ``sim``: the virtual radio
is injected from above. Imports under ``if TYPE_CHECKING:`` are type hints, not
imports, and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

HOST = Path(__file__).resolve().parents[1] / "host" / "mirrorband"

# lowest first; a module's layer is its first package under mirrorband/
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "recording"),  # the vocabulary every layer shares
    ("bands",),       # talking to a band: protocol client, keys, provisioning, BLE link
    ("detect",),      # the firmware pipeline's runtimes over one stream builder
    ("sessions",),    # the store, ingest of band logs, EDF import
    ("analysis",),    # metrics, trends, evaluation
    ("export",),      # exports and reports
    ("control",),     # the bands as the UI drives them (pair, task, download into the store)
    ("sim",),         # simulated patients, virtual bands, virtual radio
    ("tui",),
    ("benchmarks",),
    ("cli",),
)
SKIP = {("benchmarks", "mpscripts")}  # MicroPython scripts, never imported by CPython


def layer_of(module: str) -> int:
    top = module.split(".")[1]
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: {top!r} is in no layer (add it to LAYERS)")


def host_modules() -> dict[str, Path]:
    mods = {}
    for p in sorted(HOST.rglob("*.py")):
        rel = p.relative_to(HOST).with_suffix("")
        if any(rel.parts[:len(k)] == k for k in SKIP):
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        mods[".".join(("mirrorband", *parts))] = p
    return mods


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                out.update(id(n) for n in ast.walk(sub))
    return out


def imports_of(module: str, path: Path, mods: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text())
    hints = _type_checking_nodes(tree)
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in hints:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] + [f"{target}.{a.name}" for a in node.names]
        for n in names:
            while n and n not in mods:  # mirrorband.x.y.Name -> mirrorband.x.y
                n = n.rpartition(".")[0]
            if n.startswith("mirrorband.") and n != module:
                out.add(n)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = host_modules()
    return {m: imports_of(m, p, mods) for m, p in mods.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
                  for a, deps in graph.items() for b in deps if layer_of(b) > layer_of(a))


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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


def test_every_host_module_has_a_layer() -> None:
    graph = import_graph()
    assert len(graph) > 50
    for m in graph:
        layer_of(m)


def test_no_import_goes_up_the_data_path() -> None:
    assert upward_imports(import_graph()) == []


def test_bands_never_import_the_simulator() -> None:
    graph = import_graph()
    bad = sorted(f"{a} -> {b}" for a, deps in graph.items() if a.startswith("mirrorband.bands")
                 for b in deps if b.startswith("mirrorband.sim"))
    assert bad == []


def test_no_import_circle() -> None:
    assert circles(import_graph()) == []


def test_the_checks_see_what_they_forbid() -> None:
    # the same functions on a made-up graph: an upward import and a circle are found
    g = {"mirrorband.bands.client": {"mirrorband.sim.simulate"},
         "mirrorband.sim.simulate": {"mirrorband.recording"},
         "mirrorband.detect.a": {"mirrorband.detect.b"}, "mirrorband.detect.b": {"mirrorband.detect.a"},
         "mirrorband.recording": set()}
    assert upward_imports(g) == ["mirrorband.bands.client (layer 1) imports mirrorband.sim.simulate (layer 7)"]
    assert circles(g) == [["mirrorband.detect.a", "mirrorband.detect.b"]]
    # and the parser sees imports inside functions, not those only for type hints
    mods = host_modules()
    deps = imports_of("mirrorband.detect.replay", mods["mirrorband.detect.replay"], mods)
    assert "mirrorband.detect.bandio" in deps
