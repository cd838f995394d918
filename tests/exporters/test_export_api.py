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
        (["--format", "onnx", "--precision", "int8"], "supports precision fp32"),
        (["--format", "trt"], "pip install 'compress-toolkit[trt]'"),
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

    labels = np.arange(100) % 2
    good = np.stack([labels == 0, labels == 1], axis=1).astype(np.float32)
    flipped = good.copy()
    flipped[0] = flipped[0][::-1]  # one image of 100 wrong: 1.00 point, the int8 tolerance

    class Fixed(Runner):
        def _infer_impl(self, images):
            return flipped[: len(images)]

    ref = Reference(np.zeros((100, 1, 1, 1), np.float32), labels, good)
    report = validate(Fixed(), ref, precision="int8", fmt="onnx-int8", batch=100)
    assert report["passed"] and report["top1_agreement"] == 0.99
    assert round(report["accuracy_delta"], 9) == -0.01


def test_auto_precision_passes_where_plain_int8_fails_and_names_its_float_nodes(tmp_path):
    """MobileNetV2 on 8×8 digits, every layer INT8 (``--all-int8``): plain INT8 fails the gate;
    --auto-precision tries 1, 2, 4, … float nodes in the order of their measured damage and
    passes, naming them. (A small, weakly trained model, trained on one thread so the numerics
    are the same on every machine; the test asserts the gate and the record, not a speed.)"""
    from click.testing import CliRunner

    from compress.cli import cli
    from compress.config import build
    from compress.train import TrainConfig, train

    cfg = {"model": "mobilenetv2", "data": {"name": "digits"}, "epochs": 3, "progress": False,
           "device": "cpu", "threads": 1, "output": str(tmp_path / "m")}  # fmt: skip
    train(build(TrainConfig, cfg), log=lambda _m: None)
    model = str(tmp_path / "m" / "model.safetensors")
    base = ["export", model, "--format", "onnx-int8", "--all-int8", "--no-compare-speed"]
    plain = CliRunner().invoke(cli, [*base, "-o", str(tmp_path / "plain")])
    assert plain.exit_code == 2 and "failed validation" in plain.output
    out = tmp_path / "auto"
    args = ["export", model, "--format", "onnx-int8", "--all-int8", "--auto-precision",
            "--set", "auto_precision_min_speedup=0", "-o", str(out)]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    entry = json.loads((out / "export.json").read_text())["formats"]["onnx-int8"]
    search = entry["auto_precision"]
    assert entry["status"] == "ok" and entry["validation"]["passed"]
    assert search["float_nodes"] and all(isinstance(n, str) for n in search["float_nodes"])
    counts = [t["float_nodes"] for t in search["tries"]]
    assert counts[:3] == [0, 1, 2] and counts == sorted(counts) and search["tries"][-1]["passed"]
    ranking = search["sensitivity"]
    assert len(ranking) > 10 and [v for _, v in ranking] == sorted(v for _, v in ranking)
    assert search["float_nodes"] == [name for name, _ in ranking[: len(search["float_nodes"])]]


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
    entry = json.loads((out / "export.json").read_text())["formats"]["onnx-int8"]
    graph = onnx.load(str(out / "model.int8.onnx")).graph
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
