"""Every user mistake of the reliability report gets one line and exit code 2, never a traceback.

Each case builds the bad input with real files (IDX, CIFAR pickles, PNGs, safetensors, YAML)
and runs the real command line.
"""

from __future__ import annotations

import gzip
import json
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from compress.cli import cli
from tests.conftest import write_cifar, write_imagefolder

TRAIN = ["train", "--model", "resnet8", "--epochs", "1", "--device", "cpu"]


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, expected: str) -> None:
    out = result.output
    assert result.exit_code == 2, out
    assert "Traceback" not in out and "internal error" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and expected in errors[0], out


# --------------------------------------------------------------------------- data files


def write_idx(path: Path, array: np.ndarray, *, gz: bool = True) -> None:
    head = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    blob = head + array.astype(np.uint8).tobytes()
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(blob))
    else:
        path.write_bytes(blob)


def fashion_dir(tmp_path: Path, *, n: int = 20, labels=None, images=None) -> Path:
    d = tmp_path / "fm"
    d.mkdir()
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (n, 28, 28)) if images is None else images
    labs = rng.integers(0, 10, n) if labels is None else labels
    for split in ("train", "t10k"):
        write_idx(d / f"{split}-images-idx3-ubyte", imgs)
        write_idx(d / f"{split}-labels-idx1-ubyte", labs)
    return d


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("fewer-labels", "labels"),
        ("labels-too-big", "classes 0–9"),
        ("wrong-ndim", "not 28×28"),
        ("not-gzip", "cannot be read"),
        ("truncated-gz", "cannot be read"),
    ],
)
def test_bad_fashion_mnist_files(tmp_path, case, expected):
    if case == "fewer-labels":
        d = fashion_dir(tmp_path, labels=np.zeros(10))
    elif case == "labels-too-big":
        d = fashion_dir(tmp_path, labels=np.full(20, 12))
    elif case == "wrong-ndim":
        d = fashion_dir(tmp_path, images=np.zeros((20, 28 * 28)))
    else:
        d = fashion_dir(tmp_path)
        target = d / "train-images-idx3-ubyte.gz"
        blob = target.read_bytes()
        target.write_bytes(b"not gzip at all" if case == "not-gzip" else blob[: len(blob) // 2])
    result = run(*TRAIN, "--dataset", "fashion-mnist", "--data-dir", d, "-o", tmp_path / "o")
    assert_one_line_error(result, expected)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing-key", "no 'labels' entry"),
        ("wrong-size", "not uint8 N×3072"),
        ("odd-dtype", "not uint8 N×3072"),
        ("string-labels", "list of integers"),
    ],
)
def test_bad_cifar_pickles(tmp_path, case, expected):
    folder = write_cifar(tmp_path, classes=10)
    path = folder / "data_batch_3"
    batch = {b"labels": [1, 2], b"data": np.zeros((2, 3072), np.uint8)}
    if case == "missing-key":
        del batch[b"labels"]
    elif case == "wrong-size":
        batch[b"data"] = np.zeros((2, 100), np.uint8)
    elif case == "odd-dtype":
        batch[b"data"] = np.zeros((2, 3072), np.float64)
    else:
        batch[b"labels"] = ["cat", "dog"]
    path.write_bytes(pickle.dumps(batch, protocol=2))
    result = run(*TRAIN, "--dataset", "cifar10", "--data-dir", tmp_path, "-o", tmp_path / "o")
    assert_one_line_error(result, expected)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path) -> None:
    """A PNG whose header claims 30,000×30,000 pixels (PIL refuses it as a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [("corrupt", "cannot read image"), ("bomb", "decompression bomb")],
)
def test_bad_images_mid_run(tmp_path, case, expected):
    root = write_imagefolder(tmp_path / "tree")
    bad = root / "train" / "class_1" / "img_9.png"
    if case == "corrupt":
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    else:
        bomb_png(bad)
    result = run(
        *TRAIN,
        "--dataset",
        "imagefolder",
        "--data-dir",
        root,
        "--set",
        "data.image_size=16",
        "--set",
        "data.workers=1",
        "-o",
        tmp_path / "o",
    )
    assert_one_line_error(result, expected)
    assert "img_9.png" in result.output


def test_one_image_folder_at_batch_64(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        d = tmp_path / "one" / split / "a"
        d.mkdir(parents=True)
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(d / "x.png")
    result = run(
        *TRAIN,
        "--dataset",
        "imagefolder",
        "--data-dir",
        tmp_path / "one",
        "--set",
        "data.image_size=16",
        "-o",
        tmp_path / "o",
    )
    assert_one_line_error(result, "at least 2")


# --------------------------------------------------------------------------- configs


def test_binary_yaml_and_alias_bomb(tmp_path):
    binary = tmp_path / "b.yaml"
    binary.write_bytes(bytes(range(256)))
    assert_one_line_error(run("train", "--config", binary), "not a UTF-8 text file")
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x,x,x,x,x,x,x,x,x,x]"]
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    bomb.write_text("\n".join(lines) + "\n")
    assert_one_line_error(run("train", "--config", bomb), "through YAML aliases")
    assert_one_line_error(run("run", bomb, "--dry-run"), "through YAML aliases")


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("optim.betas=[0.9]", "optim.betas"),
        ("optim.momentum=-1", "optim.momentum"),
        ("label_smoothing=2", "label_smoothing"),
        ("seed=1e23", "seed"),
        ("grad_clip=-1", "grad_clip"),
        ("optim.lr=.nan", "optim.lr"),
    ],
)
def test_optimiser_values_torch_rejects(tmp_path, assignment, expected):
    result = run(*TRAIN, "--dataset", "digits", "--set", assignment, "-o", tmp_path / "o")
    assert_one_line_error(result, expected)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ({"name": 12, "type": "train"}, "cannot be used as a folder name"),
        ({"name": "a", "type": ["train"]}, "must be a stage type name"),
        ({"name": "../victim", "type": "train"}, "cannot be used as a folder name"),
        ({"name": "/abs/victim", "type": "train"}, "cannot be used as a folder name"),
        ({"name": ".", "type": "train"}, "cannot be used as a folder name"),
    ],
)
def test_bad_pipeline_stages(tmp_path, stage, expected):
    path = tmp_path / "p.yaml"
    path.write_text(json.dumps({"stages": [stage]}))
    assert_one_line_error(run("run", path, "--dry-run", "-o", tmp_path / "o"), expected)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [("missing", "neither an earlier stage"), ("s", "itself"), ("later", "runs later")],
)
def test_pipeline_references_are_checked_by_dry_run(tmp_path, ref, expected):
    path = tmp_path / "p.yaml"
    stages = [
        {"name": "s", "type": "export", "model": ref},
        {"name": "later", "type": "train", "model": "resnet8", "epochs": 1},
    ]
    path.write_text(json.dumps({"stages": stages}))
    assert_one_line_error(run("run", path, "--dry-run", "-o", tmp_path / "o"), expected)


# --------------------------------------------------------------------------- model files and runs


@pytest.fixture
def header_and_weights(digits_model):
    from safetensors import safe_open

    with safe_open(str(digits_model), framework="pt") as fh:
        header = json.loads(fh.metadata()["compress"])
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    return header, tensors


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({"num_classes": "ten"}, "num_classes must be an integer"),
        ({"input_size": 32}, "input_size must be [height, width]"),
        (
            {"pruning": {"rounds": [{"history": [["nope", True, [0]]], "input_shape": [1, 8, 8]}]}},
            "does not fit architecture",
        ),
        (
            {
                "pruning": {
                    "rounds": [{"history": [["conv1", True, "x"]], "input_shape": [1, 8, 8]}]
                }
            },
            "pruning.rounds[0].history",
        ),
        ({"num_classes": 10**9}, "between 1 and 50,000"),
    ],
)
def test_bad_headers(tmp_path, header_and_weights, edit, expected):
    header, tensors = header_and_weights
    path = tmp_path / "m.safetensors"
    save_file(tensors, str(path), metadata={"compress": json.dumps({**header, **edit})})
    assert_one_line_error(run("info", path), expected)


def test_state_pt_with_the_wrong_keys(tmp_path):
    from compress.engine.checkpoint import save_state
    from compress.outputs import make_owned_dir

    out = make_owned_dir(tmp_path / "o", kind="train")
    save_state(out / "state.pt", {"epoch": 1, "weights": torch.zeros(2)})
    result = run(*TRAIN, "--dataset", "digits", "-o", out, "--resume")
    assert_one_line_error(result, "not a complete compress training state")


def test_refused_state_pt_never_suggests_weights_only_false(tmp_path):
    from compress.outputs import make_owned_dir

    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    out = make_owned_dir(tmp_path / "o", kind="train")
    torch.save({"format": "compress-state", "x": Evil()}, out / "state.pt")
    result = run(*TRAIN, "--dataset", "digits", "-o", out, "--resume")
    assert_one_line_error(result, "not a safe training state")
    assert "weights_only" not in result.output


@pytest.mark.parametrize("case", ["under-file", "proc"])
def test_unwritable_output(tmp_path, case):
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" / "o" if case == "under-file" else "/proc/compress/o"
    assert_one_line_error(run(*TRAIN, "--dataset", "digits", "-o", out), "cannot create or write")


def test_empty_format_and_corrupt_onnx(tmp_path, digits_model):
    assert_one_line_error(
        run("export", digits_model, "--format", "", "-o", tmp_path / "e"), "--format is empty"
    )
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage-that-is-not-a-protobuf" * 3)
    assert_one_line_error(run("profile", bad), "not a readable ONNX model")


def test_nan_weights_are_not_exported(tmp_path, digits_model):
    import compress

    model = compress.load_model(digits_model)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    nan_model = compress.save_model(model, tmp_path / "nan.safetensors")
    for fmt in ("onnx", "onnx-int8"):
        result = run("export", nan_model, "--format", fmt, "-o", tmp_path / f"e-{fmt}")
        assert_one_line_error(result, "NaN or infinite values")


def test_nan_logits_fail_validation():
    from compress.exporters.validate import ExportValidationError, Reference, validate
    from compress.runtime.runners import Runner

    class NaNRunner(Runner):
        def _infer_impl(self, images):
            return np.full((len(images), 3), np.nan, np.float32)

    ref = Reference(
        np.zeros((4, 1, 2, 2), np.float32), np.zeros(4, int), np.eye(4, 3, dtype=np.float32)
    )
    with pytest.raises(ExportValidationError, match="NaN or infinite logits") as err:
        validate(NaNRunner(), ref, precision="fp32", fmt="onnx")
    assert err.value.report["passed"] is False


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--ratio", "0.9"], "would prune nothing"),
        (["--target-params", "0.0001"], "cannot be pruned to"),
    ],
)
def test_prune_that_cannot_be_done(tmp_path, digits_model, args, expected):
    result = run("prune", digits_model, *args, "-o", tmp_path / "p", "--device", "cpu")
    assert_one_line_error(result, expected)


def test_ssh_option_injection_is_refused():
    result = run("profile", "x.onnx", "--target", "ssh://-oProxyCommand=touch@host")
    assert_one_line_error(result, "cannot start with '-'")
    result = run("profile", "x.onnx", "--target", "ssh://-oProxyCommand=x")
    assert_one_line_error(result, "cannot start with '-'")


def test_torchvision_detector_header_never_downloads_or_unpickles(
    tmp_path, monkeypatch, header_and_weights
):
    header, tensors = header_and_weights
    home = tmp_path / "torch_home"
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    for name in ("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth"):
        with open(checkpoints / name, "wb") as fh:
            pickle.dump(Evil(), fh)
    monkeypatch.setenv("TORCH_HOME", str(home))
    edited = {**header, "arch": {"name": "torchvision.fasterrcnn_resnet50_fpn", "kwargs": {}}}
    path = tmp_path / "m.safetensors"
    save_file(tensors, str(path), metadata={"compress": json.dumps(edited)})
    assert_one_line_error(run("info", path), "not a torchvision classification model")
    assert not marker.exists()


def test_a_bug_becomes_internal_error_with_a_log(tmp_path, monkeypatch):
    import compress.evaluate

    def broken(_path):
        raise ZeroDivisionError("planted bug")

    monkeypatch.setattr(compress.evaluate, "model_file_info", broken)
    monkeypatch.setenv("COMPRESS_LOG_DIR", str(tmp_path / "logs"))
    result = run("info", "whatever.safetensors")
    assert result.exit_code == 3 and "Traceback" not in result.output
    assert "internal error (ZeroDivisionError: planted bug)" in result.output
    logs = list((tmp_path / "logs").glob("compress-error-*.log"))
    assert len(logs) == 1 and "ZeroDivisionError" in logs[0].read_text()
    assert str(logs[0]) in result.output


def test_onnx_shape_mismatch_is_one_line_naming_both_shapes(tmp_path):
    from compress.models import create_model

    net = create_model("resnet8", num_classes=10, in_channels=1).eval()
    fixed = tmp_path / "fixed.onnx"  # exported elsewhere, batch fixed at 1, no compress metadata
    torch.onnx.export(net, (torch.randn(1, 1, 8, 8),), str(fixed), dynamo=False)
    result = run("profile", str(fixed), "--batch", "1,8", "--eval-images", "0")
    assert_one_line_error(result, "exactly 1 (shape (1, 1, 8, 8)), got (8, 1, 8, 8)")

    from compress.deploy.runners import make_runner
    from compress.runtime.errors import AgentError

    runner = make_runner("onnxruntime", str(fixed))
    with pytest.raises(
        AgentError, match=r"expected images of shape \(N, 1, 8, 8\), got \(1, 3, 32, 32\)"
    ):
        runner.infer(np.zeros((1, 3, 32, 32), np.float32))


def test_a_closed_pipe_is_not_an_internal_error():
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "compress", "models"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the first line, as `| head -0` would do
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "internal error" not in err and "Traceback" not in err
