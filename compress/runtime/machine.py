"""What this machine is: CPU, GPU, library versions, Jetson state, peak memory."""

import glob
import os
import platform
import re
import sys
from typing import Any, Dict, List, Optional

from compress.runtime.cuda import gpu_identity
from compress.runtime.shell import read_text, run_command


def parse_nv_tegra_release(text: str) -> Optional[str]:
    """``# R35 (release), REVISION: 4.1, ...`` → ``"35.4.1"`` (the L4T version)."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def parse_nvpmodel_query(text: str) -> Optional[Dict[str, Any]]:
    """``nvpmodel -q`` output (``NV Power Mode: MAXN`` then the mode id) → name and id."""
    m = re.search(r"NV Power Mode:\s*(\S+)", text)
    if not m:
        return None
    ids = re.findall(r"^\s*(\d+)\s*$", text, flags=re.M)
    return {"name": m.group(1), "id": int(ids[-1]) if ids else None}


def clocks_pinned() -> Optional[bool]:
    """Whether every online CPU runs at a fixed frequency (min == max), as ``jetson_clocks`` sets."""
    cpus = glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq")
    if not cpus:
        return None
    for cpu in cpus:
        lo, hi = read_text(f"{cpu}/scaling_min_freq"), read_text(f"{cpu}/scaling_max_freq")
        if lo is None or hi is None:
            return None
        if lo.strip() != hi.strip():
            return False
    return True


def jetson_info() -> Optional[Dict[str, Any]]:
    """L4T / JetPack versions, board model, nvpmodel mode and clock state, or None off Jetson."""
    release = read_text("/etc/nv_tegra_release")
    if release is None:
        return None
    jetpack = run_command(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"])
    model = read_text("/proc/device-tree/model")
    return {
        "l4t": parse_nv_tegra_release(release),
        "jetpack": (jetpack or "").strip() or None,
        "model": model.strip("\x00\n ") if model else None,
        "nvpmodel": parse_nvpmodel_query(run_command(["nvpmodel", "-q"]) or ""),
        "jetson_clocks": clocks_pinned(),
    }


def cpu_name() -> str:
    """The CPU model name."""
    text = read_text("/proc/cpuinfo") or ""
    for key in ("model name", "Model", "Hardware"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", text, flags=re.M)
        if m:
            return m.group(1).strip()
    return platform.processor() or platform.machine()


#: CPU features that change what the INT8 and float kernels compute (oneDNN / MLAS paths).
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile")


def cpu_flags() -> List[str]:
    """Which of `KERNEL_FLAGS` this CPU has (from ``/proc/cpuinfo``; empty elsewhere)."""
    text = read_text("/proc/cpuinfo") or ""
    m = re.search(r"^flags\s*:\s*(.+)$", text, flags=re.M)
    have = set(m.group(1).split()) if m else set()
    return [f for f in KERNEL_FLAGS if f in have]


def int8_products_saturate(
    flags: Optional[List[str]] = None, machine: Optional[str] = None
) -> bool:
    """Whether ONNX Runtime's u8s8 INT8 kernels saturate on this CPU: x86 with AVX2, no VNNI.

    There they add two uint8 × int8 products into a saturating int16 (``vpmaddubsw``), which
    8-bit weights can overflow; VNNI, AMX and ARM's dot products accumulate in int32.
    `flags` and `machine` default to this CPU's (`cpu_flags`, ``platform.machine()``).
    """
    flags = cpu_flags() if flags is None else flags
    machine = platform.machine() if machine is None else machine
    exact = {"avx512_vnni", "avx_vnni", "amx_tile"}
    return machine in ("x86_64", "AMD64") and "avx2" in flags and not exact & set(flags)


def environment() -> Dict[str, Any]:
    """What this machine is: CPU, GPU, library versions, Jetson state."""
    versions: Dict[str, Optional[str]] = {"python": platform.python_version()}
    for name in ("numpy", "onnxruntime", "tensorrt", "torch"):
        mod = sys.modules.get(name)
        if mod is None:
            try:
                mod = __import__(name)
            except Exception:  # absent or broken: report it as missing
                mod = None
        versions[name] = getattr(mod, "__version__", None) if mod else None
    return {
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "versions": versions,
        "gpu": gpu_identity(),
        "jetson": jetson_info(),
    }


def peak_rss_mb() -> Optional[float]:
    """Peak resident memory of this process in MB (Linux/macOS)."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1024.0 if sys.platform != "darwin" else peak / (1024.0 * 1024.0)
    except (ImportError, OSError):
        return None
