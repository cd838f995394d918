"""ShuffleNetV1 (Zhang et al. 2018) and V2 (Ma et al. 2018) in RepDistiller's CIFAR layout."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compress.models.registry import MODELS


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of `groups` groups."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class V1Bottleneck(nn.Module):
    """Grouped 1×1 → shuffle → depthwise 3×3 → grouped 1×1; concat-shortcut when striding."""

    def __init__(
        self, in_planes: int, out_planes: int, stride: int, groups: int, first: bool
    ) -> None:
        super().__init__()
        self.stride = stride
        mid = out_planes // 4
        g = 1 if first else groups
        self.g1 = g
        self.conv1 = nn.Conv2d(in_planes, mid, 1, groups=g, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_planes, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = F.relu(self.bn1(self.conv1(x)))
        out = channel_shuffle(out, self.g1) if self.g1 > 1 else out
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        res = self.shortcut(x)
        return F.relu(torch.cat([out, res], 1) if self.stride == 2 else out + res)


class ShuffleNetV1(nn.Module):
    """ShuffleNetV1, groups 3, stage widths 240/480/960 (RepDistiller's ``ShuffleV1``)."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        out_planes: tuple[int, int, int] = (240, 480, 960),
        num_blocks: tuple[int, int, int] = (4, 8, 4),
        groups: int = 3,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        self.in_planes = 24
        self.layer1 = self._make_layer(out_planes[0], num_blocks[0], groups)
        self.layer2 = self._make_layer(out_planes[1], num_blocks[1], groups)
        self.layer3 = self._make_layer(out_planes[2], num_blocks[2], groups)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(out_planes[2], num_classes)

    def _make_layer(self, out_planes: int, n: int, groups: int) -> nn.Sequential:
        layers = []
        for i in range(n):
            cat = self.in_planes if i == 0 else 0
            first = self.in_planes == 24
            layers.append(
                V1Bottleneck(self.in_planes, out_planes - cat, 2 if i == 0 else 1, groups, first)
            )
            self.in_planes = out_planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(torch.flatten(self.avgpool(x), 1))


class V2Block(nn.Module):
    """Split the channels in two, transform one half, concat, shuffle."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels // 2
        self.conv1 = nn.Conv2d(c, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x1, x2 = x.chunk(2, dim=1)
        out = F.relu(self.bn1(self.conv1(x2)))
        out = self.bn2(self.conv2(out))
        out = F.relu(self.bn3(self.conv3(out)))
        return channel_shuffle(torch.cat([x1, out], 1), 2)


class V2DownBlock(nn.Module):
    """Two strided branches (depthwise + pointwise), concatenated and shuffled."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 2, 1, groups=in_channels, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = nn.Conv2d(mid, mid, 3, 2, 1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, 1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = F.relu(self.bn3(self.conv3(x)))
        right = F.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        return channel_shuffle(torch.cat([left, right], 1), 2)


_V2_SIZES = {
    0.5: ((48, 96, 192, 1024), (3, 7, 3)),
    1.0: ((116, 232, 464, 1024), (3, 7, 3)),
    1.5: ((176, 352, 704, 1024), (3, 7, 3)),
    2.0: ((224, 488, 976, 2048), (3, 7, 3)),
}


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 (RepDistiller's ``ShuffleV2``, net size 1 by default)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, net_size: float = 1.0) -> None:
        super().__init__()
        if net_size not in _V2_SIZES:
            raise ValueError(f"net_size must be one of {sorted(_V2_SIZES)}, got {net_size}")
        widths, blocks = _V2_SIZES[net_size]
        self.conv1 = nn.Conv2d(in_channels, 24, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        ch = 24
        layers = []
        for w, n in zip(widths[:3], blocks):
            layers.append(nn.Sequential(V2DownBlock(ch, w), *[V2Block(w) for _ in range(n)]))
            ch = w
        self.layer1, self.layer2, self.layer3 = layers
        self.conv2 = nn.Conv2d(ch, widths[3], 1, bias=False)
        self.bn2 = nn.BatchNorm2d(widths[3])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(widths[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.linear(torch.flatten(self.avgpool(x), 1))


_INFO = {"family": "shufflenet", "stages": ("layer1", "layer2", "layer3"), "embedding": "linear"}


@MODELS.register("shufflenetv1", source="cifar", **_INFO)
def shufflenetv1(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """ShuffleNetV1 with 3 groups (CIFAR layout)."""
    return ShuffleNetV1(num_classes, in_channels)


@MODELS.register("shufflenetv2", source="cifar", **_INFO)
def shufflenetv2(num_classes: int = 10, in_channels: int = 3, net_size: float = 1.0) -> nn.Module:
    """ShuffleNetV2, net size 1 (CIFAR layout)."""
    return ShuffleNetV2(num_classes, in_channels, net_size)
