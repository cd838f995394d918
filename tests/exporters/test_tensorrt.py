"""The pure parts of the TensorRT path (recipe, trtexec line, sidecar) and, where TensorRT and
a GPU exist, a real engine build (marked ``trt``)."""

from __future__ import annotations

import pytest

from compress.runtime import engines
from compress.runtime.errors import AgentError

TRT_85 = [
    "BuilderFlag.FP16",
    "BuilderFlag.INT8",
    "NetworkDefinitionCreationFlag.EXPLICIT_BATCH",
    "IBuilderConfig.set_memory_pool_limit",
    "IBuilderConfig.builder_optimization_level",
    "IBuilderConfig.create_timing_cache",
    "Builder.build_serialized_network",
]
TRT_10 = [*TRT_85, "NetworkDefinitionCreationFlag.STRONGLY_TYPED"]
TRT_STRONGLY_TYPED_ONLY = [f for f in TRT_10 if not f.startswith("BuilderFlag.")]
TRT_OLD = ["BuilderFlag.FP16", "BuilderFlag.INT8", "NetworkDefinitionCreationFlag.EXPLICIT_BATCH"]


def recipe(precision, features, **kw):
    return engines.build_recipe(precision, (1, 32, 64), (3, 32, 32), features=features, **kw)


def test_fp16_on_tensorrt_8_5_and_10():
    r85 = recipe("fp16", TRT_85, optimization_level=5)
    assert r85["source"] == "fp32" and r85["builder_flags"] == ["FP16"]
    assert r85["network_flags"] == ["EXPLICIT_BATCH"] and r85["optimization_level"] == 5
    r10 = recipe("fp16", TRT_10)
    assert r10["network_flags"] == [] and r10["builder_flags"] == ["FP16"]
    assert r85["profile"]["input"] == {
        "min": [1, 3, 32, 32],
        "opt": [32, 3, 32, 32],
        "max": [64, 3, 32, 32],
    }


def test_int8_uses_the_qdq_onnx_with_fp16_fallback():
    r = recipe("int8", TRT_10)
    assert r["source"] == "int8" and r["builder_flags"] == ["INT8", "FP16"]


def test_without_weak_precision_flags_builds_strongly_typed_networks():
    r = recipe("fp16", TRT_STRONGLY_TYPED_ONLY)
    assert (
        r["source"] == "fp16"
        and "STRONGLY_TYPED" in r["network_flags"]
        and r["builder_flags"] == []
    )
    r8 = recipe("int8", TRT_STRONGLY_TYPED_ONLY)
    assert r8["source"] == "int8" and "STRONGLY_TYPED" in r8["network_flags"]


def test_old_api_falls_back_and_says_so():
    r = recipe("fp32", TRT_OLD, optimization_level=3, workspace_gb=1)
    assert r["workspace_api"] == "max_workspace_size" and r["workspace_bytes"] == 1 << 30
    assert r["build_api"] == "build_engine" and r["optimization_level"] is None
    assert any("builder_optimization_level" in n for n in r["notes"])
    with pytest.raises(AgentError, match="fp32, fp16 or int8"):
        recipe("int4", TRT_10)


def test_trtexec_command_mirrors_the_recipe():
    cmd = engines.trtexec_command(
        recipe("int8", TRT_10, optimization_level=4), "m.onnx", "m.plan", "t.cache"
    )
    assert cmd[:3] == ["trtexec", "--onnx=m.onnx", "--saveEngine=m.plan"]
    assert "--minShapes=input:1x3x32x32" in cmd and "--maxShapes=input:64x3x32x32" in cmd
    assert "--int8" in cmd and "--fp16" in cmd and "--builderOptimizationLevel=4" in cmd
    assert "--timingCacheFile=t.cache" in cmd and "--memPoolSize=workspace:2048" in cmd


def test_sidecar_mismatch_is_reported():
    side = engines.engine_sidecar(
        recipe("fp16", TRT_10),
        tensorrt_version="10.3.0",
        gpu={"name": "Orin", "compute_capability": "8.7"},
        source_sha256="ab",
    )
    assert (
        engines.sidecar_mismatches(
            side, tensorrt_version="10.3.0", gpu={"name": "Orin", "compute_capability": "8.7"}
        )
        == []
    )
    problems = engines.sidecar_mismatches(
        side, tensorrt_version="8.5.2", gpu={"name": "Xavier", "compute_capability": "7.2"}
    )
    assert len(problems) == 3 and any("8.5.2" in p for p in problems)


def test_check_engine_without_sidecar(tmp_path):
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"x")
    with pytest.raises(AgentError, match="no sidecar"):
        engines.check_engine(str(plan))


@pytest.mark.trt
def test_real_engine_build_and_run(digits_model, tmp_path):
    from compress.exporters.api import export
    from compress.exporters.base import ExportConfig

    for precision in ("fp32", "fp16", "int8"):
        result = export(
            ExportConfig(
                model=str(digits_model), format="trt", precision=precision, output=str(tmp_path)
            ),
            log=lambda _m: None,
        )
        entry = result["formats"]["trt"]
        assert entry["status"] == "ok" and (tmp_path / f"model.{precision}.plan.json").exists()


def test_trt_export_validates_through_the_one_runner_contract(digits_model, tmp_path, monkeypatch):
    """The crash of issue 16: TensorRT's validation called `runner(images)` on a runner without
    `__call__`. Validation now goes through `make_runner("tensorrt", path).infer`, with the
    engine's batch limits (here a runner with TensorRT's min/max batch serves a real ONNX file,
    registered as the `tensorrt` runtime, because no TensorRT exists on this machine)."""
    import numpy as np

    import compress
    from compress.exporters.base import ExportSettings
    from compress.exporters.onnx import export_onnx
    from compress.exporters.tensorrt import TensorRTExporter
    from compress.exporters.validate import torch_reference, validate
    from compress.runtime import runners
    from compress.runtime.runners.onnxruntime import OnnxRuntimeRunner

    class EngineLike(OnnxRuntimeRunner):  # what TensorRTRunner exposes: bounded batches
        name = "tensorrt"

        def __init__(self, path, **_):
            super().__init__(path)
            self.min_batch, self.max_batch = 2, 16
            self.calls = []

        def _infer_impl(self, images):
            assert 2 <= len(images) <= 16
            self.calls.append(len(images))
            return super()._infer_impl(images)

    _, suffixes, summary = runners._RUNNERS["tensorrt"]
    monkeypatch.setitem(runners._RUNNERS, "tensorrt", (EngineLike, suffixes, summary))
    model = compress.load_model(digits_model)
    onnx_file = export_onnx(model, tmp_path / "m.onnx", (1, 8, 8))
    images = np.random.default_rng(0).standard_normal((33, 1, 8, 8), dtype=np.float32)
    ref = torch_reference(model, images, np.zeros(33, dtype=np.int64))
    exporter = TensorRTExporter(ExportSettings(format="trt", precision="fp16"))
    with exporter.make_runner(onnx_file) as runner:
        report = validate(runner, ref, precision="fp16", fmt="trt")
    assert report["passed"] and report["images"] == 33
    assert runner.calls == [16, 16, 2]  # max-batch chunks; the 1-image tail padded to the minimum


def test_trt_runner_refuses_an_engine_without_sidecar(tmp_path):
    from compress.runtime.runners import make_runner

    plan = tmp_path / "model.fp16.plan"
    plan.write_bytes(b"not an engine")
    with pytest.raises(AgentError, match="no sidecar"):
        make_runner("tensorrt", str(plan))
