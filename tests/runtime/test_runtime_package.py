"""The device runtime runs where Jetsons are: Python 3.6 (JetPack 4.6) up, numpy and a runtime only."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import compress.runtime
from compress.deploy.zipapp import build_zipapp, runtime_sources

RUNTIME = Path(compress.runtime.__file__).parent
#: Third-party modules the runtime may import, and only inside functions (lazily).
ALLOWED_THIRD_PARTY = {"numpy", "onnxruntime", "tensorrt"}
VERMIN = str(Path(sys.executable).with_name("vermin"))  # the dev extra's console script


def test_minimum_python_is_3_6_by_vermin():
    done = subprocess.run(
        [
            VERMIN,
            "-t=3.6-",
            "--no-tips",
            "--eval-annotations",
            "--violations",
            str(RUNTIME),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    plain = subprocess.run(
        [VERMIN, "--no-tips", "--eval-annotations", str(RUNTIME)],
        capture_output=True,
        text=True,
    )
    assert "Minimum required versions: 3.6" in plain.stdout, plain.stdout


def test_imports_only_the_stdlib_and_lazily_numpy_or_a_runtime():
    stdlib = set(sys.stdlib_module_names)
    problems = []
    for path in runtime_sources():
        tree = ast.parse(path.read_text())
        top_level = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [(node.module or "").split(".")[0]]
            else:
                continue
            for name in names:
                if name in stdlib or name == "compress":
                    continue
                if name not in ALLOWED_THIRD_PARTY:
                    problems.append(f"{path.name}: imports {name}")
                elif id(node) in top_level:
                    problems.append(f"{path.name}: imports {name} at module level (must be lazy)")
    assert not problems, problems


def test_zipapp_runs_with_nothing_of_compress_installed(tmp_path):
    pyz = build_zipapp(tmp_path / "agent.pyz")
    names = zipfile.ZipFile(pyz).namelist()
    assert "__main__.py" in names and "compress/runtime/cli.py" in names
    assert not any(
        n.startswith("compress/") and "runtime" not in n and n != "compress/__init__.py"
        for n in names
    )
    # -S -I: no site-packages, so the installed compress (and torch) cannot be found
    done = subprocess.run(
        [sys.executable, "-S", "-I", str(pyz), "env"], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert '"python"' in done.stdout and '"torch": null' in done.stdout
    assert build_zipapp(tmp_path / "again.pyz").read_bytes() == pyz.read_bytes()  # reproducible
