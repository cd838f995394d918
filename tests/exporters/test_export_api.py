from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from compress.artifacts import file_sha256
from compress.cli import cli
from compress.config import build
from compress.errors import CompressError
from compress.exporters.api import export
from compress.exporters.base import BatchSpec, ExportConfig
from compress.exporters.onnx import onnx_metadata


def test_all_onnx_formats_validate_and_record_provenance(digits_model, tmp_path):
    out = tmp_path / "e"
    result = CliRunner().invoke(
        cli,
        [
            "export",
            str(digits_model),
            "--format",
            "onnx,onnx-int8,onnx-fp16",
            "--output",
            str(out),
            "--calib-images",
            "256",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "next: compress profile" in result.output
    data = json.loads((out / "export.json").read_text())
    assert set(data["formats"]) == {"onnx", "onnx-int8", "onnx-fp16"}
    fp32 = data["formats"]["onnx"]["validation"]
    assert fp32["max_abs_error"] <= 1e-4 and fp32["top1_agreement"] == 1.0
    speed = data["formats"]["onnx-int8"]["speed_vs_fp32"]  # measured, recorded, not judged
    assert speed["batch"] == 64 and speed["fp32_ms"] > 0 and speed["int8_ms"] > 0
    assert speed["speedup"] == pytest.approx(speed["fp32_ms"] / speed["int8_ms"])
    assert "ONNX Runtime CPU latency, batch 64" in result.output
    assert "speed_vs_fp32" not in data["formats"]["onnx"]
    int8 = data["formats"]["onnx-int8"]["validation"]
    assert (
        abs(int8["accuracy_delta"]) <= 0.01
    )  # within 1 point of fp32 on the real digits test split
    for fmt, name in (
        ("onnx", "model.onnx"),
        ("onnx-int8", "model.int8.onnx"),
        ("onnx-fp16", "model.fp16.onnx"),
    ):
        meta = json.loads(onnx_metadata(out / name)["compress"])
        assert meta["source"]["sha256"] == file_sha256(digits_model)
        assert (
            meta["format"] == fmt
            and meta["header"]["dataset"] == "digits"
            and meta["input_shape"] == [1, 8, 8]
        )
        assert meta["toolkit_version"]


@pytest.mark.slow  # 70 s: trains on Fashion-MNIST; the digits INT8 tests cover the path
def test_int8_keeps_fashion_mnist_accuracy(tmp_path):
    pytest.importorskip("onnxruntime")
    from compress.data.fashion_mnist import SYSTEM_DIR

    if not (SYSTEM_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    from compress.train import TrainConfig, train

    run = tmp_path / "fm"
    cfg = build(
        TrainConfig,
        {
            "model": "resnet8",
            "epochs": 2,
            "output": str(run),
            "progress": False,
            "data": {
                "name": "fashion-mnist",
                "batch_size": 64,
                "train_subset": 10000,
                "augment": "flip",
            },
            "optim": {"lr": 0.05},
            "schedule": {"name": "cosine"},
        },
    )
    train(cfg, log=lambda _m: None)
    result = export(
        ExportConfig(
            model=str(run / "model.safetensors"),
            format="onnx-int8",
            output=str(tmp_path / "e"),
            validate_images=2000,
            compare_speed=False,
        ),
        log=lambda _m: None,
    )
    assert "speed_vs_fp32" not in result["formats"]["onnx-int8"]
    v = result["formats"]["onnx-int8"]["validation"]
    assert v["top1_torch"] > 0.75 and abs(v["accuracy_delta"]) <= 0.01


def test_export_errors(digits_model, tmp_path):
    cases = [
        (["--format", "onx"], "Did you mean 'onnx'"),
        (["--batch", "8:4:16"], "MIN ≤ OPT ≤ MAX"),
        (["--batch", "a:b"], "MIN:OPT:MAX"),
        (["--format", "onnx", "--precision", "int8"], "--precision applies to trt, not onnx"),
        (["--format", "onnx", "--auto-precision"], "--auto-precision applies to onnx-int8"),
        (["--format", "onnx,onnx-fp16", "--calib-images", "8"], "applies to onnx-int8 and trt"),
        (["--format", "tensorrt"], "Did you mean 'trt'"),
        (["--format", "trt-int8", "--precision", "fp16"], "is int8, but --precision says fp16"),
        (["--format", "trt"], "pip install 'compress-toolkit[trt]'"),
        (["--format", "trt-fp16"], "pip install 'compress-toolkit[trt]'"),
    ]
    for extra, expected in cases:
        result = CliRunner().invoke(
            cli, ["export", str(digits_model), *extra, "--output", str(tmp_path / "o")]
        )
        assert result.exit_code == 2, (extra, result.output)
        assert expected in result.output, (extra, result.output)
        assert len(result.output.strip().splitlines()) == 1
    missing = CliRunner().invoke(cli, ["export", str(tmp_path / "nope.safetensors")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_batch_spec():
    assert str(BatchSpec.parse("1:32:64")) == "1:32:64"
    assert (BatchSpec.parse("8").min, BatchSpec.parse("8").max) == (8, 8)
    with pytest.raises(CompressError):
        BatchSpec.parse("0:1:2")


def test_all_int8_and_no_compare_speed_flags(digits_model, tmp_path):
    out = tmp_path / "e"
    args = ["export", str(digits_model), "--format", "onnx-int8", "--output", str(out)]
    result = CliRunner().invoke(cli, [*args, "--all-int8", "--no-compare-speed"])
    assert result.exit_code == 0, result.output
    entry = json.loads((out / "export.json").read_text())["formats"]["onnx-int8"]
    assert entry["calibration"]["float_nodes"] == [] and "speed_vs_fp32" not in entry
    assert entry["settings"]["float_first_last"] is False
    result = CliRunner().invoke(cli, [*args, "--no-compare-speed"])  # default keeps them float
    entry = json.loads((out / "export.json").read_text())["formats"]["onnx-int8"]
    assert len(entry["calibration"]["float_nodes"]) == 2


def test_speed_comparison_caps_its_batch(digits_model, tmp_path):
    out = tmp_path / "e"
    args = ["export", str(digits_model), "--format", "onnx-int8", "--output", str(out)]
    result = CliRunner().invoke(cli, [*args, "--batch", "1:8:1024"])
    assert result.exit_code == 0, result.output
    speed = json.loads((out / "export.json").read_text())["formats"]["onnx-int8"]["speed_vs_fp32"]
    assert speed["batch"] == 64 and 3 <= speed["repeats"] <= 50


def test_a_drop_of_exactly_the_tolerance_passes():
    import numpy as np

    from compress.exporters.validate import Reference, validate
    from compress.runtime.runners import Runner

    labels = np.arange(400) % 2
    good = np.stack([labels == 0, labels == 1], axis=1).astype(np.float32)
    flipped = good.copy()
    flipped[:4] = flipped[:4, ::-1]  # 4 images of 400 wrong: 1.00 point, the int8 tolerance

    class Fixed(Runner):
        def _infer_impl(self, images):
            return flipped[: len(images)]

    ref = Reference(np.zeros((400, 1, 1, 1), np.float32), labels, good)
    report = validate(Fixed(), ref, precision="int8", fmt="onnx-int8", batch=400)
    assert report["passed"] and report["verdict"] == "passed" and report["top1_agreement"] == 0.99
    assert round(report["accuracy_delta"], 9) == -0.01


def _outlier_model(tmp_path):
    """A resnet8 trained 4 epochs on digits (about 98 %), then given one activation channel
    1000× larger than the rest (its BatchNorm scaled up, the next conv's weights scaled down by
    the same factor: the float function is unchanged). Per-tensor INT8 of that activation
    crushes every other channel, on any CPU: plain INT8 must fail, keeping the three nodes
    around it in float must fix it."""
    import torch

    from compress.artifacts import load_model, save_model
    from compress.train import TrainConfig, train
    from tests.conftest import FAST_DIGITS

    cfg = {**FAST_DIGITS, "epochs": 4, "device": "cpu", "output": str(tmp_path / "m")}
    train(build(TrainConfig, cfg), log=lambda _m: None)
    good = tmp_path / "m" / "model.safetensors"
    model = load_model(good)
    block = model.layer2[0]
    j = int(block.bn1.weight.abs().argmax())
    with torch.no_grad():
        block.bn1.weight[j] *= 1000.0
        block.bn1.bias[j] *= 1000.0
        block.conv2.weight[:, j] /= 1000.0
    return good, save_model(model, tmp_path / "outlier.safetensors")


def test_auto_precision_finds_the_damaged_nodes_and_a_failed_export_keeps_the_good_one(tmp_path):
    good, outlier = _outlier_model(tmp_path)
    out = tmp_path / "e"
    base = ["export", "--format", "onnx-int8", "--no-compare-speed", "-o", str(out)]
    first = CliRunner().invoke(cli, [base[0], str(good), *base[1:]])
    assert first.exit_code == 0, first.output
    kept = (out / "model.int8.onnx").read_bytes()
    plain = CliRunner().invoke(cli, [base[0], str(outlier), *base[1:]])
    assert plain.exit_code == 2 and "failed validation" in plain.output
    assert "with 95 % confidence" in plain.output
    # the failed export did not replace the earlier good one: its files are set aside
    assert (out / "model.int8.onnx").read_bytes() == kept
    record = json.loads((out / "export.json").read_text())
    assert record["formats"]["onnx-int8"]["source"]["path"] == str(good)
    assert record["rejected"]["onnx-int8"]["status"] == "validation failed"
    assert (out / "onnx-int8.rejected" / "model.int8.onnx").is_file()

    auto = tmp_path / "auto"
    args = ["export", str(outlier), "--format", "onnx-int8", "--auto-precision",
            "--no-compare-speed", "-o", str(auto)]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    entry = json.loads((auto / "export.json").read_text())["formats"]["onnx-int8"]
    search = entry["auto_precision"]
    assert entry["status"] == "ok" and entry["validation"]["passed"]
    assert (
        "/layer2/layer2.0/conv2/Conv" in search["float_nodes"] and len(search["float_nodes"]) <= 4
    )
    counts = [t["float_nodes"] for t in search["tries"]]
    assert counts[0] == 0 and counts == sorted(set(counts)) and search["tries"][-1]["passed"]
    assert search["tries"][0]["verdict"] == "failed"
    ranking = [v for _, v in search["sensitivity"]]
    assert len(ranking) > 5 and ranking == sorted(ranking)
    assert entry["validation"]["top1_agreement"] >= 0.95


def test_keeping_every_unit_in_float_gives_back_fp32_exactly(tmp_path):
    """The float set of --auto-precision grows to the whole graph; there it has no Q/DQ left and
    computes the fp32 model (the search converges to fp32, whatever the CPU's INT8 kernels)."""
    from pathlib import Path

    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    from compress.artifacts import load_model, read_header
    from compress.exporters.api import dataset_images
    from compress.exporters.base import ExportContext
    from compress.exporters.onnx_int8 import OnnxInt8Exporter

    _, outlier = _outlier_model(tmp_path)
    header, model = read_header(outlier), load_model(outlier)
    calib = dataset_images(header, split="train", count=128, data_dir=None)[0]
    images, _ = dataset_images(header, split="test", count=100, data_dir=None)
    exporter = OnnxInt8Exporter(ExportConfig(format="onnx-int8", compare_speed=False,
                                             auto_precision=True))  # fmt: skip
    out = tmp_path / "x"
    out.mkdir()
    info = exporter.export(model, ExportContext(Path(outlier), header, calib, out, print))
    nodes = tuple(n for unit in info["units"] for n in unit)
    assert len(nodes) == len(set(nodes))
    exporter.export(model, ExportContext(Path(outlier), header, calib, out, print, nodes))
    graph = onnx.load(str(out / "model.int8.onnx")).graph
    assert not {"QuantizeLinear", "DequantizeLinear"} & {n.op_type for n in graph.node}
    got = ort.InferenceSession(str(out / "model.int8.onnx")).run(None, {"input": images})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(images)).numpy()
    assert np.abs(got - want).max() < 1e-4


def test_float_depthwise_keeps_every_grouped_conv_in_float(tmp_path):
    """``--float-depthwise`` on an untrained MobileNetV2: every Conv with group > 1 in the
    quantised graph's float list, none of them with a QuantizeLinear in front."""
    import onnx

    from compress.artifacts import save_model
    from compress.models import create_model

    model = create_model("mobilenetv2", num_classes=10, in_channels=1)
    path = save_model(model, tmp_path / "m.safetensors", dataset="digits", input_size=(8, 8))
    out = tmp_path / "e"
    args = ["export", str(path), "--format", "onnx-int8", "--float-depthwise",
            "--no-compare-speed", "--set", "validate_images=64", "--set", "calib_images=32",
            "-o", str(out)]  # fmt: skip
    CliRunner().invoke(cli, args)  # an untrained model may fail the gate; the graph is the point
    record = json.loads((out / "export.json").read_text())
    entry = {**record.get("formats", {}), **record.get("rejected", {})}["onnx-int8"]
    graph = onnx.load(entry["path"]).graph
    grouped = [n for n in graph.node if n.op_type == "Conv"
               and any(a.name == "group" and a.i > 1 for a in n.attribute)]  # fmt: skip
    assert len(grouped) == 17 and entry["settings"]["float_depthwise"] is True
    assert {n.name for n in grouped} <= set(entry["calibration"]["float_nodes"])
    produced = {o: n for n in graph.node for o in n.output}
    for conv in grouped:  # its weight is float: no DequantizeLinear feeds it
        assert (
            produced.get(conv.input[1]) is None
            or produced[conv.input[1]].op_type != "DequantizeLinear"
        )
