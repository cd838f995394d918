from __future__ import annotations

import json

import pytest
import yaml

from compress.errors import ConfigError, UnknownNameError
from compress.pipeline import results_table, run_pipeline
from tests.conftest import FAST_DIGITS


def _write(tmp_path, stages, defaults=None):
    path = tmp_path / "pipe.yaml"
    path.write_text(yaml.safe_dump({"defaults": defaults or {}, "stages": stages}))
    return path


def _teacher(**extra):
    stage = {k: v for k, v in FAST_DIGITS.items() if k != "data"}
    return {"name": "teacher", "type": "train", **stage, **extra}


def test_skip_when_unchanged_and_rerun_when_changed(tmp_path):
    out = tmp_path / "out"
    path = _write(tmp_path, [_teacher()], defaults={"data": {"name": "digits", "batch_size": 32}})
    first = run_pipeline(path, output=out, log=lambda _m: None)
    assert [r.status for r in first] == ["ran"]
    assert first[0].summary["top1"] > 0.9
    assert json.loads((out / "teacher" / "stage.json").read_text())["status"] == "done"
    second = run_pipeline(path, output=out, log=lambda _m: None)
    assert [r.status for r in second] == ["skipped"]
    assert second[0].summary["top1"] == first[0].summary["top1"]
    path = _write(
        tmp_path, [_teacher(epochs=1)], defaults={"data": {"name": "digits", "batch_size": 32}}
    )
    third = run_pipeline(path, output=out, log=lambda _m: None)
    assert [r.status for r in third] == ["ran"]
    assert (out / "teacher.prev" / "model.safetensors").exists()  # earlier outputs kept aside
    assert "| teacher | train | ran |" in results_table(third)


def test_interrupted_stage_resumes(tmp_path):
    out = tmp_path / "out"
    path = _write(tmp_path, [_teacher()], defaults={"data": {"name": "digits", "batch_size": 32}})
    run_pipeline(path, output=out, log=lambda _m: None)
    marker = out / "teacher" / "stage.json"
    data = json.loads(marker.read_text())
    data["status"] = "running"  # as if the process had been killed inside the stage
    marker.write_text(json.dumps(data))
    again = run_pipeline(path, output=out, log=lambda _m: None)
    assert [r.status for r in again] == ["resumed"]


def test_pipeline_errors(tmp_path):
    with pytest.raises(ConfigError, match="no 'stages'"):
        run_pipeline(_write(tmp_path, []), output=tmp_path / "o")
    with pytest.raises(UnknownNameError, match=r"unknown stage type 'trian'.*Did you mean 'train'"):
        run_pipeline(_write(tmp_path, [{"name": "a", "type": "trian"}]), output=tmp_path / "o")
    with pytest.raises(
        ConfigError, match=r"unknown key 'epochz'.*stage 'teacher'.*Did you mean 'epochs'"
    ):
        run_pipeline(_write(tmp_path, [_teacher(epochz=3)]), output=tmp_path / "o")
    with pytest.raises(ConfigError, match="appears twice"):
        run_pipeline(_write(tmp_path, [_teacher(), _teacher()]), output=tmp_path / "o")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stage: []\n")
    with pytest.raises(ConfigError, match="Did you mean 'stages'"):
        run_pipeline(bad, output=tmp_path / "o")


