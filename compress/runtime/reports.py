"""JSON reports a user asks for by path (``--json FILE``): written only over compress's own reports.

A report carries ``"written_by": "compress …"``. An existing file without that key — notes, a
model file, anything of the user's — is never overwritten, nor is a path through a symbolic
link. Standard library only: the device runtime uses this too (Python ≥ 3.6).
"""

import json
import os

REPORT_KEY = "written_by"
#: Larger files are never a report of ours (not even read to find out).
MAX_REPORT_BYTES = 64 << 20


def is_report(path):
    """Whether `path` is a JSON report compress wrote (a regular file with our key)."""
    try:
        if os.path.islink(path) or not os.path.isfile(path):
            return False
        if os.path.getsize(path) > MAX_REPORT_BYTES:
            return False
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return False
    return isinstance(data, dict) and str(data.get(REPORT_KEY, "")).startswith("compress")


def refusal(path):
    """Why `path` may not receive a report, or ``None`` when it may (absent, or ours)."""
    if os.path.islink(path):
        return "'{}' is a symbolic link; give the path of a new file for --json".format(path)
    if os.path.isdir(path):
        return "'{}' is a folder; give a file path for --json".format(path)
    if os.path.exists(path) and not is_report(path):
        return (
            "'{}' already exists and is not a report compress wrote; compress never overwrites "
            "a file it did not write: choose another --json path".format(path)
        )
    return None
