"""The int32 bias of the ONNX Runtime flavour (``compress.quantize.graph._BiasInt32``)."""

from __future__ import annotations

import torch
from torch import nn

from compress.quantize.graph import calibrate, insert, rebuild


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3)).eval()


def test_uint8_flavour_adds_the_int32_bias_an_int8_kernel_adds():
    model, record = insert(tiny(), "uint8")
    assert record["bias"] == "int32"
    x = torch.randn(16, 1, 8, 8)
    calibrate(model, [(x, None)], 16)
    conv = model.get_submodule("0")
    step = (conv._input[0].scale * conv.weight_fake_quant.scale).detach()
    bias = conv._bias(conv.conv.bias)
    assert torch.equal(bias, torch.round(conv.conv.bias / step) * step)  # on the int32 grid
    assert not torch.equal(bias, conv.conv.bias)  # and so not the float bias
    # the quantizer it reads stays registered once: the state dict has no second copy
    assert sum(k.endswith(".scale") for k in model.state_dict()) == 2 + 2  # 2 inputs, 2 weights


def test_int8_flavour_and_files_from_before_keep_a_float_bias():
    model, record = insert(tiny(), "int8")
    assert record["bias"] == "float"
    conv = model.get_submodule("0")
    assert conv._bias(conv.conv.bias) is conv.conv.bias
    old = {k: v for k, v in insert(tiny(), "uint8")[1].items() if k != "bias"}
    replayed = rebuild(tiny(), old)  # a uint8 file written before the int32 bias existed
    conv = replayed.get_submodule("0")
    assert conv._bias(conv.conv.bias) is conv.conv.bias
