"""`compress.runtime` as one runnable file (a zipapp) for the device.

The archive holds ``__main__.py``, an empty ``compress/__init__.py`` (so nothing of the host
package is imported on the device) and every ``compress/runtime/**/*.py``. Python runs it
directly, from 3.6 on: ``python3 agent.pyz profile MODEL ...``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

#: The name the archive has on the device.
ZIPAPP_NAME = "agent.pyz"

_MAIN = """import sys

from compress.runtime.cli import main

sys.exit(main())
"""


def runtime_sources() -> list[Path]:
    """The Python files of `compress.runtime` (the code the device runs)."""
    import compress.runtime

    root = Path(compress.runtime.__file__).parent
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def build_zipapp(dest: str | Path) -> Path:
    """Write the runtime zipapp to `dest` (a file path) and return it.

    The archive's members are written in a fixed order with fixed timestamps, so the same
    sources always give the same bytes.
    """
    import compress.runtime

    root = Path(compress.runtime.__file__).parent.parent  # the compress/ directory
    target = Path(dest)
    stamp = (2020, 1, 1, 0, 0, 0)

    def add(zf: zipfile.ZipFile, name: str, text: str) -> None:
        info = zipfile.ZipInfo(name, date_time=stamp)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        zf.writestr(info, text)

    with zipfile.ZipFile(target, "w") as zf:
        add(zf, "__main__.py", _MAIN)
        add(zf, "compress/__init__.py", '"""compress device runtime (zipapp)."""\n')
        for path in runtime_sources():
            add(zf, "compress/" + path.relative_to(root).as_posix(), path.read_text())
    return target
