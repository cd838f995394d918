#!/usr/bin/env python3
"""compress device agent: build and profile an ONNX model or TensorRT engine where it runs.

Standalone by design: Python ≥ 3.8 standard library + numpy + onnxruntime or tensorrt (CUDA
memory through cuda-python if installed, else ctypes on libcudart). No torch, nothing of
compress installed. ``compress profile --target ssh://...`` copies this one file, the model and
a small evaluation set to the device, and runs::

    python3 agent.py profile MODEL --runtime onnxruntime|tensorrt --batches 1,8 --eval eval.npz --json out.json
    python3 agent.py build-engine MODEL.onnx --precision fp16 --batch 1:32:64 --cache-dir DIR
    python3 agent.py env

The toolkit imports the same file as ``compress.deploy.agent``, so this code exists once.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import glob
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

AGENT_VERSION = 1


class AgentError(Exception):
    """A problem the user can fix; printed on one line."""


# =========================================================================== timing


def time_calls(
    fn: Callable[[], object], *, warmup: int = 3, repeats: int = 10, min_seconds: float = 0.0
) -> list[float]:
    """Call `fn` `warmup` times, then at least `repeats` times and for at least `min_seconds`.

    Returns:
        The duration of each timed call in milliseconds.
    """
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0–100) with linear interpolation, as numpy's default."""
    if not values:
        raise ValueError("no values")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summarize(times_ms: Sequence[float], batch: int = 1) -> dict[str, float]:
    """p50/p90/p99/mean/std latency (ms) and throughput (images/s, from the median)."""
    p50 = percentile(times_ms, 50)
    return {
        "p50_ms": p50,
        "p90_ms": percentile(times_ms, 90),
        "p99_ms": percentile(times_ms, 99),
        "mean_ms": statistics.fmean(times_ms),
        "std_ms": statistics.pstdev(times_ms),
        "throughput": batch * 1000.0 / p50 if p50 > 0 else 0.0,
        "runs": len(times_ms),
    }


# =========================================================================== environment


def parse_nv_tegra_release(text: str) -> str | None:
    """``# R35 (release), REVISION: 4.1, ...`` → ``"35.4.1"`` (the L4T version)."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def parse_nvpmodel_query(text: str) -> dict[str, Any] | None:
    """``nvpmodel -q`` output (``NV Power Mode: MAXN`` then the mode id) → name and id."""
    m = re.search(r"NV Power Mode:\s*(\S+)", text)
    if not m:
        return None
    ids = re.findall(r"^\s*(\d+)\s*$", text, flags=re.M)
    return {"name": m.group(1), "id": int(ids[-1]) if ids else None}


def _read(path: str) -> str | None:
    try:
        with open(path, errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _run(cmd: list[str], timeout: float = 10.0) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def clocks_pinned() -> bool | None:
    """Whether every online CPU runs at a fixed frequency (min == max), as ``jetson_clocks`` sets."""
    cpus = glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq")
    if not cpus:
        return None
    for cpu in cpus:
        lo, hi = _read(f"{cpu}/scaling_min_freq"), _read(f"{cpu}/scaling_max_freq")
        if lo is None or hi is None:
            return None
        if lo.strip() != hi.strip():
            return False
    return True


def jetson_info() -> dict[str, Any] | None:
    """L4T / JetPack versions, board model, nvpmodel mode and clock state, or None off Jetson."""
    release = _read("/etc/nv_tegra_release")
    if release is None:
        return None
    jetpack = _run(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"])
    model = _read("/proc/device-tree/model")
    return {
        "l4t": parse_nv_tegra_release(release),
        "jetpack": (jetpack or "").strip() or None,
        "model": model.strip("\x00\n ") if model else None,
        "nvpmodel": parse_nvpmodel_query(_run(["nvpmodel", "-q"]) or ""),
        "jetson_clocks": clocks_pinned(),
    }


def cpu_name() -> str:
    """The CPU model name."""
    text = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Model", "Hardware"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", text, flags=re.M)
        if m:
            return m.group(1).strip()
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """What this machine is: CPU, GPU, library versions, Jetson state."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
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


