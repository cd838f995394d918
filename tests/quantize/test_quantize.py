"""``compress quantize``: QAT/QAD that fixes what post-training INT8 breaks, files that replay their
quantization, learned-scale ONNX, resume, and the one-line errors of every other verb."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml
from click.testing import CliRunner

import compress
import compress.quantize.graph
from compress.artifacts import load_model, read_header, save_model
from compress.cli import cli
from compress.config import build
from tests.conftest import FAST_DIGITS, reloads_identically
from tests.reliability.test_cli_errors import assert_one_line_error


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A resnet8 trained 4 epochs on digits (about 98 %)."""
    from compress.train import TrainConfig, train

    out = tmp_path_factory.mktemp("qat") / "m"
    cfg = {**FAST_DIGITS, "epochs": 4, "device": "cpu", "output": str(out)}
    train(build(TrainConfig, cfg), log=lambda _m: None)
    return out / "model.safetensors"


def outlier(path, tmp_path, factor=150.0):
    """One activation channel `factor`× the others (its BatchNorm scaled up, the next conv's
    weights down: the float model is unchanged). Per-tensor INT8 of that activation loses the
    other channels' resolution: PTQ with TensorRT's symmetric convention breaks on any CPU."""
    model = load_model(path)
    block = model.layer2[0]
    j = int(block.bn1.weight.abs().argmax())
    with torch.no_grad():
        block.bn1.weight[j] *= factor
        block.bn1.bias[j] *= factor
        block.conv2.weight[:, j] /= factor
    return save_model(model, tmp_path / "outlier.safetensors")


def test_qat_fixes_what_post_training_int8_breaks(trained, tmp_path):
    from compress.exporters.api import dataset_images

    model = outlier(trained, tmp_path)
    ptq = run("export", model, "--format", "onnx-int8", "--activation-type", "int8",
              "--no-compare-speed", "-o", tmp_path / "ptq")  # fmt: skip
    assert ptq.exit_code == 2 and "failed validation" in ptq.output
    result = run("quantize", model, "--epochs", "3", "--device", "cpu", "-o", tmp_path / "q",
                 "--set", "progress=false")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "q" / "summary.json").read_text())
    assert summary["top1_int8"] > summary["top1_int8_calibrated"] + 0.03
    assert summary["scales_moved"] > 0 and summary["method"] == "kd"
    exported = run("export", tmp_path / "q" / "model.safetensors", "--format", "onnx-int8",
                   "-o", tmp_path / "e")  # fmt: skip
    assert exported.exit_code == 0, exported.output
    entry = json.loads((tmp_path / "e" / "export.json").read_text())["formats"]["onnx-int8"]
    assert entry["calibration"]["learned_scales"] and entry["validation"]["passed"]
    assert entry["validation"]["top1_agreement"] >= 0.95  # on this CPU's INT8 kernels
    graph = onnx.load(str(tmp_path / "e" / "model.int8.onnx")).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    assert ops <= {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm", "Relu", "Add",
                   "GlobalAveragePool", "Flatten", "Identity", "Constant", "Reshape"}  # fmt: skip
    images, _ = dataset_images(read_header(model), split="test", count=400, data_dir=None)
    with torch.no_grad():
        fp32 = load_model(model)(torch.from_numpy(images)).numpy().argmax(1)
    qat = ort.InferenceSession(str(tmp_path / "e" / "model.int8.onnx"))
    agree_qat = float((qat.run(None, {"input": images})[0].argmax(1) == fp32).mean())
    # the export is the fake-quantized function itself: Q/DQ computed as written (no INT8
    # kernels, whose rounding differs between CPU families) agrees with PyTorch's graph
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    exact = ort.InferenceSession(str(tmp_path / "e" / "model.int8.onnx"), opts)
    with torch.no_grad():
        fq = load_model(tmp_path / "q" / "model.safetensors")(torch.from_numpy(images))
    got = exact.run(None, {"input": images})[0]
    assert float((got.argmax(1) == fq.numpy().argmax(1)).mean()) >= 0.99
    assert agree_qat > json.loads((tmp_path / "ptq" / "export.json").read_text())["rejected"][
        "onnx-int8"]["validation"]["top1_agreement"] + 0.03  # fmt: skip


