from __future__ import annotations

import json

import torch
from click.testing import CliRunner

import compress
from compress.artifacts import file_sha256, read_header
from compress.cli import cli
from tests.conftest import reloads_identically


def test_prune_finetune_with_kd_and_table(digits_model, tmp_path):
    out = tmp_path / "p"
    args = [
        "prune",
        str(digits_model),
        "--ratio",
        "0.5",
        "--finetune-epochs",
        "1",
        "--teacher",
        str(digits_model),
        "--lr",
        "0.02",
        "--output",
        str(out),
        "--set",
        "latency_repeats=2",
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for row in (
        "parameters",
        "MACs",
        "file size",
        "test top-1",
        "onnxruntime CPU batch 64",
        "torch CPU batch 1",
    ):
        assert row in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bn_recalibration_images"] == 16 * 64  # default: 16 batches of 64
    assert "BatchNorm statistics re-estimated on 1,024 training images" in result.output
    assert summary["params_after"] <= 0.30 * summary["params_before"]
    assert summary["macs_after"] < summary["macs_before"]
    assert summary["method"] == "kd" and summary["top1_finetuned"] is not None
    for runtime in ("torch", "onnxruntime"):
        assert all(v > 0 for v in summary["after"]["latency_ms"][runtime].values())
    header = read_header(out / "model.safetensors")
    assert header.pruning["rounds"] and header.provenance["parent"]["sha256"] == file_sha256(
        digits_model
    )
    assert header.provenance["teacher"]["sha256"] == file_sha256(digits_model)
    # reloads in a fresh process with the pruned size and identical outputs
    model = compress.load_model(out / "model.safetensors")
    x = torch.randn(4, 1, 8, 8)
    assert reloads_identically(
        out / "model.safetensors", x, model(x), params=summary["params_after"]
    )


def test_bn_recalibration_rescues_accuracy_before_fine_tuning(digits_model, tmp_path):
    top1 = {}
    for batches in (0, 16):
        out = tmp_path / f"p{batches}"
        args = ["prune", str(digits_model), "--ratio", "0.5", "--output", str(out)]
        args += ["--bn-recalibration", str(batches), "--set", "latency=false"]
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        top1[batches] = json.loads((out / "summary.json").read_text())["top1_pruned"]
    assert top1[16] > top1[0] + 0.05, top1


def test_prune_errors_are_one_line(digits_model, tmp_path):
    shuffle = compress.save_model(
        compress.create_model("shufflenetv2", in_channels=1),
        tmp_path / "s.safetensors",
        dataset="digits",
    )
    cases = [
        ([str(digits_model), "--ratio", "1.5"], "ratio must be in (0, 1)"),
        ([str(digits_model), "--ratio", "0"], "ratio must be in (0, 1)"),
        ([str(digits_model), "--importance", "l11"], "Did you mean 'l1'"),
        ([str(tmp_path / "missing.safetensors")], "does not exist"),
        ([str(shuffle)], "cannot be pruned structurally"),
        ([str(digits_model), "--finetune-epochs", "1", "--method", "r2kd"], "needs --teacher"),
        ([], "give the model file"),
    ]
    for extra, expected in cases:
        result = CliRunner().invoke(
            cli, ["prune", *extra, "--no-latency", "--output", str(tmp_path / "o")]
        )
        assert result.exit_code == 2, (extra, result.output)
        assert expected in result.output, (extra, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_prune_without_finetuning_reports_one_measurement_of_the_pruned_model(
    digits_model, tmp_path
):
    """The table's "pruned" column and summary.json's "after" are the same measurement."""
    out = tmp_path / "p"
    args = ["prune", str(digits_model), "--ratio", "0.3", "-o", str(out),
            "--set", "latency_repeats=2"]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    plan = json.loads((out / "prune.json").read_text())
    assert summary["after"]["latency_ms"] == plan["after_prune"]["latency_ms"]
    ms = summary["after"]["latency_ms"]["torch"]["1"]
    row = next(line for line in result.output.splitlines() if "torch CPU batch 1" in line)
    assert row.count(f"{ms:.2f} ms") == 1 and summary["top1"] == summary["top1_pruned"]