# =========================================================================== tegrastats

_RAIL = re.compile(r"\b((?:VDD|VIN|POM|VDDQ)_[A-Z0-9_]+)\s+(\d+)(?:mW)?/(\d+)(?:mW)?")


def parse_tegrastats_line(line: str) -> dict[str, Any]:
    """One ``tegrastats`` line → RAM, CPU load, GPU load, temperatures, power rails (mW).

    Handles the JetPack 4 format (``POM_5V_IN 1750/1628``, no unit) and JetPack 5/6
    (``VDD_IN 4673mW/4673mW``). ``power_mw`` is the board input rail (``VDD_IN`` or
    ``POM_5V_IN``) when present, else the sum of all rails (AGX Orin reports no single total).
    """
    out: dict[str, Any] = {}
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
        self.samples: list[dict[str, Any]] = []
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Tegrastats:
        exe = shutil.which("tegrastats")
        if exe:
            self._proc = subprocess.Popen(
                [exe, "--interval", str(self.interval_ms)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
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

    def summary(self) -> dict[str, Any] | None:
        """Average power (mW) and GPU load over the samples, or None without samples."""
        power = [s["power_mw"] for s in self.samples if "power_mw" in s]
        gpu = [s["gpu_load"] for s in self.samples if "gpu_load" in s]
        if not self.samples:
            return None
        return {
            "samples": len(self.samples),
            "power_mw_mean": statistics.fmean(power) if power else None,
            "gpu_load_mean": statistics.fmean(gpu) if gpu else None,
            "rails": sorted(self.samples[-1].get("rails_mw", {})),
        }


# =========================================================================== CUDA (no torch)


def _find_cudart() -> str | None:
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

    def device(self) -> dict[str, Any]:
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


def gpu_identity() -> dict[str, Any] | None:
    """Name and compute capability of the first NVIDIA GPU, or None without one."""
    try:
        return {**Cuda().device(), "source": "cudart"}
    except (AgentError, OSError, AttributeError):
        pass
    out = _run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"])
    if out and out.strip():
        name, _, cc = out.strip().splitlines()[0].partition(",")
        return {
            "name": name.strip(),
            "compute_capability": cc.strip() or None,
            "source": "nvidia-smi",
        }
    return None


# =========================================================================== runners


class Runner:
    """Base of the runners: `infer` checks the input, times the call; backends fill `_infer_impl`."""

    name = "runner"

    def __init__(self) -> None:
        self.input_shape: tuple[int | None, ...] = ()  # (batch or None, C, H, W)
        self.max_batch: int | None = None
        self.last_ms: float = 0.0

    def infer(self, images: Any) -> Any:
        """Logits for a float32 (N, C, H, W) batch of normalised images."""
        import numpy as np

        if not isinstance(images, np.ndarray) or images.ndim != 4:
            raise AgentError(
                f"{self.name}: expected a 4-D numpy array (N, C, H, W), got {type(images).__name__}"
            )
        if images.dtype != np.float32:
            raise AgentError(f"{self.name}: expected float32 input, got {images.dtype}")
        expected = tuple(self.input_shape[1:])
        if (
            expected
            and all(d is not None for d in expected)
            and tuple(images.shape[1:]) != expected
        ):
            raise AgentError(
                f"{self.name}: expected images of shape (N, {', '.join(map(str, expected))}), got {images.shape}"
            )
        fixed = self.input_shape[0] if self.input_shape else None
        if fixed is not None and images.shape[0] != fixed:
            raise AgentError(
                f"{self.name}: the model takes batches of exactly {fixed} (shape "
                f"{tuple(self.input_shape)}), got {tuple(images.shape)}; export it with a dynamic "
                "batch (compress export --batch MIN:OPT:MAX) or profile --batch "
                f"{fixed}"
            )
        if self.max_batch is not None and images.shape[0] > self.max_batch:
            raise AgentError(
                f"{self.name}: batch {images.shape[0]} exceeds the engine's maximum {self.max_batch}"
            )
        t0 = time.perf_counter()
        out = self._infer_impl(np.ascontiguousarray(images))
        self.last_ms = (time.perf_counter() - t0) * 1000.0
        return out

    def _infer_impl(self, images: Any) -> Any:
        raise NotImplementedError

    def prepare(self, images: Any) -> Any:
        """Stage a batch where the backend reads it (device buffer, tensor) for `run_prepared`."""
        self.infer(images)  # validates the input once
        return images

    def run_prepared(self, prepared: Any) -> None:
        """Run on a staged batch without input conversion or host↔device copies (model-only time)."""
        self._infer_impl(prepared)

    def close(self) -> None:
        """Release resources."""

    def gpu_memory_bytes(self) -> int | None:
        """GPU memory this runner holds (None on the CPU)."""
        return None


class OnnxRuntimeRunner(Runner):
    """ONNX Runtime session (CPU, or CUDA / TensorRT execution providers when asked and present)."""

    name = "onnxruntime"

    def __init__(
        self, path: str, *, providers: list[str] | None = None, threads: int | None = None
    ) -> None:
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError:
            raise AgentError(
                "onnxruntime is not installed on this machine: pip install onnxruntime"
            ) from None
        available = ort.get_available_providers()
        wanted = providers or ["CPUExecutionProvider"]
        missing = [p for p in wanted if p not in available]
        if missing:
            raise AgentError(
                f"onnxruntime here lacks {', '.join(missing)} (available: {', '.join(available)})"
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, options, providers=wanted)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inp.shape)
        self.providers = self.session.get_providers()

    def _infer_impl(self, images: Any) -> Any:
        return self.session.run(None, {self.input_name: images})[0]


class TensorRTRunner(Runner):
    """A TensorRT engine with device buffers from libcudart (no torch, no pycuda)."""

    name = "tensorrt"

    def __init__(self, path: str) -> None:
        super().__init__()
        import numpy as np

        trt = import_tensorrt()
        self.np = np
        self.cuda = Cuda()
        logger = trt.Logger(trt.Logger.WARNING)
        with open(path, "rb") as fh:
            self.engine = trt.Runtime(logger).deserialize_cuda_engine(fh.read())
        if self.engine is None:
            raise AgentError(
                f"TensorRT could not load '{path}' (built with another TensorRT version or GPU?)"
            )
        self.context = self.engine.create_execution_context()
        self.tensor_api = hasattr(self.engine, "num_io_tensors")
        names = (
            [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
            if self.tensor_api
            else [self.engine.get_binding_name(i) for i in range(self.engine.num_bindings)]
        )
        self.inputs = [n for n in names if self._is_input(trt, n)]
        self.outputs = [n for n in names if n not in self.inputs]
        self.input_name, self.output_name = self.inputs[0], self.outputs[0]
        lo, _opt, hi = self._profile_shapes(self.input_name)
        self.input_shape = (None, *hi[1:])
        self.max_batch = int(hi[0])
        self.min_batch = int(lo[0])
        self.classes = int(self._shape(self.output_name)[-1])
        self.stream = self.cuda.stream()
        item = 4  # float32 inputs and outputs (the exporters keep I/O in float32)
        self.d_in = self.cuda.malloc(item * int(np.prod(hi)))
        self.d_out = self.cuda.malloc(item * self.max_batch * self.classes)

    def _is_input(self, trt: Any, name: str) -> bool:
        if self.tensor_api:
            return self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        return self.engine.binding_is_input(name)

    def _shape(self, name: str) -> tuple[int, ...]:
        if self.tensor_api:
            return tuple(self.engine.get_tensor_shape(name))
        return tuple(self.engine.get_binding_shape(name))

    def _profile_shapes(self, name: str) -> tuple[tuple[int, ...], ...]:
        if hasattr(self.engine, "get_tensor_profile_shape"):
            return tuple(tuple(s) for s in self.engine.get_tensor_profile_shape(name, 0))
        index = self.engine.get_binding_index(name)
        return tuple(tuple(s) for s in self.engine.get_profile_shape(0, index))

    def prepare(self, images: Any) -> Any:
        """Copy the batch to the device once and set the input shape."""
        self.infer(images)
        self.cuda.htod(self.d_in, images)
        return images.shape

    def run_prepared(self, prepared: Any) -> None:
        """Execute on the staged device buffer and wait; no copies."""
        self._execute(prepared)
        self.cuda.sync(self.stream)

    def _execute(self, shape: tuple[int, ...]) -> None:
        if self.tensor_api:
            self.context.set_input_shape(self.input_name, shape)
            self.context.set_tensor_address(self.input_name, self.d_in)
            self.context.set_tensor_address(self.output_name, self.d_out)
            self.context.execute_async_v3(self.stream)
        else:
            self.context.set_binding_shape(self.engine.get_binding_index(self.input_name), shape)
            self.context.execute_async_v2([self.d_in, self.d_out], self.stream)

    def _infer_impl(self, images: Any) -> Any:
        n = images.shape[0]
        if n < self.min_batch:
            raise AgentError(f"tensorrt: batch {n} is below the engine's minimum {self.min_batch}")
        self.cuda.htod(self.d_in, images)
        out = self.np.empty((n, self.classes), dtype=self.np.float32)
        self._execute(images.shape)
        self.cuda.sync(self.stream)
        self.cuda.dtoh(out, self.d_out)
        return out

    def gpu_memory_bytes(self) -> int | None:
        """Device memory in use (the engine and its buffers)."""
        return self.cuda.mem_used()

    def close(self) -> None:
        """Free the device buffers."""
        self.cuda.free(self.d_in)
        self.cuda.free(self.d_out)


# =========================================================================== TensorRT build


def import_tensorrt() -> Any:
    """``import tensorrt`` or a one-line error saying how to get it."""
    try:
        import tensorrt as trt
    except ImportError:
        raise AgentError(
            "TensorRT is not installed here: pip install 'compress-toolkit[trt]' on a machine with an NVIDIA "
            "GPU (JetPack ships it on Jetson)"
        ) from None
    return trt


#: Attributes probed on the tensorrt module / builder objects (feature detection, not versions).
FEATURES = (
    "BuilderFlag.FP16",
    "BuilderFlag.INT8",
    "NetworkDefinitionCreationFlag.EXPLICIT_BATCH",
    "NetworkDefinitionCreationFlag.STRONGLY_TYPED",
    "IBuilderConfig.set_memory_pool_limit",
    "IBuilderConfig.builder_optimization_level",
    "IBuilderConfig.create_timing_cache",
    "Builder.build_serialized_network",
)


def probe_features(trt: Any) -> list[str]:
    """Which of `FEATURES` this TensorRT has."""
    found = []
    for feature in FEATURES:
        obj: Any = trt
        for part in feature.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            found.append(feature)
    return found


def build_recipe(
    precision: str,
    batch: tuple[int, int, int],
    input_shape: Sequence[int],
    *,
    features: Sequence[str],
    workspace_gb: float = 2.0,
    optimization_level: int | None = None,
    input_name: str = "input",
) -> dict[str, Any]:
    """What to set for a build, decided from the available `features` (pure; logged before a build).

    Returns:
        ``source`` (which ONNX precision to parse: ``fp32`` or ``int8`` Q/DQ or ``fp16``),
        ``network_flags``, ``builder_flags``, ``workspace_bytes`` and how to set it, the
        optimisation ``profile``, ``optimization_level`` (or None where unsupported), ``notes``.
    """
    if precision not in ("fp32", "fp16", "int8"):
        raise AgentError(f"TensorRT precision must be fp32, fp16 or int8, got '{precision}'")
    feats = set(features)
    lo, opt, hi = batch
    dims = list(input_shape)
    recipe: dict[str, Any] = {
        "precision": precision,
        "network_flags": [],
        "builder_flags": [],
        "workspace_bytes": int(workspace_gb * (1 << 30)),
        "workspace_api": "set_memory_pool_limit"
        if "IBuilderConfig.set_memory_pool_limit" in feats
        else "max_workspace_size",
        "profile": {input_name: {"min": [lo, *dims], "opt": [opt, *dims], "max": [hi, *dims]}},
        "optimization_level": optimization_level
        if "IBuilderConfig.builder_optimization_level" in feats
        else None,
        "timing_cache": "IBuilderConfig.create_timing_cache" in feats,
        "build_api": "build_serialized_network"
        if "Builder.build_serialized_network" in feats
        else "build_engine",
        "notes": [],
    }
    if (
        "NetworkDefinitionCreationFlag.EXPLICIT_BATCH" in feats
        and "NetworkDefinitionCreationFlag.STRONGLY_TYPED" not in feats
    ):
        recipe["network_flags"].append("EXPLICIT_BATCH")  # needed up to TensorRT 9; implicit later
    weak = {"fp16": "BuilderFlag.FP16", "int8": "BuilderFlag.INT8"}
    if precision == "fp32":
        recipe["source"] = "fp32"
    elif precision == "fp16":
        if weak["fp16"] in feats:
            recipe["source"] = "fp32"
            recipe["builder_flags"].append("FP16")
        else:  # weakly-typed precision flags are gone: build a strongly typed network from FP16 ONNX
            recipe["source"] = "fp16"
            recipe["network_flags"].append("STRONGLY_TYPED")
            recipe["notes"].append(
                "no FP16 builder flag: strongly typed network from the FP16 ONNX"
            )
    else:
        recipe["source"] = "int8"  # explicit quantisation: the Q/DQ ONNX carries the scales
        if weak["int8"] in feats:
            recipe["builder_flags"].append("INT8")
            if weak["fp16"] in feats:
                recipe["builder_flags"].append("FP16")  # layers without Q/DQ may fall back to fp16
        else:
            recipe["network_flags"].append("STRONGLY_TYPED")
            recipe["notes"].append(
                "no INT8 builder flag: strongly typed network from the Q/DQ ONNX"
            )
    if optimization_level is not None and recipe["optimization_level"] is None:
        recipe["notes"].append(
            "builder_optimization_level is not available in this TensorRT; ignored"
        )
    return recipe


def trtexec_command(
    recipe: dict[str, Any], onnx_path: str, plan_path: str, cache_path: str | None
) -> list[str]:
    """The ``trtexec`` command line equivalent to `recipe` (used on devices that have trtexec)."""
    name, prof = next(iter(recipe["profile"].items()))

    def shape(key: str) -> str:
        return f"{name}:" + "x".join(str(d) for d in prof[key])

    cmd = [
        "trtexec",
        f"--onnx={onnx_path}",
        f"--saveEngine={plan_path}",
        f"--minShapes={shape('min')}",
        f"--optShapes={shape('opt')}",
        f"--maxShapes={shape('max')}",
        f"--memPoolSize=workspace:{recipe['workspace_bytes'] >> 20}",
    ]
    cmd += [f"--{flag.lower()}" for flag in recipe["builder_flags"]]
    if "STRONGLY_TYPED" in recipe["network_flags"]:
        cmd.append("--stronglyTyped")
    if recipe.get("optimization_level") is not None:
        cmd.append(f"--builderOptimizationLevel={recipe['optimization_level']}")
    if cache_path:
        cmd.append(f"--timingCacheFile={cache_path}")
    return cmd


def build_engine(
    onnx_path: str,
    plan_path: str,
    recipe: dict[str, Any],
    *,
    timing_cache: str | None = None,
    log: Callable[[str], None] = print,
) -> None:
    """Build a serialized engine from `onnx_path` with TensorRT's Python API, as `recipe` says."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    for flag in recipe["network_flags"]:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, flag))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, "rb") as fh:
        if not parser.parse(fh.read()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise AgentError(f"TensorRT could not parse '{onnx_path}': {errors}")
    config = builder.create_builder_config()
    if recipe["workspace_api"] == "set_memory_pool_limit":
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, recipe["workspace_bytes"])
    else:
        config.max_workspace_size = recipe["workspace_bytes"]
    for flag in recipe["builder_flags"]:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if recipe.get("optimization_level") is not None:
        config.builder_optimization_level = recipe["optimization_level"]
    profile = builder.create_optimization_profile()
    for name, shapes in recipe["profile"].items():
        profile.set_shape(name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)
    cache = None
    if timing_cache and recipe["timing_cache"]:
        blob = Path(timing_cache).read_bytes() if Path(timing_cache).exists() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, False)
    log("TensorRT build: " + json.dumps({k: v for k, v in recipe.items() if k != "notes"}))
    if recipe["build_api"] == "build_serialized_network":
        plan = builder.build_serialized_network(network, config)
    else:
        engine = builder.build_engine(network, config)
        plan = engine.serialize() if engine is not None else None
    if plan is None:
        raise AgentError("TensorRT failed to build the engine (see the TensorRT log above)")
    _atomic_write(plan_path, bytes(plan))
    if cache is not None and timing_cache:
        _atomic_write(timing_cache, bytes(config.get_timing_cache().serialize()))


def _atomic_write(path: str, data: bytes) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def file_sha256(path: str) -> str:
    """SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def engine_sidecar(
    recipe: dict[str, Any],
    *,
    tensorrt_version: str,
    gpu: dict[str, Any] | None,
    source_sha256: str,
) -> dict[str, Any]:
    """What an engine was built for: TensorRT version, GPU, precision, shapes, source file."""
    return {
        "agent_version": AGENT_VERSION,
        "tensorrt_version": tensorrt_version,
        "gpu": (gpu or {}).get("name"),
        "compute_capability": (gpu or {}).get("compute_capability"),
        "precision": recipe["precision"],
        "shapes": recipe["profile"],
        "build": {
            k: recipe[k]
            for k in ("network_flags", "builder_flags", "workspace_bytes", "optimization_level")
        },
        "source_sha256": source_sha256,
    }


def sidecar_mismatches(
    sidecar: dict[str, Any], *, tensorrt_version: str, gpu: dict[str, Any] | None
) -> list[str]:
    """How this machine differs from the one an engine was built on (empty = compatible)."""
    problems = []
    if sidecar.get("tensorrt_version") != tensorrt_version:
        problems.append(f"TensorRT {sidecar.get('tensorrt_version')} vs {tensorrt_version} here")
    here_cc = (gpu or {}).get("compute_capability")
    if sidecar.get("compute_capability") != here_cc:
        problems.append(f"compute capability {sidecar.get('compute_capability')} vs {here_cc} here")
    if sidecar.get("gpu") != (gpu or {}).get("name"):
        problems.append(f"GPU '{sidecar.get('gpu')}' vs '{(gpu or {}).get('name')}' here")
    return problems


def check_engine(plan_path: str) -> dict[str, Any]:
    """Read an engine's sidecar and refuse one built for another GPU or TensorRT version."""
    side_path = plan_path + ".json"
    if not os.path.exists(side_path):
        raise AgentError(
            f"'{plan_path}' has no sidecar '{side_path}'; rebuild it with compress so it can be checked"
        )
    with open(side_path) as fh:
        sidecar = json.load(fh)
    trt = import_tensorrt()
    problems = sidecar_mismatches(sidecar, tensorrt_version=trt.__version__, gpu=gpu_identity())
    if problems:
        raise AgentError(
            f"engine '{plan_path}' was built for another machine ({'; '.join(problems)}); TensorRT engines are "
            "not portable: rebuild it here from the ONNX file"
        )
    return sidecar


def build_cached(
    onnx_path: str,
    precision: str,
    batch: tuple[int, int, int],
    input_shape: Sequence[int],
    cache_dir: str,
    *,
    workspace_gb: float = 2.0,
    optimization_level: int | None = None,
    log: Callable[[str], None] = print,
) -> str:
    """An engine for `onnx_path` on this machine, built once and then reused from `cache_dir`.

    The cache key is (model hash, TensorRT version, GPU, precision, shapes). Builds with
    ``trtexec`` when present, else with the Python API.
    """
    trt = import_tensorrt()
    gpu = gpu_identity()
    if gpu is None:
        raise AgentError("TensorRT needs an NVIDIA GPU and none is visible on this machine")
    recipe = build_recipe(
        precision,
        batch,
        input_shape,
        features=probe_features(trt),
        workspace_gb=workspace_gb,
        optimization_level=optimization_level,
    )
    source = file_sha256(onnx_path)
    key = hashlib.sha256(
        json.dumps(
            [
                source,
                trt.__version__,
                gpu,
                recipe["profile"],
                recipe["builder_flags"],
                recipe["network_flags"],
            ],
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    os.makedirs(cache_dir, exist_ok=True)
    plan = os.path.join(cache_dir, f"{key}.{precision}.plan")
    if os.path.exists(plan) and os.path.exists(plan + ".json"):
        log(f"reusing cached engine {plan}")
        return plan
    timing = os.path.join(cache_dir, "timing.cache")
    if shutil.which("trtexec"):
        cmd = trtexec_command(recipe, onnx_path, plan, timing)
        log("building with " + " ".join(cmd))
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not os.path.exists(plan):
            raise AgentError(
                f"trtexec failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}"
            )
    else:
        build_engine(onnx_path, plan, recipe, timing_cache=timing, log=log)
    sidecar = engine_sidecar(
        recipe, tensorrt_version=trt.__version__, gpu=gpu, source_sha256=source
    )
    _atomic_write(plan + ".json", json.dumps(sidecar, indent=2).encode())
    return plan


# =========================================================================== profiling


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process in MB (Linux/macOS)."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1024.0 if sys.platform != "darwin" else peak / (1024.0 * 1024.0)
    except (ImportError, OSError):
        return None


def make_runner(
    path: str, runtime: str, *, providers: list[str] | None = None, threads: int | None = None
) -> Runner:
    """The runner for `runtime` (``onnxruntime`` or ``tensorrt``)."""
    if runtime == "onnxruntime":
        return OnnxRuntimeRunner(path, providers=providers, threads=threads)
    if runtime == "tensorrt":
        check_engine(path)
        return TensorRTRunner(path)
    raise AgentError(f"unknown runtime '{runtime}' (the agent runs onnxruntime and tensorrt)")


def evaluate(
    runner: Runner,
    images: Any,
    labels: Any,
    mean: Sequence[float],
    std: Sequence[float],
    batch: int,
) -> dict[str, Any]:
    """Top-1 of `runner` on uint8 images normalised with `mean`/`std`."""
    import numpy as np

    m = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    correct = 0
    for i in range(0, len(labels), batch):
        x = ((images[i : i + batch].astype(np.float32) / 255.0 - m) / s).astype(np.float32)
        correct += int((runner.infer(x).argmax(1) == labels[i : i + batch]).sum())
    return {"top1": correct / max(1, len(labels)), "samples": len(labels)}


def profile_runner(
    runner: Runner,
    batches: Sequence[int],
    *,
    model_path: str,
    eval_path: str | None = None,
    warmup: int = 10,
    iters: int = 50,
    duration: float = 0.0,
    input_shape: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Latency per batch size, accuracy, size, memory and environment of one runner here."""
    import numpy as np

    shape = tuple(input_shape or list(runner.input_shape[1:]))
    if not shape or any(d is None for d in shape):
        raise AgentError(
            "the model's input shape is dynamic beyond the batch; pass --input-shape C,H,W"
        )
    gpu_before = runner.gpu_memory_bytes()
    results: dict[str, Any] = {"batches": {}}
    rng = np.random.default_rng(0)
    with Tegrastats() as tegra:
        for b in batches:
            x = rng.standard_normal((b, *shape), dtype=np.float32)
            times = time_calls(
                lambda x=x: runner.infer(x), warmup=warmup, repeats=iters, min_seconds=duration
            )
            results["batches"][str(b)] = summarize(times, b)
            staged = runner.prepare(x)
            model_only = time_calls(
                lambda s=staged: runner.run_prepared(s), warmup=warmup, repeats=iters
            )
            results["batches"][str(b)]["model_only"] = summarize(model_only, b)
    results["power"] = tegra.summary()
    if eval_path:
        data = np.load(eval_path)
        results["accuracy"] = evaluate(
            runner, data["images"], data["labels"], data["mean"], data["std"], batch=max(batches)
        )
    gpu_after = runner.gpu_memory_bytes()
    results.update(
        runtime=runner.name,
        model=os.path.basename(model_path),
        model_bytes=os.path.getsize(model_path),
        input_shape=list(shape),
        peak_rss_mb=peak_rss_mb(),
        gpu_mem_mb=(gpu_after - (gpu_before or 0)) / 2**20 if gpu_after is not None else None,
        providers=getattr(runner, "providers", None),
        environment=environment(),
        agent_version=AGENT_VERSION,
    )
    return results


def profile(
    model_path: str,
    runtime: str,
    batches: Sequence[int],
    *,
    eval_path: str | None = None,
    warmup: int = 10,
    iters: int = 50,
    duration: float = 0.0,
    providers: list[str] | None = None,
    threads: int | None = None,
    input_shape: Sequence[int] | None = None,
) -> dict[str, Any]:
    """`profile_runner` for an ONNX file (onnxruntime) or a TensorRT engine on this machine."""
    runner = make_runner(model_path, runtime, providers=providers, threads=threads)
    try:
        return profile_runner(
            runner,
            batches,
            model_path=model_path,
            eval_path=eval_path,
            warmup=warmup,
            iters=iters,
            duration=duration,
            input_shape=input_shape,
        )
    finally:
        runner.close()


# =========================================================================== command line


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.replace(" ", "").split(",") if v]


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``profile``, ``build-engine`` or ``env``; JSON on stdout or to --json."""
    ap = argparse.ArgumentParser(prog="agent.py", description="compress device agent")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("profile", help="time a model and measure its accuracy")
    p.add_argument("model")
    p.add_argument("--runtime", default="onnxruntime", choices=["onnxruntime", "tensorrt"])
    p.add_argument("--batches", default="1")
    p.add_argument("--eval", dest="eval_path")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--duration", type=float, default=0.0)
    p.add_argument("--providers", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--input-shape", default=None)
    p.add_argument(
        "--build", default=None, help="build a TensorRT engine from this ONNX first: PRECISION"
    )
    p.add_argument("--batch-profile", default="1:32:64")
    p.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/compress-agent"))
    p.add_argument("--json", dest="json_path")
    b = sub.add_parser("build-engine", help="build (or reuse) a TensorRT engine for an ONNX file")
    b.add_argument("onnx")
    b.add_argument("--precision", default="fp16")
    b.add_argument("--batch", default="1:32:64")
    b.add_argument("--input-shape", required=True)
    b.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/compress-agent"))
    b.add_argument("--json", dest="json_path")
    e = sub.add_parser("env", help="describe this machine")
    e.add_argument("--json", dest="json_path")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "env":
            out: dict[str, Any] = environment()
        elif args.cmd == "build-engine":
            plan = build_cached(
                args.onnx,
                args.precision,
                tuple(_ints(args.batch.replace(":", ","))),
                _ints(args.input_shape),
                args.cache_dir,
                log=lambda m: print(m, file=sys.stderr),
            )
            out = {"engine": plan}
        else:
            model = args.model
            shape = _ints(args.input_shape) if args.input_shape else None
            if args.build:
                if shape is None:
                    raise AgentError("--build needs --input-shape C,H,W")
                model = build_cached(
                    model,
                    args.build,
                    tuple(_ints(args.batch_profile.replace(":", ","))),
                    shape,
                    args.cache_dir,
                    log=lambda m: print(m, file=sys.stderr),
                )
            out = profile(
                model,
                args.runtime,
                _ints(args.batches),
                eval_path=args.eval_path,
                warmup=args.warmup,
                iters=args.iters,
                duration=args.duration,
                providers=args.providers.split(",") if args.providers else None,
                threads=args.threads,
                input_shape=shape,
            )
    except AgentError as exc:
        print(json.dumps({"error": str(exc)}))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(out, indent=2, default=str)
    if args.json_path:
        _atomic_write(args.json_path, text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