def test_exported_int8_weights_are_the_fake_quantized_weights(trained, tmp_path):
    """The ONNX file's weights, dequantized, equal the weights PyTorch's fake-quantized model
    computes with, bit for bit, and none sits on a rounding tie (scale ``amax / 127``)."""
    q = tmp_path / "q"
    assert run("quantize", trained, "--epochs", "1", "--device", "cpu", "--method", "none",
               "-o", q, "--set", "progress=false").exit_code == 0  # fmt: skip
    result = run("export", q / "model.safetensors", "--format", "onnx-int8",
                 "--no-compare-speed", "-o", tmp_path / "e")  # fmt: skip
    assert result.exit_code == 0, result.output
    model = load_model(q / "model.safetensors")
    proto = onnx.load(str(tmp_path / "e" / "model.int8.onnx"))
    inits = {t.name for t in proto.graph.initializer}
    quantized = {n.output[0]: n.input[0] for n in proto.graph.node
                 if n.op_type == "QuantizeLinear" and n.input[0] in inits}  # fmt: skip
    weights = {n.output[0]: quantized[n.input[0]] for n in proto.graph.node
               if n.op_type == "DequantizeLinear" and n.input[0] in quantized}  # fmt: skip
    assert len(weights) == 10  # resnet8: 9 convolutions and the classifier
    del proto.graph.output[:]
    proto.graph.output.extend(onnx.ValueInfoProto(name=n) for n in weights)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(proto.SerializeToString(), opts)
    got = session.run(None, {"input": np.zeros((1, 1, 8, 8), np.float32)})
    for (_, name), onnx_weight in zip(weights.items(), got, strict=True):
        layer = model.get_submodule(name.rsplit(".", 2)[0])  # e.g. layer1.0.conv1 of …conv.weight
        weight = layer.conv.weight if hasattr(layer, "conv") else layer.linear.weight
        with torch.no_grad():
            ratio = weight / layer.weight_fake_quant.scale.view(-1, *[1] * (weight.dim() - 1))
            assert float(ratio.abs().max()) <= 127.0 + 1e-3, name  # the largest on ±127
            assert np.array_equal(onnx_weight, layer.weight_fake_quant(weight).numpy()), name


