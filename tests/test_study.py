"""``compress study`` on digits: a real grid, a real SIGKILL mid-grid, a resume that finishes only the rest."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import yaml
from click.testing import CliRunner

from compress.cli import cli

STUDY = {
    "axis": "label_noise",
    "values": [0.0, 0.4],
    "methods": ["none", "kd"],
    "seeds": [0, 1],
    "data": {"name": "digits", "batch_size": 32, "train_subset": 400},
    "teacher": {"model": "resnet8", "epochs": 2, "optim": {"lr": 0.1}, "progress": False},
    "student": {"student": "resnet8", "epochs": 1, "optim": {"lr": 0.1}, "progress": False},
    "device": "cpu",
}


def test_study_grid_table_plot_and_resume_after_sigkill(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    out = tmp_path / "out"
    dry = CliRunner().invoke(cli, ["study", str(path), "-o", str(out), "--dry-run"])
    assert dry.exit_code == 0 and "8 cell(s), 0 done" in dry.output
    proc = subprocess.Popen(
        [sys.executable, "-m", "compress", "study", str(path), "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in proc.stdout:  # bounded by the process's end
            if line.startswith("[3/8]"):
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    done_before = sorted(p.parent.name + "/" + p.parent.parent.name for p in out.rglob("cell.json"))
    assert 3 <= len([d for d in done_before if d.startswith("seed")]) < 8
    # a rewrite is an atomic rename: a new inode (mtime alone may not move within a tick)
    stamps = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("cells/**/cell.json")}
    result = CliRunner().invoke(cli, ["study", str(path), "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.count("skipped (done)") == len(stamps)
    assert all((p.stat().st_ino, p.stat().st_mtime_ns) == t for p, t in stamps.items())
    data = json.loads((out / "study.json").read_text())
    assert len(data["cells"]) == 8 and len(data["rows"]) == 4
    noisy = [c for c in data["cells"] if c["value"] == 0.4]
    assert all(c["realised_noise"] == 0.4 for c in noisy)
    assert all(len(c["per_class_top1"]) == 10 for c in noisy)
    table = (out / "study.md").read_text()
    assert "| method | σ = 0 | σ = 0.4 |" in table and table.count("**") == 4  # one bold per column
    assert (out / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "study.csv").read_text().startswith("method,label_noise,mean,std,n,per_seed")


def test_relative_absolute_and_moved_outputs_are_one_study(tmp_path, monkeypatch):
    """A study's cell hashes hold no path: `-o s`, `-o $PWD/s` and the study moved elsewhere
    all resume the same cells (nothing is trained again), and --dry-run says so truthfully."""
    import shutil

    small = {**STUDY, "values": [0.0], "methods": ["none"], "seeds": [0]}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(small))
    monkeypatch.chdir(tmp_path)
    first = CliRunner().invoke(cli, ["study", str(path), "-o", "s"])
    assert first.exit_code == 0, first.output
    table = (tmp_path / "s" / "study.md").read_text()
    stamp = (tmp_path / "s" / "cells").rglob("cell.json").__next__().stat().st_mtime_ns
    dry = CliRunner().invoke(cli, ["study", str(path), "-o", str(tmp_path / "s"), "--dry-run"])
    assert "1 cell(s), 1 done" in dry.output, dry.output
    again = CliRunner().invoke(cli, ["study", str(path), "-o", str(tmp_path / "s")])
    assert again.exit_code == 0 and "skipped (done)" in again.output, again.output
    shutil.move(str(tmp_path / "s"), str(tmp_path / "moved"))
    moved = CliRunner().invoke(cli, ["study", str(path), "-o", "moved"])
    assert moved.exit_code == 0 and "skipped (done)" in moved.output, moved.output
    assert (tmp_path / "moved" / "study.md").read_text() == table
    cell = next((tmp_path / "moved" / "cells").rglob("cell.json"))
    assert cell.stat().st_mtime_ns == stamp
    changed = {**small, "student": {**small["student"], "epochs": 2}}
    path.write_text(yaml.safe_dump(changed))
    dry = CliRunner().invoke(cli, ["study", str(path), "-o", "moved", "--dry-run"])
    assert "1 cell(s), 0 done" in dry.output, dry.output


def test_the_same_study_twice_gives_the_same_table_to_the_last_digit(tmp_path):
    """Seeded data order, corruption and initialisation: one machine, one table. The table is
    the last epoch's (nothing selected on the test set), with the training accuracy on the
    noisy labels beside it, and study.json says what the numbers depend on."""
    small = {**STUDY, "values": [0.0, 0.4], "methods": ["none", "kd"], "seeds": [0]}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(small))
    tables = []
    for name in ("a", "b"):
        result = CliRunner().invoke(cli, ["study", str(path), "-o", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        tables.append((tmp_path / name / "study.md").read_text())
    assert tables[0] == tables[1]
    assert "Last-epoch test top-1" in tables[0] and "noisy ones included" in tables[0]
    record = json.loads((tmp_path / "a" / "study.json").read_text())
    assert record["metric"] == "top1_last"
    env = record["environment"]
    assert env["torch"] and env["threads"] >= 1 and isinstance(env["cpu_flags"], list)
    for cell in record["cells"]:
        summary = json.loads(
            (tmp_path / "a" / "cells" / f"label_noise-{cell['value']:g}" / cell["method"]
             / f"seed{cell['seed']}" / "summary.json").read_text()
        )  # fmt: skip
        assert cell["top1_last"] == summary["top1_last"]
        assert cell["train_top1_last"] == summary["train_top1_last"]
    # the students learn from the teacher's last epoch, not its best epoch on the test set
    kd = yaml.safe_load((tmp_path / "a/cells/label_noise-0.4/kd/seed0/config.yaml").read_text())
    assert kd["teacher"].endswith("teachers/label_noise-0.4/last.safetensors")


def test_a_cell_failing_on_its_input_is_reported_and_the_rest_of_the_grid_runs(tmp_path):
    """A user error in one cell (here an unknown FitNet setting) is that cell's one-line error in
    the table and study.json; the other cells finish, and the exit status says it failed."""
    bad = {**STUDY, "values": [0.0], "methods": ["none", "fitnet"], "seeds": [0],
           "method_args": {"fitnet": {"no_such_setting": 1}}}  # fmt: skip
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = CliRunner().invoke(cli, ["study", str(path), "-o", str(tmp_path / "s")])
    assert result.exit_code == 2 and "1 cell(s) failed" in result.output, result.output
    assert "Traceback" not in result.output and "no_such_setting" in result.output
    table = (tmp_path / "s" / "study.md").read_text()
    assert "| fitnet | failed |" in table and "| none | **" in table
    cells = json.loads((tmp_path / "s" / "study.json").read_text())["cells"]
    assert [c["status"] for c in cells] == ["ok", "failed"]


def test_executor_errors_are_one_line(tmp_path, monkeypatch):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "values": [0.0], "methods": ["none"], "seeds": [0]}))
    out = ["-o", str(tmp_path / "s")]
    typo = CliRunner().invoke(cli, ["study", str(path), *out, "--executor", "slurmm"])
    assert typo.exit_code == 2 and "executor must be local, ray or ray:ADDRESS" in typo.output
    dry = CliRunner().invoke(cli, ["study", str(path), *out, "--dry-run"])
    assert "executor local: each cell runs here (" in dry.output, dry.output
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    missing = CliRunner().invoke(cli, ["study", str(path), *out, "--executor", "ray"])
    assert missing.exit_code == 2, missing.output
    assert "needs Ray: pip install 'compress-toolkit[ray]'" in missing.output
    assert "Traceback" not in missing.output


def test_cells_without_a_teacher_do_not_depend_on_its_bytes(tmp_path):
    """Another teacher file invalidates the KD cells (refused, one line) and not the no-KD ones."""
    small = {**STUDY, "values": [0.4], "methods": ["none", "kd"], "seeds": [0]}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(small))
    out = tmp_path / "out"
    first = CliRunner().invoke(cli, ["study", str(path), "-o", str(out)])
    assert first.exit_code == 0, first.output
    none = out / "cells/label_noise-0.4/none/seed0/cell.json"
    stamp = (none.stat().st_ino, none.stat().st_mtime_ns)
    teacher = out / "teachers/label_noise-0.4/last.safetensors"
    teacher.write_bytes((out / "cells/label_noise-0.4/none/seed0/model.safetensors").read_bytes())
    again = CliRunner().invoke(cli, ["study", str(path), "-o", str(out)])
    assert again.exit_code == 2
    assert "none/seed0: skipped (done)" in again.output
    assert "kd/seed0: FAILED" in again.output and "another study config" in again.output
    assert (none.stat().st_ino, none.stat().st_mtime_ns) == stamp
