from __future__ import annotations

import pytest
import torch

from compress.errors import CompressError, UnknownNameError
from compress.models import (
    MODELS,
    FeatureHooks,
    count_params,
    create_model,
    list_models,
    model_info,
)

ALL_MODELS = list_models()
CIFAR_MODELS = [n for n in ALL_MODELS if model_info(n).get("source") == "cifar"]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_model_builds_and_runs(name):
    """Every registered model runs at 28×28 and 32×32, with 1 and 3 input channels."""
    for channels in (1, 3):
        torch.manual_seed(0)
        model = create_model(name, num_classes=7, in_channels=channels).eval()
        for size in (28, 32):
            with torch.no_grad():
                out = model(torch.randn(2, channels, size, size))
            assert out.shape == (2, 7), (name, channels, size)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", CIFAR_MODELS)
def test_cifar_models_run_on_8x8_digits(name):
    model = create_model(name, num_classes=10, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize(
    ("name", "millions"),
    [
        ("resnet8x4", 1.23),
        ("resnet32x4", 7.43),
        ("resnet56", 0.86),
        ("wrn_40_2", 2.26),
        ("resnet8", 0.08),
        ("resnet20", 0.28),
        ("wrn_16_2", 0.70),
        ("vgg8", 3.96),
        ("vgg13", 9.46),
        ("mobilenetv2", 0.81),
        ("shufflenetv1", 0.95),
        ("shufflenetv2", 1.36),
        ("resnet50_cifar", 23.71),
    ],
)
def test_reference_parameter_counts_at_100_classes(name, millions):
    """The published zoo's sizes (RepDistiller / mdistiller tables) at 100 classes."""
    params = count_params(create_model(name, num_classes=100)) / 1e6
    assert params == pytest.approx(millions, abs=0.006)


def test_wrn_pattern_and_torchvision_prefix():
    assert count_params(create_model("wrn_22_1")) > 0
    assert model_info("wrn_22_1")["family"] == "wrn"
    assert create_model("torchvision.squeezenet1_1", num_classes=4).eval()(
        torch.randn(1, 3, 64, 64)
    ).shape == (1, 4)


def test_bad_names_and_options():
    with pytest.raises(UnknownNameError, match="Did you mean 'resnet8x4'"):
        create_model("resnet8x5")
    with pytest.raises(CompressError, match="takes no option 'width'"):
        create_model("resnet8", width=3)
    with pytest.raises(CompressError, match="depth"):
        create_model("wrn_15_2")


def test_feature_hooks_capture_stages_and_embedding():
    model = create_model("resnet8x4", num_classes=10).eval()
    info = model_info("resnet8x4")
    with (
        FeatureHooks(model, info["stages"]) as stages,
        FeatureHooks(model, [info["embedding"]], inputs=True) as emb,
    ):
        model(torch.randn(2, 3, 32, 32))
        shapes = [tuple(stages.features[n].shape) for n in info["stages"]]
        assert shapes == [(2, 64, 32, 32), (2, 128, 16, 16), (2, 256, 8, 8)]
        assert emb.features["fc"].shape == (2, 256)
    with pytest.raises(CompressError, match="no module 'layer9'"):
        FeatureHooks(model, ["layer9"])


@pytest.mark.parametrize("name", [*CIFAR_MODELS, "resnet18", "shufflenet_v2_x0_5"])
def test_declared_stage_and_embedding_modules_exist(name):
    info = model_info(name)
    model = create_model(name)
    modules = dict(model.named_modules())
    for stage in info.get("stages", ()):
        assert stage in modules
    assert info["embedding"] in modules


def test_registry_is_fully_covered():
    """Meta-test: everything registered is exercised by the parametrised tests above."""
    assert set(ALL_MODELS) == set(MODELS.names())
    assert len(CIFAR_MODELS) >= 20