@pytest.mark.parametrize("weights", ["7-bit", "8-bit"])
def test_ort_placement_keeps_learned_scales_and_fuses_every_layer(trained, tmp_path, weights):
    """``--qdq-placement ort`` of a model quantized with uint8 activations: every convolution
    and add runs as a fused ONNX Runtime INT8 kernel, the learned scales stand where a learned
    quantizer covers the tensor, and the file agrees with the fake-quantized model.

    7-bit weights (``--reduce-range``) make ONNX Runtime's kernels exact on every CPU; 8-bit
    ones only where they accumulate in int32 (VNNI, AMX, ARM): on x86 AVX2 without VNNI its
    u8s8 products saturate (the file lost 4.7 points against the model on an AMD EPYC)."""
    from collections import Counter

    from compress.exporters.api import dataset_images
    from compress.runtime.machine import int8_products_saturate

    if weights == "8-bit" and int8_products_saturate():
        pytest.skip("8-bit weights saturate ONNX Runtime's INT8 kernels on x86 AVX2 without VNNI")
    q = tmp_path / "q"
    extra = ["--reduce-range"] if weights == "7-bit" else []
    assert run("quantize", trained, "--epochs", "1", "--device", "cpu", "--activation-type",
               "uint8", *extra, "-o", q, "--set", "progress=false").exit_code == 0  # fmt: skip
    assert read_header(q / "model.safetensors").quantization["reduce_range"] == bool(extra)
    # the ort placement is a uint8 model's default: asked for once, left to the default once
    placement = [] if weights == "7-bit" else ["--qdq-placement", "ort"]
    result = run("export", q / "model.safetensors", "--format", "onnx-int8", *placement,
                 "--no-compare-speed", "-o", tmp_path / "e")  # fmt: skip
    assert result.exit_code == 0, result.output
    entry = json.loads((tmp_path / "e" / "export.json").read_text())["formats"]["onnx-int8"]
    calibration = entry["calibration"]
    assert calibration["placement"] == "ort" and calibration["learned_tensors"] > 0
    assert entry["validation"]["passed"]
    path = tmp_path / "e" / "model.int8.onnx"
    model = load_model(q / "model.safetensors")
    scales = {n: v for n, v in compress.quantize.graph.scales(model).items() if "act" in n}
    proto = onnx.load(str(path))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    used = {float(inits[n.input[1]]) for n in proto.graph.node
            if n.op_type == "QuantizeLinear" and n.input[1] in inits}  # fmt: skip
    assert {round(v[0], 6) for v in scales.values()} <= {round(u, 6) for u in used}
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node)
    assert ops["QLinearConv"] == 9 and ops["QLinearAdd"] == 3, ops
    assert ops["Conv"] == 0 and ops["Add"] == 0 and ops["Relu"] == 0, ops
    # no Dequantize/Quantize pair between two INT8 kernels: only the input is quantized (a
    # ReLU read by a block and its shortcut left one; `merge_clipping_relus`)
    assert ops["QuantizeLinear"] == 1 and ops["DequantizeLinear"] == 0, ops
    assert calibration["merged_relus"] > 0 and calibration["pre_optimized"]
    # the logits stay float, as in the fake-quantized model; the classifier is still INT8
    assert calibration["float_outputs"] == [o.name for o in proto.graph.output]
    producer = {o: n.op_type for n in proto.graph.node for o in n.output}
    assert producer[proto.graph.output[0].name] == "Gemm"
    assert ops["QGemm"] == 1 and ops["Gemm"] == 0, ops
    images, _ = dataset_images(read_header(q / "model.safetensors"), split="test", count=400,
                               data_dir=None)  # fmt: skip
    with torch.no_grad():
        fq = model(torch.from_numpy(images)).numpy().argmax(1)
    got = ort.InferenceSession(str(path)).run(None, {"input": images})[0].argmax(1)
    # the model adds the int32 bias ONNX Runtime's kernels add: the same function up to rounding
    assert read_header(q / "model.safetensors").quantization["bias"] == "int32"
    assert float((got == fq).mean()) >= 0.99


def test_quantized_files_replay_their_quantization_in_a_fresh_process(trained, tmp_path):
    out = tmp_path / "q"
    assert run("quantize", trained, "--epochs", "1", "--device", "cpu", "--method", "none",
               "-o", out, "--set", "progress=false").exit_code == 0  # fmt: skip
    path = out / "model.safetensors"
    header = read_header(path)
    assert header.quantized and header.quantization["residual_adds"] == 3
    model = load_model(path)
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        y = model(x)
        assert torch.equal(model(x), y)  # evaluating never moves the scales
    assert reloads_identically(path, x, y)
    info = run("info", path)
    assert "quantized" in info.output and "int8" in info.output
    pruned = tmp_path / "p"
    assert run("prune", trained, "--ratio", "0.3", "--no-latency", "-o", pruned).exit_code == 0
    both = tmp_path / "pq"
    assert run("quantize", pruned / "model.safetensors", "--epochs", "1", "--device", "cpu",
               "-o", both, "--set", "progress=false").exit_code == 0  # fmt: skip
    header = read_header(both / "model.safetensors")
    assert header.pruned and header.quantized
    model = load_model(both / "model.safetensors")
    with torch.no_grad():
        assert reloads_identically(both / "model.safetensors", x, model(x))


def test_sigkill_then_resume_continues_exactly(trained, tmp_path):
    recipe = {"model": str(trained), "epochs": 3, "device": "cpu", "threads": 1,
              "progress": False, "data": {"name": "digits", "batch_size": 64}}  # fmt: skip
    from compress.quantize.api import quantize
    from compress.quantize.config import QuantizeConfig

    ref = quantize(build(QuantizeConfig, {**recipe, "output": str(tmp_path / "ref")}),
                   log=lambda _m: None)  # fmt: skip
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "compress", "quantize", "--config", str(cfg), "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            path = out / "metrics.jsonl"
            if path.exists() and path.read_text().endswith("\n"):
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    resumed = quantize(build(QuantizeConfig, {**recipe, "output": str(out), "resume": True}),
                       log=lambda _m: None)  # fmt: skip
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3]
    assert resumed["top1_int8"] == ref["top1_int8"]
    a, b = load_model(out / "model.safetensors"), load_model(tmp_path / "ref" / "model.safetensors")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka


