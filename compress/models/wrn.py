"""Wide ResNets (Zagoruyko & Komodakis 2016) in RepDistiller's layout: ``wrn_{depth}_{width}``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compress.models.registry import MODELS


class WideBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv-BN-ReLU-conv, 1×1 conv shortcut when shapes change."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
        self.drop_rate = drop_rate
        self.equal = in_planes == out_planes and stride == 1
        self.shortcut = (
            None if self.equal else nn.Conv2d(in_planes, out_planes, 1, stride, 0, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        o = self.relu1(self.bn1(x))
        y = self.relu2(self.bn2(self.conv1(o)))
        if self.drop_rate > 0:
            y = F.dropout(y, p=self.drop_rate, training=self.training)
        y = self.conv2(y)
        return y + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(nn.Module):
    """WRN-d-k: three stages of (d−4)/6 blocks with widths 16k/32k/64k."""

    def __init__(
        self,
        depth: int,
        widen_factor: int,
        num_classes: int = 10,
        in_channels: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        ch = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, ch[0], 3, 1, 1, bias=False)
        self.block1 = self._stage(ch[0], ch[1], n, 1, drop_rate)
        self.block2 = self._stage(ch[1], ch[2], n, 2, drop_rate)
        self.block3 = self._stage(ch[2], ch[3], n, 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    @staticmethod
    def _stage(inp: int, out: int, n: int, stride: int, drop: float) -> nn.Sequential:
        return nn.Sequential(
            *[
                WideBlock(inp if i == 0 else out, out, stride if i == 0 else 1, drop)
                for i in range(n)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        x = self.relu(self.bn1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


_INFO = {
    "family": "wrn",
    "stages": ("block1", "block2", "block3"),
    "embedding": "fc",
    # what runs after the shared layers, in order (flatten before the classifier): ONE's branches
    "head": ("block3", "bn1", "relu", "avgpool", "fc"),
}


def _factory(depth: int, width: int):
    def factory(num_classes: int = 10, in_channels: int = 3, drop_rate: float = 0.0) -> nn.Module:
        return WideResNet(depth, width, num_classes, in_channels, drop_rate)

    factory.__doc__ = f"Wide ResNet, depth {depth}, widen factor {width}."
    return factory


for _d, _k in [
    (10, 2),
    (16, 1),
    (16, 2),
    (16, 4),
    (28, 2),
    (28, 4),
    (28, 10),
    (40, 1),
    (40, 2),
    (40, 4),
]:
    MODELS.add(f"wrn_{_d}_{_k}", _factory(_d, _k), source="cifar", **_INFO)

MODELS.add_pattern(
    r"wrn_(\d+)_(\d+)",
    lambda m: _factory(int(m[1]), int(m[2])),
    example="wrn_{depth}_{width}",
    source="cifar",
    **_INFO,
)
