"""The import graph of panns_keras and the data_prep launchers: no loop, and no import that
runs up a floor.

Built from the source with ``ast`` (module-level and function-level imports alike). An
import of ``pkg.sub`` counts as an edge to ``pkg.sub`` only (Python also runs
``pkg/__init__``, which is not counted: a package's ``__init__`` re-exports its children).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Floors, lowest first: a module may import its own floor or lower ones, never higher.
FLOORS = [
    (
        "panns_keras.errors",
        "panns_keras.fileio",
        "panns_keras.audio",
        "panns_keras.progress",
        "panns_keras.metrics",
        "panns_keras.artifact",
        "panns_keras.flagnames",
        "panns_keras.presets.table",
    ),  # the preset table is data (flagnames reads its names)
    # file formats and label lists sit below models: saving.py reads and writes label files;
    # presets do file work only (find, download, verify, cache)
    ("panns_keras.data.formats", "panns_keras.labels", "panns_keras.presets"),
    # the checkpoint converter maps weights onto a model class it is given (models/loader.py
    # passes it down for a .pth preset), as keras-hub's loaders do
    ("panns_keras.models", "panns_keras.convert"),
    ("panns_keras.data",),
    ("panns_keras.runtime", "panns_keras.train", "panns_keras.configs"),
    ("panns_keras.export",),
    ("panns_keras.inference",),
    ("panns_keras.api", "panns_keras.hear", "panns_keras"),
    ("panns_keras.cli", "panns_keras.__main__", "data_prep"),  # data_prep: launchers
]


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in ("panns_keras", "data_prep"):
        for p in (ROOT / pkg).rglob("*.py"):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = p
    return mods


def _graph() -> dict[str, set[str]]:
    mods = _modules()

    def owner(name):
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name

    edges = {}
    for m, p in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                deps |= {owner(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = m.split(".") if p.name == "__init__.py" else m.split(".")[:-1]
                    pkg = pkg[: len(pkg) - node.level + 1]
                    base = ".".join(pkg + ([node.module] if node.module else []))
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    deps.add(sub if sub in mods else owner(base))
        edges[m] = {d for d in deps if d and d != m}
    return edges


def _floor(module: str) -> int:
    best, best_len = None, -1
    for i, prefixes in enumerate(FLOORS):
        for pre in prefixes:
            if (module == pre or module.startswith(pre + ".")) and len(pre) > best_len:
                best, best_len = i, len(pre)
    assert best is not None, f"{module}: on no floor (add it to FLOORS)"
    return best


def test_graph_covers_the_package():
    edges = _graph()
    assert {
        "panns_keras.api",
        "panns_keras.models.saving",
        "panns_keras.runtime.tflite",
        "panns_keras.inference.engine",
        "panns_keras.data.prepare.writer",
        "data_prep.beam_pipeline",
    } <= set(edges)
    assert "panns_keras.models.build" in edges["panns_keras.api"]


def test_no_import_loop():
    edges = _graph()
    state, loops = {}, []

    def visit(n, stack):
        state[n] = 1
        stack.append(n)
        for d in sorted(edges.get(n, ())):
            if state.get(d) == 1:
                loops.append(" -> ".join(stack[stack.index(d) :] + [d]))
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n, [])
    assert loops == []


def test_no_import_runs_up_a_floor():
    edges = _graph()
    up = [f"{m} -> {d}" for m in sorted(edges) for d in sorted(edges[m]) if _floor(d) > _floor(m)]
    assert up == []


def test_no_library_module_imports_api():
    edges = _graph()
    users = sorted(m for m, deps in edges.items() if "panns_keras.api" in deps)
    assert users == ["panns_keras"]  # the package's __init__ re-exports it


def test_prepare_sits_below_the_cli():
    edges = _graph()
    library = [m for m in edges if m.startswith("panns_keras.data.prepare")]
    up = sorted(f"{m} -> {d}" for m in library for d in edges[m] if d.startswith("panns_keras.cli"))
    assert up == []
