from __future__ import annotations

import numpy as np
import pytest
import torch

from compress.runtime import machine, profile, tegrastats, timing
from compress.runtime.errors import AgentError
from compress.runtime.runners import Runner

# Real tegrastats lines: Jetson Nano on JetPack 4.6.1, Orin Nano on JetPack 6, AGX Orin on JetPack 5.
NANO_JP4 = (
    "RAM 1923/3964MB (lfb 2x2MB) SWAP 191/1982MB (cached 6MB) IRAM 0/252kB(lfb 252kB) CPU [5%@1224,4%@1224,"
    "3%@1224,6%@1224] EMC_FREQ 0%@1600 GR3D_FREQ 0%@76 APE 25 PLL@37C CPU@40C PMIC@50C GPU@40C AO@45C "
    "thermal@40C POM_5V_IN 1750/1628 POM_5V_GPU 0/0 POM_5V_CPU 366/406"
)
ORIN_NANO_JP6 = (
    "07-29-2026 18:00:27 RAM 2272/7620MB (lfb 4x4MB) SWAP 221/3810MB (cached 0MB) CPU [0%@729,0%@1036,0%@1036,"
    "0%@1036,0%@729,0%@729] GR3D_FREQ 0% cpu@54.937C soc2@55.562C soc0@56.156C gpu@55.468C tj@56.656C "
    "soc1@56.656C VDD_IN 4673mW/4673mW VDD_CPU_GPU_CV 527mW/527mW VDD_SOC 1339mW/1339mW"
)
AGX_ORIN = (
    "RAM 13123/62841MB (lfb 63x4MB) SWAP 9/31420MB (cached 0MB) CPU [3%@729,4%@729,1%@729,4%@729,1%@729,3%@729,"
    "2%@729,1%@729,4%@729,2%@729,1%@729,1%@729] GR3D_FREQ 0% cpu@48.156C soc2@43.562C soc0@45.125C tj@48.156C "
    "soc1@44.343C VDD_GPU_SOC 3193mW/3193mW VDD_CPU_CV 399mW/399mW VIN_SYS_5V0 4306mW/4306mW"
)


def test_tegrastats_jetpack4_nano():
    s = tegrastats.parse_tegrastats_line(NANO_JP4)
    assert (s["ram_used_mb"], s["ram_total_mb"]) == (1923, 3964)
    assert s["cpu_load"] == [5, 4, 3, 6] and s["gpu_load"] == 0
    assert s["rails_mw"] == {"POM_5V_IN": 1750, "POM_5V_GPU": 0, "POM_5V_CPU": 366}
    assert s["power_mw"] == 1750 and s["temps_c"]["GPU"] == 40.0


def test_tegrastats_jetpack6_orin_nano():
    s = tegrastats.parse_tegrastats_line(ORIN_NANO_JP6)
    assert s["power_mw"] == 4673 and s["rails_mw"]["VDD_CPU_GPU_CV"] == 527
    assert len(s["cpu_load"]) == 6 and s["temps_c"]["tj"] == pytest.approx(56.656)


def test_tegrastats_agx_orin_sums_rails_without_a_board_total():
    s = tegrastats.parse_tegrastats_line(AGX_ORIN)
    assert s["power_mw"] == 3193 + 399 + 4306
    assert s["ram_total_mb"] == 62841 and len(s["cpu_load"]) == 12


def test_jetson_release_and_nvpmodel_parsers():
    text = "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023"
    assert machine.parse_nv_tegra_release(text) == "35.4.1"
    assert machine.parse_nvpmodel_query("NV Power Mode: MAXN\n0\n") == {"name": "MAXN", "id": 0}
    assert machine.parse_nvpmodel_query("NV Power Mode: 15W\n2\n") == {"name": "15W", "id": 2}
    assert machine.parse_nvpmodel_query("") is None