def test_quantize_errors_are_one_line(trained, tmp_path):
    out = tmp_path / "q"
    assert run("quantize", trained, "--epochs", "1", "--device", "cpu", "-o", out,
               "--set", "progress=false").exit_code == 0  # fmt: skip
    quantized = out / "model.safetensors"
    assert_one_line_error(run("quantize", quantized, "-o", tmp_path / "x"), "already quantized")
    assert_one_line_error(
        run("export", quantized, "--format", "onnx", "-o", tmp_path / "e"), "cannot hold"
    )
    assert_one_line_error(
        run("export", trained, "--format", "onnx-int8", "--qdq-placement", "ort",
            "-o", tmp_path / "p"),
        "is float",
    )  # fmt: skip
    assert_one_line_error(
        run("quantize", trained, "--method", "fitnet", "-o", tmp_path / "f"), "logit objectives"
    )
    other = compress.create_model("resnet8", num_classes=4, in_channels=1)
    teacher = save_model(other, tmp_path / "t.safetensors", dataset="digits", input_size=(8, 8))
    assert_one_line_error(
        run("quantize", trained, "--teacher", teacher, "-o", tmp_path / "g"), "4 classes"
    )


def test_quantize_from_the_notebook_and_the_pipeline(trained, tmp_path):
    result = compress.quantize(model=str(trained), epochs=1, device="cpu", progress=False,
                               method="none", output=str(tmp_path / "nb"), log=lambda _m: None)  # fmt: skip
    assert result.model.compress_header.quantized and result["top1_int8"] > 0.5
    pipe = tmp_path / "p.yaml"
    pipe.write_text(yaml.safe_dump({
        "defaults": {"device": "cpu"},
        "stages": [
            {"name": "int8", "type": "quantize", "model": str(trained), "epochs": 1,
             "method": "none", "progress": False},
            {"name": "onnx", "type": "export", "model": "int8", "format": "onnx-int8",
             "compare_speed": False},
        ],
    }))  # fmt: skip
    done = run("run", pipe, "-o", tmp_path / "run")
    assert done.exit_code == 0, done.output
    entry = json.loads((tmp_path / "run" / "onnx" / "export.json").read_text())
    assert entry["formats"]["onnx-int8"]["calibration"]["learned_scales"]
    assert np.isfinite(entry["formats"]["onnx-int8"]["validation"]["top1_export"])


def test_benchmark_rows_of_a_quantized_model(trained, tmp_path):
    """``compress benchmark`` of a ``compress quantize`` file: its torch row is the
    fake-quantized model, its onnx-int8 row the learned-scale file in ONNX Runtime's placement
    (the default for uint8 activations), both measured and agreeing."""
    q = tmp_path / "q"
    assert run("quantize", trained, "--epochs", "1", "--device", "cpu", "--activation-type",
               "uint8", "--reduce-range", "-o", q, "--set", "progress=false").exit_code == 0  # fmt: skip
    out = tmp_path / "b"
    result = run("benchmark", q / "model.safetensors", "--formats", "torch,onnx-int8", "--iters",
                 "3", "--eval-images", "200", "-o", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {r["format"]: r for r in json.loads((out / "benchmark.json").read_text())["rows"]}
    torch_row, int8 = rows["torch"], rows["onnx-int8"]
    assert torch_row["status"] == "ok" and int8["status"] == "ok", rows
    assert (
        int8["validation"]["top1_agreement"] >= 0.99
        and abs(int8["top1"] - torch_row["top1"]) < 0.02
    )
    exported = json.loads((out / "q" / "export.json").read_text())["formats"]["onnx-int8"]
    assert (
        exported["calibration"]["learned_scales"] and exported["calibration"]["placement"] == "ort"
    )
