"""Jetson power and load: parse ``tegrastats`` lines, sample it in the background."""

import re
import shutil
import statistics
import subprocess
import threading
from typing import Any, Dict, List, Optional

_RAIL = re.compile(r"\b((?:VDD|VIN|POM|VDDQ)_[A-Z0-9_]+)\s+(\d+)(?:mW)?/(\d+)(?:mW)?")


def parse_tegrastats_line(line: str) -> Dict[str, Any]:
    """One ``tegrastats`` line → RAM, CPU load, GPU load, temperatures, power rails (mW).

    Handles the JetPack 4 format (``POM_5V_IN 1750/1628``, no unit) and JetPack 5/6
    (``VDD_IN 4673mW/4673mW``). ``power_mw`` is the board input rail (``VDD_IN`` or
    ``POM_5V_IN``) when present, else the sum of all rails (AGX Orin reports no single total).
    """
    out: Dict[str, Any] = {}
    m = re.search(r"RAM (\d+)/(\d+)MB", line)
    if m:
        out["ram_used_mb"], out["ram_total_mb"] = int(m.group(1)), int(m.group(2))
    m = re.search(r"CPU \[([^\]]*)\]", line)
    if m:
        loads = [int(x.split("%")[0]) for x in m.group(1).split(",") if "%" in x]
        out["cpu_load"] = loads
    m = re.search(r"GR3D_FREQ (\d+)%", line)
    if m:
        out["gpu_load"] = int(m.group(1))
    temps = dict(re.findall(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?[\d.]+)C\b", line))
    if temps:
        out["temps_c"] = {k: float(v) for k, v in temps.items()}
    rails = {name: int(now) for name, now, _avg in _RAIL.findall(line)}
    if rails:
        out["rails_mw"] = rails
        total = rails.get("VDD_IN", rails.get("POM_5V_IN"))
        out["power_mw"] = total if total is not None else sum(rails.values())
    return out


class Tegrastats:
    """Run ``tegrastats`` in the background and average its readings (a no-op off Jetson)."""

    def __init__(self, interval_ms: int = 100) -> None:
        self.interval_ms = interval_ms
        self.samples: List[Dict[str, Any]] = []
        self._proc: Optional[subprocess.Popen] = None
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "Tegrastats":
        exe = shutil.which("tegrastats")
        if exe:
            self._proc = subprocess.Popen(
                [exe, "--interval", str(self.interval_ms)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                universal_newlines=True,
            )
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            parsed = parse_tegrastats_line(line)
            if parsed:
                self.samples.append(parsed)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()

    def summary(self) -> Optional[Dict[str, Any]]:
        """Average power (mW) and GPU load over the samples, or None without samples."""
        power = [s["power_mw"] for s in self.samples if "power_mw" in s]
        gpu = [s["gpu_load"] for s in self.samples if "gpu_load" in s]
        if not self.samples:
            return None
        return {
            "samples": len(self.samples),
            "power_mw_mean": statistics.mean(power) if power else None,
            "gpu_load_mean": statistics.mean(gpu) if gpu else None,
            "rails": sorted(self.samples[-1].get("rails_mw", {})),
        }
