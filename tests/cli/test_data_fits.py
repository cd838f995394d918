"""`profile` and `benchmark` refuse data that does not fit the model, as `eval` does (exit 2)."""

from __future__ import annotations

from click.testing import CliRunner

from compress.cli import cli
from tests.conftest import write_digits_folder, write_imagefolder


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _one_line_error(result, text: str) -> None:
    assert result.exit_code == 2, result.output
    assert text in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_profile_and_benchmark_refuse_a_folder_with_other_classes(tmp_path):
    digits = write_digits_folder(tmp_path / "digits", size=8, train_per_class=6, val_per_class=3)
    run = tmp_path / "run"
    trained = _invoke(
        "train", "--model", "resnet8", "--dataset", "imagefolder", "--data-dir", digits,
        "--epochs", 1, "--device", "cpu", "-o", run,
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    model = run / "model.safetensors"
    two = write_imagefolder(tmp_path / "two", classes=2)
    _one_line_error(_invoke("profile", model, "--batch", "1", "--data-dir", two), "10 classes but")
    out = tmp_path / "bench"
    result = _invoke("benchmark", model, "--formats", "torch", "--data-dir", two, "-o", out)
    _one_line_error(result, "10 classes but")
    assert not out.exists()


def test_a_data_dir_the_models_dataset_does_not_read_is_refused(tmp_path, digits_model):
    folder = write_imagefolder(tmp_path / "tree", classes=3)
    for verb in (("profile", digits_model, "--batch", "1"), ("eval", digits_model)):
        result = _invoke(*verb, "--data-dir", folder)
        assert result.exit_code == 2 and "would be ignored" in result.output, result.output
        _one_line_error(result, "would be ignored")