def test_profiler_statistics_on_a_function_of_known_delay(monkeypatch):
    clock = {"t": 100.0}
    delays = [0.001 * d for d in (5, 1, 4, 2, 3, 10, 1, 2, 3, 4)]  # seconds
    it = iter([0.5, 0.5, *delays])  # two warm-up calls, then the timed ones

    def fn():
        clock["t"] += next(it)

    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock["t"])
    times = timing.time_calls(fn, warmup=2, repeats=10)
    expected = [d * 1000 for d in delays]
    assert times == pytest.approx(expected)
    s = timing.summarize(times, batch=8)
    for key, q in (("p50_ms", 50), ("p90_ms", 90), ("p99_ms", 99)):
        assert s[key] == pytest.approx(np.percentile(expected, q))
    assert s["mean_ms"] == pytest.approx(np.mean(expected)) and s["std_ms"] == pytest.approx(
        np.std(expected)
    )
    assert (
        s["throughput"] == pytest.approx(8 * 1000 / np.percentile(expected, 50)) and s["runs"] == 10
    )


def test_runners_agree_numerically(digits_model, tmp_path):
    import compress
    from compress.deploy.runners import make_runner
    from compress.exporters.onnx import export_onnx

    model = compress.load_model(digits_model)
    onnx = export_onnx(model, tmp_path / "m.onnx", (1, 8, 8))
    x = np.random.default_rng(0).standard_normal((5, 1, 8, 8), dtype=np.float32)
    torch_out = make_runner("torch", str(digits_model), device="cpu").infer(x)
    ort_out = make_runner("onnxruntime", str(onnx)).infer(x)
    with torch.no_grad():
        direct = model(torch.from_numpy(x)).numpy()
    assert np.abs(torch_out - direct).max() == 0
    assert np.abs(ort_out - torch_out).max() < 1e-4


def test_runner_rejects_bad_inputs(digits_model, tmp_path):
    from compress.deploy.runners import make_runner

    runner = make_runner("torch", str(digits_model), device="cpu")
    with pytest.raises(AgentError, match="4-D numpy"):
        runner.infer(np.zeros((1, 8, 8), np.float32))
    with pytest.raises(AgentError, match="float32"):
        runner.infer(np.zeros((1, 1, 8, 8), np.float64))
    with pytest.raises(AgentError, match=r"shape \(N, 1, 8, 8\)"):
        runner.infer(np.zeros((1, 3, 8, 8), np.float32))


def test_evaluate_normalises_uint8_images():
    class Identity(Runner):
        name = "identity"

        def _infer_impl(self, images):
            return images.reshape(len(images), -1)[:, :3]

    images = np.zeros((3, 1, 1, 3), dtype=np.uint8)
    for i in range(3):
        images[i, 0, 0, i] = 255
    out = profile.evaluate(Identity(), images, np.array([0, 1, 2]), [0.0], [1.0], batch=2)
    assert out == {"top1": 1.0, "samples": 3}


def test_time_based_sampling_takes_at_least_n_calls_and_t_seconds(monkeypatch):
    clock = {"t": 0.0}

    def fn():  # every call takes 1 ms on the fake clock
        clock["t"] += 0.001

    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock["t"])
    assert len(timing.time_calls(fn, warmup=0, repeats=10, min_seconds=0.05)) == 50  # T rules
    assert len(timing.time_calls(fn, warmup=0, repeats=80, min_seconds=0.05)) == 80  # N rules
    assert (
        timing.summarize(timing.time_calls(fn, warmup=0, repeats=3, min_seconds=0.01))["runs"] == 10
    )


def test_a_kernel_that_refuses_to_run_is_a_one_line_error(tmp_path):
    """An ONNX file whose kernel fails at run time (a Reshape to a size the batch does not
    divide; an INT8 kernel refusing its scales) is the runner's error, the file named, and
    `compress profile` prints it on one line."""
    import onnx
    from click.testing import CliRunner
    from onnx import TensorProto, helper

    from compress.cli import cli
    from compress.runtime.runners import make_runner
    from tests.reliability.test_cli_errors import assert_one_line_error

    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 3])
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["input", "shape"], ["logits"], name="odd_reshape")],
        "bad",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 2, 2])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
        [shape],
    )
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    runner = make_runner("onnxruntime", str(path))
    with pytest.raises(AgentError, match=r"onnxruntime could not run .*bad\.onnx: .*odd_reshape"):
        runner.infer(np.zeros((1, 1, 2, 2), np.float32))
    result = CliRunner().invoke(cli, ["profile", str(path), "--batch", "1", "--eval-images", "0",
                                      "--warmup", "1", "--iters", "1", "--duration", "0"])  # fmt: skip
    assert_one_line_error(result, "onnxruntime could not run")
