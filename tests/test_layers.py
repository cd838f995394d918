"""The package's import graph: downward only, no cycles, the device runtime at the bottom.

Every import counts, module level and function level alike (a lazy import is still a
dependency); only imports under ``if TYPE_CHECKING:`` do not, since they never run. Layers, from the bottom: the device runtime; the small shared pieces; config and
the model header; models; model files; data; the engine and the pruning core; the verbs'
libraries; deploy and the verbs that combine them; the pipeline; the CLI.
"""

from __future__ import annotations

import ast
import collections
from pathlib import Path

import compress

ROOT = Path(compress.__file__).parent

LAYERS = {
    "compress.runtime": 0,
    "compress._version": 1,
    "compress._lazy": 1,
    "compress.errors": 1,
    "compress.registry": 1,
    "compress.atomic": 1,
    "compress.distributed": 1,
    "compress.config": 2,
    "compress.header": 2,
    "compress.outputs": 2,
    "compress.models": 3,
    "compress.artifacts": 4,
    "compress.data": 5,
    "compress.report": 5,
    "compress.engine": 6,
    "compress.prune": 6,  # the pruning core (importance, settings, structured)
    "compress.distill": 7,
    "compress.train": 7,
    "compress.evaluate": 7,
    "compress.exporters": 7,
    "compress.deploy": 8,
    "compress.quantize": 8,  # the `compress quantize` verb (QAT + distillation)
    "compress.quantize.graph": 3,  # fake-quant graph rewriting: model files replay it
    "compress.quantize.callback": 6,
    "compress.quantize.config": 7,
    "compress.prune.api": 8,  # the `compress prune` verb: pruning + KD fine-tuning
    "compress.prune.config": 8,
    "compress.prune.budget": 8,
    "compress.importer": 8,
    "compress.verbs": 9,
    "compress.pipeline": 9,
    "compress.study": 9,
    "compress.api": 9,
    "compress.cli": 10,
    "compress.__main__": 10,
}
#: The package itself (its lazy public names point anywhere below the CLI).
TOP = 10


def modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(("compress", *path.relative_to(ROOT).with_suffix("").parts))
        out[name.removesuffix(".__init__")] = path
    return out


def layer(module: str) -> int:
    if module == "compress":
        return TOP
    best = max((k for k in LAYERS if module == k or module.startswith(k + ".")), key=len)
    return LAYERS[best]


def imports() -> dict[str, set[str]]:
    mods = modules()

    def resolve(name: str) -> str:
        while name not in mods and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    edges: dict[str, set[str]] = collections.defaultdict(set)
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text())
        typing_only = {
            id(n)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and ast.unparse(block.test).endswith("TYPE_CHECKING")
            for stmt in block.body
            for n in ast.walk(stmt)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            found = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                if base.startswith("compress"):
                    found += [
                        f"{base}.{a.name}" if f"{base}.{a.name}" in mods else resolve(base)
                        for a in node.names
                    ]
            elif isinstance(node, ast.Import):
                found += [resolve(a.name) for a in node.names if a.name.startswith("compress")]
            edges[mod].update(f for f in found if f != mod)
    return edges


def test_every_module_has_a_layer():
    missing = [
        m
        for m in modules()
        if m != "compress" and not any(m == k or m.startswith(k + ".") for k in LAYERS)
    ]
    assert not missing, f"give these modules a layer in tests/test_layers.py: {missing}"


def test_imports_point_downwards():
    upward = [
        f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
        for a, targets in imports().items()
        for b in targets
        if layer(b) > layer(a)
    ]
    assert not upward, "\n".join(upward)


def test_the_device_runtime_imports_nothing_else_of_compress():
    outside = [
        f"{a} imports {b}"
        for a, targets in imports().items()
        if a.startswith("compress.runtime")
        for b in targets
        if not b.startswith("compress.runtime")
    ]
    assert not outside, outside


def test_no_import_cycle():
    edges = imports()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in modules():
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_no_module_is_a_god_file():
    long = {m: len(p.read_text().splitlines()) for m, p in modules().items()}
    assert not {m: n for m, n in long.items() if n > 600}
