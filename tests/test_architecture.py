"""The floors of docs/architecture.md, checked on the source: imports point downwards."""

from __future__ import annotations

import ast
from pathlib import Path

import compress

ROOT = Path(compress.__file__).parent


def imports_of(path: Path) -> set[str]:
    """Every module a file imports (at any depth of the file: lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module if node.level == 0 else f"<relative>{node.module}")
    return found


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_prune_never_imports_distill():
    for path in files("prune"):
        bad = [m for m in imports_of(path) if m.startswith("compress.distill") or "distill" in m]
        assert not bad, (path, bad)
        assert "compress.distill" not in path.read_text(), path


def test_the_lower_floors_never_import_the_verb_layer():
    verb_layer = ("compress.cli", "compress.verbs", "compress.api", "compress.pipeline")
    for package in ("engine", "data", "models", "prune", "exporters", "deploy", "runtime"):
        for path in files(package):
            bad = [m for m in imports_of(path) if m.startswith(verb_layer)]
            assert not bad, (path, bad)


def test_the_device_runtime_imports_only_itself_the_stdlib_and_numpy():
    import sys

    allowed = set(sys.stdlib_module_names) | {"numpy", "onnxruntime", "tensorrt", "compress"}
    for path in files("runtime"):
        for module in imports_of(path):
            top = module.split(".")[0]
            assert top in allowed or module.startswith("compress.runtime"), (path, module)
            if top == "compress":
                assert module.startswith("compress.runtime"), (path, module)


def test_no_function_of_the_engine_is_over_80_lines():
    for path in files("engine"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 80, f"{path}:{node.lineno} {node.name} has {length} lines"
