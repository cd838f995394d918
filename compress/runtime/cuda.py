"""The few CUDA runtime calls the runtime needs, through ctypes on libcudart (no torch, no pycuda)."""

import ctypes
import ctypes.util
import glob
import os
import sys
from typing import Any, Dict, Optional

from compress.runtime.errors import AgentError
from compress.runtime.shell import run_command


def _find_cudart() -> Optional[str]:
    candidates = []
    found = ctypes.util.find_library("cudart")
    if found:
        candidates.append(found)
    candidates += [
        "libcudart.so",
        "libcudart.so.13",
        "libcudart.so.12",
        "libcudart.so.11.0",
        "libcudart.so.10.2",
    ]
    for site in sys.path:
        candidates += sorted(
            glob.glob(os.path.join(site, "nvidia", "cuda_runtime", "lib", "libcudart.so*"))
        )
    candidates += sorted(glob.glob("/usr/local/cuda*/lib64/libcudart.so*"))
    for name in candidates:
        try:
            ctypes.CDLL(name)
            return name
        except OSError:
            continue
    return None


class Cuda:
    """The few CUDA runtime calls the agent needs, through ctypes on libcudart."""

    H2D, D2H = 1, 2

    def __init__(self) -> None:
        path = _find_cudart()
        if path is None:
            raise AgentError("libcudart was not found: install the CUDA runtime (JetPack ships it)")
        self.lib = ctypes.CDLL(path)
        self.lib.cudaMalloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
        self.lib.cudaMemcpy.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
        ]
        self.lib.cudaFree.argtypes = [ctypes.c_void_p]
        self.lib.cudaStreamCreate.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        self.lib.cudaStreamSynchronize.argtypes = [ctypes.c_void_p]
        self.lib.cudaMemGetInfo.argtypes = [
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.POINTER(ctypes.c_size_t),
        ]

    def _check(self, code: int, what: str) -> None:
        if code != 0:
            raise AgentError(f"CUDA call {what} failed with error {code}")

    def malloc(self, nbytes: int) -> int:
        """Allocate device memory; returns the pointer."""
        ptr = ctypes.c_void_p()
        self._check(self.lib.cudaMalloc(ctypes.byref(ptr), max(1, nbytes)), "cudaMalloc")
        return int(ptr.value or 0)

    def free(self, ptr: int) -> None:
        """Free device memory."""
        self.lib.cudaFree(ctypes.c_void_p(ptr))

    def htod(self, dst: int, array: Any) -> None:
        """Copy a numpy array to the device."""
        self._check(
            self.lib.cudaMemcpy(ctypes.c_void_p(dst), array.ctypes.data, array.nbytes, self.H2D),
            "cudaMemcpy",
        )

    def dtoh(self, array: Any, src: int) -> None:
        """Copy device memory into a numpy array."""
        self._check(
            self.lib.cudaMemcpy(array.ctypes.data, ctypes.c_void_p(src), array.nbytes, self.D2H),
            "cudaMemcpy",
        )

    def stream(self) -> int:
        """Create a CUDA stream."""
        s = ctypes.c_void_p()
        self._check(self.lib.cudaStreamCreate(ctypes.byref(s)), "cudaStreamCreate")
        return int(s.value or 0)

    def sync(self, stream: int) -> None:
        """Wait for a stream."""
        self._check(
            self.lib.cudaStreamSynchronize(ctypes.c_void_p(stream)), "cudaStreamSynchronize"
        )

    def mem_used(self) -> int:
        """Device memory in use (bytes)."""
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        self._check(
            self.lib.cudaMemGetInfo(ctypes.byref(free), ctypes.byref(total)), "cudaMemGetInfo"
        )
        return int(total.value - free.value)

    def device(self) -> Dict[str, Any]:
        """Name and compute capability of device 0."""
        major, minor = ctypes.c_int(), ctypes.c_int()
        self.lib.cudaDeviceGetAttribute(
            ctypes.byref(major), 75, 0
        )  # cudaDevAttrComputeCapabilityMajor
        self.lib.cudaDeviceGetAttribute(ctypes.byref(minor), 76, 0)
        props = ctypes.create_string_buffer(8192)  # cudaDeviceProp starts with char name[256]
        getter = (
            getattr(self.lib, "cudaGetDeviceProperties_v2", None)
            or self.lib.cudaGetDeviceProperties
        )
        getter(props, 0)
        name = props.raw[:256].split(b"\0", 1)[0].decode(errors="replace")
        return {"name": name or None, "compute_capability": f"{major.value}.{minor.value}"}


def gpu_identity() -> Optional[Dict[str, Any]]:
    """Name and compute capability of the first NVIDIA GPU, or None without one."""
    try:
        return {**Cuda().device(), "source": "cudart"}
    except (AgentError, OSError, AttributeError):
        pass
    out = run_command(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"])
    if out and out.strip():
        name, _, cc = out.strip().splitlines()[0].partition(",")
        return {
            "name": name.strip(),
            "compute_capability": cc.strip() or None,
            "source": "nvidia-smi",
        }
    return None