def test_whole_chain_with_stage_references_and_resume(tmp_path):
    """train → distill → prune → export → benchmark, each stage naming the one before it."""
    fast = {"epochs": 1, "optim": {"lr": 0.1}, "schedule": {"name": "cosine"}, "progress": False}
    stages = [
        {"name": "teacher", "type": "train", "model": "resnet8", **fast},
        {
            "name": "student",
            "type": "distill",
            "teacher": "teacher",
            "student": "resnet8",
            "method": "kd",
            **fast,
        },
        {
            "name": "pruned",
            "type": "prune",
            "model": "student",
            "prune": {"ratio": 0.5},
            "finetune_epochs": 1,
            "teacher": "teacher",
            "latency": False,
        },
        {
            "name": "export",
            "type": "export",
            "model": "pruned",
            "format": "onnx",
        },
        {
            "name": "bench",
            "type": "benchmark",
            "models": ["pruned"],
            "formats": ["torch", "onnx"],
            "batches": [1, 8],
            "profile": {"iters": 2, "eval_images": 100},
        },
    ]
    path = _write(tmp_path, stages, defaults={"data": {"name": "digits", "batch_size": 32}})
    out = tmp_path / "out"
    first = run_pipeline(path, output=out, log=lambda _m: None)
    assert [r.status for r in first] == ["ran"] * 5
    assert (out / "bench" / "benchmark.md").exists() and (out / "bench" / "pareto.png").exists()
    assert (
        json.loads((out / "pruned" / "summary.json").read_text())["params_after"]
        < first[0].summary["params"]
    )
    again = run_pipeline(path, output=out, log=lambda _m: None)
    assert [r.status for r in again] == ["skipped"] * 5
    # a changed prune ratio re-runs the prune stage and everything downstream of it
    stages[2]["prune"] = {"ratio": 0.4}
    path = _write(tmp_path, stages, defaults={"data": {"name": "digits", "batch_size": 32}})
    third = run_pipeline(path, output=out, log=lambda _m: None)
    assert [r.status for r in third] == ["skipped", "skipped", "ran", "ran", "ran"]


def test_dry_run_says_what_each_stage_would_do_and_why(tmp_path):
    from click.testing import CliRunner

    from compress.cli import cli

    pipe = tmp_path / "p.yaml"
    pipe.write_text(
        "defaults: {data: {name: digits, batch_size: 32}, device: cpu, progress: false}\n"
        "stages:\n"
        "  - {name: t, type: train, model: resnet8, epochs: 1}\n"
        "  - {name: s, type: distill, teacher: t, student: resnet8, method: kd, epochs: 1}\n"
    )
    out = tmp_path / "o"

    def plan(*extra):
        result = CliRunner().invoke(cli, ["run", str(pipe), "-o", str(out), "--dry-run", *extra])
        assert result.exit_code == 0, result.output
        return {line.split()[0]: line.split()[2] for line in result.output.splitlines()[1:]}

    assert plan() == {"t": "run", "s": "run"}
    assert CliRunner().invoke(cli, ["run", str(pipe), "-o", str(out)]).exit_code == 0
    assert plan() == {"t": "skip", "s": "skip"}
    assert plan("--set", "s.epochs=2") == {"t": "skip", "s": "re-run"}
    assert plan("--set", "t.epochs=2") == {"t": "re-run", "s": "re-run"}  # its input is remade


def test_budget_stages_show_budget_against_achieved(tmp_path):
    """``prune: {target_latency: 60%}`` and ``export: {auto_precision: true}`` as pipeline stages;
    the run's table shows the budget against the latency achieved, and the float nodes."""
    stages = [
        {"name": "teacher", "type": "train", "model": "resnet8x4", "epochs": 1, "progress": False},
        {
            "name": "pruned",
            "type": "prune",
            "model": "teacher",
            "target_latency": "60%",
            "budget": {"batch": 32, "iters": 20, "duration": 0.2},
            "latency": False,
        },
        {
            "name": "export",
            "type": "export",
            "model": "pruned",
            "format": "onnx-int8",
            "auto_precision": True,
            "compare_speed": False,
        },
    ]
    path = _write(tmp_path, stages, defaults={"data": {"name": "digits", "batch_size": 32}})
    results = run_pipeline(path, output=tmp_path / "out", log=lambda _m: None)
    lb = results[1].summary["latency_budget"]
    assert lb["share"] == 0.6 and lb["target_ms"] < lb["probes"][0]["p50_ms"]
    table = results_table(results)
    header = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    assert "budget" in header and "exports" in header
    row = [c.strip() for c in table.splitlines()[3].strip("|").split("|")]
    assert row[header.index("budget")].startswith(f"{lb['target_ms']:.4g} ms → p50 ")
    assert row[header.index("budget")].endswith("met)" if lb["met"] else "over)")
    assert results[2].summary["formats"]["onnx-int8"]["validation"]["passed"]
