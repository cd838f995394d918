"""CIFAR-style ResNets (He et al. 2016) as used by RepDistiller/mdistiller.

``resnet{8,14,20,26,32,44,56,110}`` have stage widths 16/32/64; ``resnet8x4`` and
``resnet32x4`` are four times wider (32/64/128/256). Shortcuts are 1×1 conv + BN when the shape
changes (mdistiller's choice); ``shortcut="pad"`` gives the parameter-free option-A shortcut.
The final pooling is adaptive, so 8×8, 28×28 and 32×32 inputs all work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compress.models.registry import MODELS


class BasicBlock(nn.Module):
    """Two 3×3 convs with BN and a residual connection."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, shortcut: str = "conv") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        self.pad = 0
        self.stride = stride
        if stride != 1 or inplanes != planes:
            if shortcut == "conv":
                self.downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
                )
            else:
                self.pad = planes - inplanes

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        elif self.pad or self.stride != 1:
            identity = x[:, :, :: self.stride, :: self.stride]
            half = self.pad // 2
            identity = F.pad(identity, (0, 0, 0, 0, half, self.pad - half))
        else:
            identity = x
        return self.relu(out + identity)


class CifarResNet(nn.Module):
    """ResNet for small images: a 3×3 stem, three stages, global pooling, a linear head."""

    def __init__(
        self,
        depth: int,
        widths: tuple[int, int, int, int],
        num_classes: int = 10,
        in_channels: int = 3,
        shortcut: str = "conv",
    ) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        if shortcut not in ("conv", "pad"):
            raise ValueError(f"shortcut must be 'conv' or 'pad', got {shortcut!r}")
        n = (depth - 2) // 6
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(widths[1], n, 1, shortcut)
        self.layer2 = self._make_layer(widths[2], n, 2, shortcut)
        self.layer3 = self._make_layer(widths[3], n, 2, shortcut)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int, shortcut: str) -> nn.Sequential:
        layers = [BasicBlock(self.inplanes, planes, stride, shortcut)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes, 1, shortcut) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


_STAGES = ("layer1", "layer2", "layer3")
#: what runs after the shared layers, in order (a flatten comes before the classifier): the
#: last stage and the classifier, which ONE's branches copy
_HEAD = ("layer3", "avgpool", "fc")


def _register(name: str, depth: int, widths: tuple[int, int, int, int]) -> None:
    def factory(num_classes: int = 10, in_channels: int = 3, shortcut: str = "conv") -> nn.Module:
        return CifarResNet(depth, widths, num_classes, in_channels, shortcut)

    factory.__doc__ = f"CIFAR ResNet-{depth}, stage widths {widths[1:]}."
    MODELS.add(
        name, factory, family="resnet", stages=_STAGES, embedding="fc", head=_HEAD, source="cifar"
    )


for _depth in (8, 14, 20, 26, 32, 44, 56, 110):
    _register(f"resnet{_depth}", _depth, (16, 16, 32, 64))
_register("resnet8x4", 8, (32, 64, 128, 256))
_register("resnet32x4", 32, (32, 64, 128, 256))


class Bottleneck(nn.Module):
    """1×1 → 3×3 → 1×1 (×4) with BN, projection shortcut when the shape changes."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))
            if stride != 1 or inplanes != out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + self.shortcut(x))


class CifarResNet50(nn.Module):
    """ResNet-50 for 32×32 inputs (mdistiller's ``ResNet50``): 3×3 stem, no max-pool."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        layers, inplanes = [], 64
        for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            stage = []
            for i in range(blocks):
                stage.append(Bottleneck(inplanes, planes, stride if i == 0 else 1))
                inplanes = planes * Bottleneck.expansion
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@MODELS.register(
    "resnet50_cifar",
    family="resnet",
    stages=("layer1", "layer2", "layer3", "layer4"),
    embedding="fc",
    source="cifar",
)
def resnet50_cifar(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """ResNet-50 in mdistiller's CIFAR layout (the teacher of the ResNet50 → MobileNetV2 pair)."""
    return CifarResNet50(num_classes, in_channels)
