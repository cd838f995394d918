"""MobileNetV2 for small images, RepDistiller's ``mobile_half`` (expansion 6, width 0.5)."""

from __future__ import annotations

import torch
from torch import nn

from compress.models.registry import MODELS

# t (expansion), c (channels at width 1), n (repeats), s (stride of the first)
_SETTING = [
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def _conv_bn(inp: int, out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
    layers: list[nn.Module] = [
        nn.Conv2d(inp, out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return layers


class InvertedResidual(nn.Module):
    """Expand (1×1) → depthwise 3×3 → project (1×1), residual when shapes match."""

    def __init__(self, inp: int, out: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = inp * expand
        self.use_res = stride == 1 and inp == out
        self.conv = nn.Sequential(
            *_conv_bn(inp, mid, 1),
            *_conv_bn(mid, mid, 3, stride, groups=mid),
            *_conv_bn(mid, out, 1, act=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 with a stride-2 stem, as in RepDistiller's CIFAR version."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        width_mult: float = 0.5,
        expansion: int = 6,
    ) -> None:
        super().__init__()
        ch = int(32 * width_mult)
        self.conv1 = nn.Sequential(*_conv_bn(in_channels, ch, 3, 2))
        stages = []
        for t, c, n, s in _SETTING:
            out = int(c * width_mult)
            blocks = []
            for i in range(n):
                blocks.append(
                    InvertedResidual(ch, out, s if i == 0 else 1, expansion if t != 1 else 1)
                )
                ch = out
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        last = int(1280 * width_mult) if width_mult > 1.0 else 1280
        self.conv2 = nn.Sequential(*_conv_bn(ch, last, 1))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.conv2(self.blocks(self.conv1(x)))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


@MODELS.register(
    "mobilenetv2",
    family="mobilenet",
    stages=("blocks.1", "blocks.2", "blocks.4", "blocks.6"),
    embedding="classifier",
    source="cifar",
)
def mobilenetv2(
    num_classes: int = 10, in_channels: int = 3, width_mult: float = 0.5, expansion: int = 6
) -> nn.Module:
    """MobileNetV2 (CIFAR variant, width 0.5 by default: RepDistiller's ``mobile_half``)."""
    return MobileNetV2(num_classes, in_channels, width_mult, expansion)
