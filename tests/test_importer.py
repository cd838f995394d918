"""`compress import`: real torch.save / safetensors files in the layouts other tools write."""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys

import pytest
import torch
import torchvision
from click.testing import CliRunner

from compress.artifacts import load_model, read_header
from compress.cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_error_line(result) -> str:
    """The single `Error:` line of a failed command (and nothing that looks like a traceback)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_torchvision_state_dict_imports_and_reproduces_the_outputs(tmp_path):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=7).eval()
    src = tmp_path / "teacher.pth"
    torch.save(net.state_dict(), src)
    out = tmp_path / "t.safetensors"
    result = invoke(
        "import", src, "--arch", "resnet18", "--num-classes", 7, "--image-size", 32,
        "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25", "--dataset", "imagefolder", "-o", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    header = read_header(out)
    assert header.input_size == (32, 32) and header.num_classes == 7
    assert header.mean == (0.5, 0.5, 0.5) and header.dataset == "imagefolder"
    source = header.provenance["source"]
    assert source["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert source["path"] == str(src)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(load_model(out)(x), net(x))


def test_ddp_prefixed_checkpoint_dict_imports(tmp_path):
    torch.manual_seed(1)
    net = torchvision.models.mobilenet_v2(num_classes=5).eval()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    net.eval()
    wrapped = {"module." + k: v for k, v in net.state_dict().items()}
    src = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "model_state_dict": wrapped, "optimizer": opt.state_dict()}, src)
    out = tmp_path / "m.safetensors"
    result = invoke("import", src, "--arch", "mobilenet_v2", "--num-classes", 5, "-o", out)
    assert result.exit_code == 0, result.output
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(load_model(out)(x), net(x))
    assert read_header(out).input_size == (224, 224)  # torchvision's default, said in the docs


def mdistiller_resnet8x4_state(num_classes: int = 100) -> dict[str, torch.Tensor]:
    """The key layout of mdistiller's `resnet8x4` (mdistiller/models/cifar/resnet.py), written out
    by hand from that file: conv1/bn1, layer1..3 of one BasicBlock each with a conv+BN
    `downsample`, fc. Values are random; the shapes are what the released checkpoints hold."""
    g = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}

    def conv(name, cout, cin, k):
        state[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=g) * 0.1

    def bn(name, c):
        state[f"{name}.weight"] = torch.rand(c, generator=g) + 0.5
        state[f"{name}.bias"] = torch.randn(c, generator=g) * 0.1
        state[f"{name}.running_mean"] = torch.randn(c, generator=g) * 0.1
        state[f"{name}.running_var"] = torch.rand(c, generator=g) + 0.5
        state[f"{name}.num_batches_tracked"] = torch.tensor(1000)

    conv("conv1", 32, 3, 3)
    bn("bn1", 32)
    cin = 32
    for i, cout in enumerate((64, 128, 256), start=1):
        conv(f"layer{i}.0.conv1", cout, cin, 3)
        bn(f"layer{i}.0.bn1", cout)
        conv(f"layer{i}.0.conv2", cout, cout, 3)
        bn(f"layer{i}.0.bn2", cout)
        conv(f"layer{i}.0.downsample.0", cout, cin, 1)
        bn(f"layer{i}.0.downsample.1", cout)
        cin = cout
    state["fc.weight"] = torch.randn(num_classes, 256, generator=g) * 0.1
    state["fc.bias"] = torch.zeros(num_classes)
    return state


def test_mdistiller_checkpoint_imports_into_the_zoo_name(tmp_path):
    state = mdistiller_resnet8x4_state()
    src = tmp_path / "ckpt_epoch_240.pth"
    torch.save({"model": state, "epoch": 240, "accuracy": 73.1}, src)
    out = tmp_path / "r.safetensors"
    result = invoke(
        "import",
        src,
        "--arch",
        "resnet8x4",
        "--num-classes",
        100,
        "--dataset",
        "cifar100",
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    model = load_model(out)
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert read_header(out).input_size == (32, 32)


def test_safetensors_weights_import(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(2)
    net = torchvision.models.resnet18(num_classes=3).eval()
    src = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, src)
    out = tmp_path / "o.safetensors"
    assert invoke("import", src, "--arch", "resnet18", "--num-classes", 3, "-o", out).exit_code == 0
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(load_model(out)(x), net(x))


def test_wrong_architecture_lists_the_keys(tmp_path):
    src = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), src)
    line = one_error_line(
        invoke(
            "import",
            src,
            "--arch",
            "resnet34",
            "--num-classes",
            10,
            "-o",
            tmp_path / "x.safetensors",
        )
    )
    assert "missing 80 key(s) (layer1.2.conv1.weight" in line and "check --arch" in line
    line = one_error_line(
        invoke(
            "import",
            src,
            "--arch",
            "resnet18",
            "--num-classes",
            100,
            "-o",
            tmp_path / "x.safetensors",
        )
    )
    assert "fc.weight (10, 512) vs (100, 512)" in line and "--num-classes 10" in line
    line = one_error_line(
        invoke(
            "import",
            src,
            "--arch",
            "resnet8",
            "--num-classes",
            10,
            "-o",
            tmp_path / "x.safetensors",
        )
    )
    assert "unexpected 66 key(s)" in line and "check --arch" in line
    assert not (tmp_path / "x.safetensors").exists()


def test_import_never_overwrites_and_never_unpickles(tmp_path):
    src = tmp_path / "r.pth"
    torch.save(torchvision.models.resnet18(num_classes=2).state_dict(), src)
    taken = tmp_path / "taken.safetensors"
    taken.write_bytes(b"the user's file")
    line = one_error_line(
        invoke("import", src, "--arch", "resnet18", "--num-classes", 2, "-o", taken)
    )
    assert "never overwrites" in line and taken.read_bytes() == b"the user's file"

    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as fh:  # a pickle whose loading would create a file
        pickle.dump(Boom(str(marker)), fh)
    line = one_error_line(
        invoke(
            "import",
            evil,
            "--arch",
            "resnet18",
            "--num-classes",
            2,
            "-o",
            tmp_path / "e.safetensors",
        )
    )
    assert not marker.exists()
    assert "weights_only=False" not in line


class Boom:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_wrong_kind_of_model_file_says_what_it_is_and_how_to_bring_it_in(tmp_path):
    net = torchvision.models.resnet18(num_classes=2).eval()
    state = tmp_path / "teacher.pth"
    torch.save(net.state_dict(), state)
    legacy = tmp_path / "legacy.pt"
    torch.save(net.state_dict(), legacy, _use_new_zipfile_serialization=False)
    scripted = tmp_path / "scripted.pt"
    torch.jit.script(net).save(str(scripted))
    onnx_file = tmp_path / "m.onnx"
    torch.onnx.export(net, (torch.randn(1, 3, 32, 32),), str(onnx_file), dynamo=False)
    cases = {
        state: "compress import",
        legacy: "compress import",
        scripted: "TorchScript",
        onnx_file: "compress profile",
    }
    for path, hint in cases.items():
        for verb in (["info", path], ["eval", path], ["distill", "--teacher", path]):
            line = one_error_line(invoke(*verb))
            assert hint in line, (verb, line)
    line = one_error_line(
        invoke(
            "import",
            scripted,
            "--arch",
            "resnet18",
            "--num-classes",
            2,
            "-o",
            tmp_path / "s.safetensors",
        )
    )
    assert "TorchScript" in line


def test_timm_models_resolve_and_import(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(3)
    net = timm.create_model("resnet10t", pretrained=False, num_classes=4).eval()
    src = tmp_path / "timm.pth"
    torch.save(net.state_dict(), src)
    out = tmp_path / "t.safetensors"
    result = invoke(
        "import", src, "--arch", "timm.resnet10t", "--num-classes", 4, "--image-size", 64, "-o", out
    )
    assert result.exit_code == 0, result.output
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(load_model(out)(x), net(x))
    line = one_error_line(
        invoke(
            "import",
            src,
            "--arch",
            "timm.resnet10tt",
            "--num-classes",
            4,
            "-o",
            tmp_path / "u.safetensors",
        )
    )
    assert "not a timm model" in line and "resnet10t" in line


def test_timm_weights_options_are_refused():
    pytest.importorskip("timm")
    from compress.errors import CompressError
    from compress.models import create_model

    with pytest.raises(CompressError, match="without weights"):
        create_model("timm.resnet10t", pretrained=True)


def test_entry_point_architecture_loads_in_a_fresh_process(tmp_path):
    """A third-party package registers `tinynet` through the `compress.models` entry-point group."""
    site = tmp_path / "site"
    (site / "tinyplugin").mkdir(parents=True)
    (site / "tinyplugin" / "__init__.py").write_text(
        "from torch import nn\n"
        "def tinynet(num_classes=10, in_channels=3):\n"
        "    return nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.AdaptiveAvgPool2d(1),\n"
        "                         nn.Flatten(), nn.Linear(4, num_classes))\n"
    )
    dist = site / "tinyplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[compress.models]\ntinynet = tinyplugin:tinynet\n")
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    save = (
        "import sys, torch, compress; from compress.models import create_model;"
        "m = create_model('tinynet', num_classes=3); torch.manual_seed(0);"
        "compress.save_model(m, sys.argv[1], input_size=[16, 16])"
    )
    path = tmp_path / "tiny.safetensors"
    subprocess.run([sys.executable, "-c", save, str(path)], env=env, check=True)
    load = (
        "import sys, json, compress; m = compress.load_model(sys.argv[1]);"
        "print(json.dumps([m.compress_header.arch, sum(p.numel() for p in m.parameters())]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", load, str(path)], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == ["tinynet", 3 * 4 * 9 + 4 + 4 * 3 + 3]
