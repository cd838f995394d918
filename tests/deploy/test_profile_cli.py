from __future__ import annotations

import json

from click.testing import CliRunner

from compress.cli import cli


def test_local_profile_json_contract(digits_model, tmp_path):
    out = tmp_path / "p.json"
    result = CliRunner().invoke(
        cli,
        [
            "profile",
            str(digits_model),
            "--batch",
            "1,8",
            "--iters",
            "3",
            "--warmup",
            "1",
            "--json",
            str(out),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "| batch | p50 ms |" in result.output
    data = json.loads(out.read_text())
    for b in ("1", "8"):
        assert {"p50_ms", "p90_ms", "p99_ms", "throughput"} <= set(data["batches"][b])
        s = data["batches"][b]
        assert 0 < s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"]
        assert s["model_only"]["p50_ms"] > 0 and s["model_only"]["runs"] == 3
    assert data["runtime"] == "torch" and data["target"] == "local" and data["top1"] > 0.9
    assert data["model_bytes"] > 0 and data["peak_rss_mb"] > 0 and data["environment"]["cores"] >= 1


def test_profile_exports_for_onnxruntime_on_the_fly(digits_model, tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "profile",
            str(digits_model),
            "--runtime",
            "onnxruntime",
            "--iters",
            "2",
            "--json",
            str(tmp_path / "o.json"),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o.json").read_text())["runtime"] == "onnxruntime"


def test_profile_errors(digits_model, tmp_path):
    cases = [
        ([str(digits_model), "--runtime", "onnxrt"], "Did you mean 'onnxruntime'"),
        ([str(digits_model), "--target", "jetson.local"], "bad --target"),
        ([str(tmp_path / "none.onnx")], "does not exist"),
        ([str(digits_model), "--runtime", "tensorrt"], "TensorRT"),
    ]
    for args, expected in cases:
        result = CliRunner().invoke(cli, ["profile", *args, "--iters", "1"])
        assert result.exit_code == 2, (args, result.output)
        assert expected in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
