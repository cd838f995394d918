"""No file of the user's is written, lost or torn: reports, studies, notebook inputs, full disks.

Each case is one from the hardening report, replayed with real files and the real command line.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from compress.cli import cli
from tests.reliability.test_cli_errors import assert_one_line_error, run

COMPRESS = [sys.executable, "-m", "compress"]


def test_eval_json_never_overwrites_a_users_file_or_the_model(digits_model, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    assert_one_line_error(run("eval", digits_model, "--json", notes), "never overwrites")
    assert notes.read_text() == "my notes\n"
    model = tmp_path / "m.safetensors"
    shutil.copyfile(digits_model, model)
    before = model.read_bytes()
    assert_one_line_error(run("eval", model, "--json", model), "is not a report compress wrote")
    assert model.read_bytes() == before
    # its own report is replaced: the second run of the same command works
    report = tmp_path / "eval.json"
    assert run("eval", model, "--json", report).exit_code == 0
    assert run("eval", model, "--json", report).exit_code == 0
    assert json.loads(report.read_text())["written_by"].startswith("compress")
    link = tmp_path / "link.json"
    link.symlink_to(report)
    assert_one_line_error(run("eval", model, "--json", link), "symbolic link")


def test_profile_json_never_overwrites_a_users_file(digits_model, tmp_path):
    model = tmp_path / "m.safetensors"
    shutil.copyfile(digits_model, model)
    before = model.read_bytes()
    args = ["profile", model, "--runtime", "torch", "--batch", "1", "--iters", "2",
            "--duration", "0", "--eval-images", "0"]  # fmt: skip
    assert_one_line_error(run(*args, "--json", model), "compress never overwrites")
    assert model.read_bytes() == before


def test_a_second_study_on_the_same_output_is_refused_and_the_first_finishes(tmp_path):
    recipe = tmp_path / "s.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "values": [0.0],
                "methods": ["none"],
                "seeds": [0],
                "data": {"name": "digits", "batch_size": 64},
                "teacher": {"model": "resnet8", "epochs": 1, "progress": False},
                "student": {"student": "resnet8", "epochs": 1, "progress": False},
                "device": "cpu",
            }
        )
    )
    out = tmp_path / "study"
    first = subprocess.Popen(
        [*COMPRESS, "study", str(recipe), "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in first.stdout:  # bounded by the process ending
            if "teacher for" in line:
                break
        first.send_signal(signal.SIGSTOP)  # it holds the study and its teacher folder now
        try:
            second = subprocess.run(
                [*COMPRESS, "study", str(recipe), "-o", str(out)],
                capture_output=True,
                text=True,
                timeout=300,
            )
        finally:
            first.send_signal(signal.SIGCONT)
        assert second.returncode == 2 and "in use by another compress process" in second.stderr
    finally:
        first.communicate(timeout=600)
    assert first.returncode == 0
    assert json.loads((out / "study.json").read_text())["rows"][0]["n"] == 1


def test_a_refused_notebook_call_leaves_no_inputs_folder(digits_model, tmp_path):
    import compress
    from compress.errors import CompressError

    user = tmp_path / "userfold"
    user.mkdir()
    (user / "mine.txt").write_text("keep")
    teacher = compress.load_model(digits_model)
    with pytest.raises(CompressError, match="compress did not write"):
        compress.distill(teacher=teacher, output=str(user), method="kd", epochs=1, log=print)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["userfold"]
    assert (user / "mine.txt").read_text() == "keep"


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KB tmpfs mounted by the test (as root; skipped where mounting is not allowed)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_is_one_line_naming_the_path_and_the_space(digits_model, full_disk):
    out = full_disk / "t"
    result = run("train", "--model", "resnet20", "--dataset", "digits", "--epochs", "1",
                 "--device", "cpu", "-o", out)  # fmt: skip
    assert_one_line_error(result, "no space left on the device")
    assert "free" in result.output and "needed" in result.output
    result = run("export", digits_model, "--format", "onnx", "-o", full_disk / "e")
    assert_one_line_error(result, "no space left on the device")
    ballast = full_disk / "ballast"
    with open(ballast, "wb") as fh:  # leave too little for the imported model file
        fh.write(os.urandom(200 * 1024))
    import torch

    import compress

    weights = full_disk.parent / "w.pt"
    torch.save(compress.load_model(digits_model).state_dict(), weights)
    result = run("import", weights, "--arch", "resnet8", "--num-classes", "10", "--in-channels",
                 "1", "-o", full_disk / "m.safetensors")  # fmt: skip
    assert_one_line_error(result, "no space left on the device")
    assert not (full_disk / "m.safetensors").exists()


@pytest.mark.parametrize("target", ["/proc/x.safetensors", "afile/x.safetensors"])
def test_import_to_an_impossible_place_is_one_line(digits_model, tmp_path, target):
    import torch

    import compress

    weights = tmp_path / "w.pt"
    torch.save(compress.load_model(digits_model).state_dict(), weights)
    (tmp_path / "afile").write_text("a file")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(
            cli,
            ["import", str(weights), "--arch", "resnet8", "--num-classes", "10",
             "--in-channels", "1", "-o", target],
        )  # fmt: skip
    finally:
        os.chdir(cwd)
    assert_one_line_error(result, "cannot write")
    assert (tmp_path / "afile").read_text() == "a file"


def test_a_typo_at_start_does_not_block_the_corrected_command(digits_model, tmp_path):
    out = tmp_path / "d"
    base = ["distill", "--teacher", digits_model, "--method", "kd", "--epochs", "1",
            "--device", "cpu", "-o", out]  # fmt: skip
    assert_one_line_error(run(*base, "--student", "resnet9"), "Did you mean 'resnet8'")
    assert run(*base, "--student", "resnet8").exit_code == 0
    out = tmp_path / "w"
    refused = run("train", "--dataset", "digits", "--epochs", "1", "--logger", "wandb", "-o", out)
    if "needs wandb" in refused.output:  # the extra is missing here: the start is refused
        assert_one_line_error(refused, "needs wandb")
        assert run("train", "--dataset", "digits", "--epochs", "1", "-o", out).exit_code == 0
