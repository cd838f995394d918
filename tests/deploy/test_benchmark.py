from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from compress.artifacts import load_model
from compress.cli import cli
from compress.config import build
from compress.deploy.benchmark import BenchmarkConfig
from compress.errors import ConfigError
from compress.report.plots import pareto_front


def test_benchmark_table_files_plot_and_unavailable_formats(digits_model, tmp_path):
    out = tmp_path / "b"
    args = [
        "benchmark",
        str(digits_model),
        "--formats",
        "torch,onnx,onnx-int8,trt-fp16",
        "--iters",
        "3",
        "--eval-images",
        "200",
        "--output",
        str(out),
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "benchmark.json").read_text())["rows"]
    by_format = {r["format"]: r for r in rows}
    for fmt in ("torch", "onnx", "onnx-int8"):
        r = by_format[fmt]
        assert r["status"] == "ok" and r["top1"] > 0.9 and r["p50_ms"] > 0 and r["throughput"] > 0
    assert by_format["onnx-int8"]["size_mb"] < by_format["onnx"]["size_mb"]
    try:
        import tensorrt  # noqa: F401

        expected_trt = "ok"
    except ImportError:
        expected_trt = (
            "export failed: --format trt needs TensorRT and an NVIDIA GPU: pip install "
            "'compress-toolkit[trt]' on such a machine (JetPack ships TensorRT on Jetson)"
        )
    assert by_format["trt-fp16"]["status"] == expected_trt
    assert "| onnx-int8 | ok |" in (out / "benchmark.md").read_text()
    with open(out / "benchmark.csv") as fh:
        table = list(csv.DictReader(fh))
    assert {int(r["params"]) for r in table} == {
        sum(p.numel() for p in load_model(digits_model).parameters())
    }
    with open(out / "benchmark.csv") as fh:
        assert [r["format"] for r in csv.DictReader(fh)] == [
            "torch",
            "onnx",
            "onnx-int8",
            "trt-fp16",
        ]
    png = (out / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_min_accuracy_gate_exits_non_zero(digits_model, tmp_path):
    args = [
        "benchmark",
        str(digits_model),
        "--formats",
        "onnx",
        "--iters",
        "2",
        "--eval-images",
        "100",
        "--output",
        str(tmp_path / "g"),
    ]
    passed = CliRunner().invoke(cli, [*args, "--min-accuracy", "0.5"])
    assert passed.exit_code == 0, passed.output
    failed = CliRunner().invoke(cli, [*args, "--min-accuracy", "99.9"])
    assert failed.exit_code == 1 and "accuracy gate failed" in failed.output


def test_benchmark_errors(digits_model, tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'onnx-int8'"):
        build(BenchmarkConfig, {"formats": ["onnx-int9"]})
    for args, expected in [
        ([str(tmp_path / "none.safetensors")], "does not exist"),
        ([str(digits_model), "--target", "ftp://x"], "bad --target"),
        ([], "give at least one model"),
    ]:
        result = CliRunner().invoke(cli, ["benchmark", *args, "--output", str(tmp_path / "o")])
        assert result.exit_code == 2 and expected in result.output, result.output


def test_pareto_front():
    assert pareto_front([(1, 90), (2, 95), (3, 94), (0.5, 80), (2.5, 96)]) == [
        (0.5, 80),
        (1, 90),
        (2, 95),
        (2.5, 96),
    ]


def test_default_formats_fit_the_machine(digits_model, tmp_path):
    from compress.exporters.formats import FORMATS

    out = tmp_path / "d"
    args = ["benchmark", str(digits_model), "--iters", "2", "--eval-images", "50", "-o", str(out)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "benchmark.json").read_text())
    ran = [r["format"] for r in data["rows"]]
    if FORMATS.get("trt-fp16").unavailable():
        assert ran == ["torch", "onnx", "onnx-int8"]
        assert sorted(data["skipped_formats"]) == ["trt-fp16", "trt-int8"]
        assert all(r["status"] == "ok" for r in data["rows"])
        table = (out / "benchmark.md").read_text()
        assert table.count("TensorRT is not installed here") == 1  # listed once, not per row
    else:
        assert ran == ["torch", "onnx", "onnx-int8", "trt-fp16", "trt-int8"]
