from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import compress
from compress.artifacts import file_sha256, read_header
from compress.cli import cli

FAST = [
    "--dataset",
    "digits",
    "--epochs",
    "1",
    "--batch-size",
    "32",
    "--lr",
    "0.1",
    "--set",
    "schedule.name=cosine",
]


def test_distill_with_seeds_reports_mean_and_std(digits_model, tmp_path):
    out = tmp_path / "d"
    args = ["distill", "--teacher", str(digits_model), "--student", "resnet8", "--method", "kd"]
    result = CliRunner().invoke(
        cli, [*args, "--seeds", "2", "--output", str(out), *FAST], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert {"top1", "top1_last", "top1_mean", "top1_std", "top1_last_mean", "top1_last_std"} <= set(
        summary
    )
    assert summary["seeds"] == [0, 1] and len(summary["per_seed"]) == 2
    assert summary["top1_mean"] == pytest.approx(sum(r["top1"] for r in summary["per_seed"]) / 2)
    header = read_header(out / "model.safetensors")
    teacher = header.provenance["teacher"]
    assert teacher["path"] == str(digits_model) and teacher["sha256"] == file_sha256(digits_model)
    assert header.extra["method"] == "kd"
    assert (out / "seed1" / "model.safetensors").exists()
    config = (out / "config.yaml").read_text()
    assert "method: kd" in config and "kd_weight: 0.9" in config  # resolved method settings


def test_r2kd_single_run_follows_the_contract(digits_model, tmp_path):
    out = tmp_path / "r"
    args = [
        "distill",
        "--teacher",
        str(digits_model),
        "--model",
        "resnet8",
        "--output",
        str(out),
        *FAST,
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "pruned teacher" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert 0 < summary["top1"] <= 1 and "top1_last" in summary
    assert summary["pruned_teacher"]["params"] < summary["teacher"]["params"]


def test_distill_errors_are_one_line(digits_model, tmp_path):
    wrong = compress.save_model(
        compress.create_model("resnet8", num_classes=100, in_channels=1), tmp_path / "w.safetensors"
    )
    cases = [
        (["--teacher", str(wrong)], "teacher has 100 classes but digits has 10"),
        (["--teacher", str(digits_model), "--method", "r2dk"], "Did you mean 'r2kd'"),
        (["--teacher", str(tmp_path / "missing.safetensors")], "does not exist"),
        (["--teacher", str(digits_model), "--method", "dml"], "without a pretrained teacher"),
        (["--method", "kd"], "needs --teacher"),
        (["--teacher", str(digits_model), "--preset", "faithfull"], "Did you mean 'faithful'"),
        (
            ["--teacher", str(digits_model), "--set", "method_args.blnd=0.5"],
            "Did you mean 'method_args.blend'",
        ),
    ]
    for extra, expected in cases:
        result = CliRunner().invoke(
            cli, ["distill", *extra, "--output", str(tmp_path / "o"), *FAST]
        )
        assert result.exit_code == 2, (extra, result.output)
        assert expected in result.output, (extra, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_student_and_model_flags_must_agree(digits_model):
    result = CliRunner().invoke(
        cli,
        ["distill", "--teacher", str(digits_model), "--student", "resnet8", "--model", "resnet20"],
    )
    assert result.exit_code == 2 and "disagree" in result.output
