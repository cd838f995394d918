"""TensorRT engines: feature detection, build recipe, builds, sidecars and an on-device cache.

Builds go through TensorRT's Python API or ``trtexec``; the sidecar JSON says what an engine was
built for (TensorRT version, GPU, precision, shapes), because engines are not portable.
"""

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from compress.runtime import RUNTIME_VERSION
from compress.runtime.cuda import gpu_identity
from compress.runtime.errors import AgentError


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


def probe_features(trt: Any) -> List[str]:
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
    batch: Tuple[int, int, int],
    input_shape: Sequence[int],
    *,
    features: Sequence[str],
    workspace_gb: float = 2.0,
    optimization_level: Optional[int] = None,
    input_name: str = "input",
) -> Dict[str, Any]:
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
    recipe: Dict[str, Any] = {
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
    recipe: Dict[str, Any], onnx_path: str, plan_path: str, cache_path: Optional[str]
) -> List[str]:
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
    recipe: Dict[str, Any],
    *,
    timing_cache: Optional[str] = None,
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
    atomic_write(plan_path, bytes(plan))
    if cache is not None and timing_cache:
        atomic_write(timing_cache, bytes(config.get_timing_cache().serialize()))


def atomic_write(path: str, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync it and rename it onto `path`."""
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
    recipe: Dict[str, Any],
    *,
    tensorrt_version: str,
    gpu: Optional[Dict[str, Any]],
    source_sha256: str,
) -> Dict[str, Any]:
    """What an engine was built for: TensorRT version, GPU, precision, shapes, source file."""
    return {
        "agent_version": RUNTIME_VERSION,
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
    sidecar: Dict[str, Any], *, tensorrt_version: str, gpu: Optional[Dict[str, Any]]
) -> List[str]:
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


def check_engine(plan_path: str) -> Dict[str, Any]:
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
    batch: Tuple[int, int, int],
    input_shape: Sequence[int],
    cache_dir: str,
    *,
    workspace_gb: float = 2.0,
    optimization_level: Optional[int] = None,
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
        done = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True
        )
        if done.returncode != 0 or not os.path.exists(plan):
            raise AgentError(
                f"trtexec failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}"
            )
    else:
        build_engine(onnx_path, plan, recipe, timing_cache=timing, log=log)
    sidecar = engine_sidecar(
        recipe, tensorrt_version=trt.__version__, gpu=gpu, source_sha256=source
    )
    atomic_write(plan + ".json", json.dumps(sidecar, indent=2).encode())
    return plan
