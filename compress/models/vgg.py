"""VGG with BatchNorm in RepDistiller's CIFAR layout: ``vgg8/11/13/16/19``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compress.models.registry import MODELS

_CFG = {
    "vgg8": [[64], [128], [256], [512], [512]],
    "vgg11": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "vgg16": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    "vgg19": [[64, 64], [128, 128], [256] * 4, [512] * 4, [512] * 4],
}


def _block(widths: list[int], in_ch: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for w in widths:
        layers += [nn.Conv2d(in_ch, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        in_ch = w
    return nn.Sequential(*layers[:-1])  # the block's last ReLU is applied in forward


class VGG(nn.Module):
    """Five conv blocks separated by max-pooling, global average pooling, one linear layer.

    As in RepDistiller, the pooling after block 3 is only applied to inputs of 64 px or more, so
    32×32 inputs reach block 4 at 4×4. Blocks whose input has shrunk to 1 px skip pooling.
    """

    def __init__(self, cfg: list[list[int]], num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        chans = [in_channels] + [c[-1] for c in cfg]
        self.block0 = _block(cfg[0], chans[0])
        self.block1 = _block(cfg[1], chans[1])
        self.block2 = _block(cfg[2], chans[2])
        self.block3 = _block(cfg[3], chans[3])
        self.block4 = _block(cfg[4], chans[4])
        self.pool = nn.MaxPool2d(2, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(chans[5], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def _down(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) if x.shape[-1] >= 2 and x.shape[-2] >= 2 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        h = x.shape[-2]
        x = self._down(F.relu(self.block0(x)))
        x = self._down(F.relu(self.block1(x)))
        x = self._down(F.relu(self.block2(x)))
        x = F.relu(self.block3(x))
        if h >= 64:
            x = self._down(x)
        x = F.relu(self.block4(x))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def _factory(name: str):
    def factory(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
        return VGG(_CFG[name], num_classes, in_channels)

    factory.__doc__ = f"{name.upper()} with BatchNorm (CIFAR layout)."
    return factory


for _name in _CFG:
    MODELS.add(
        _name,
        _factory(_name),
        family="vgg",
        stages=("block1", "block2", "block3", "block4"),
        embedding="classifier",
        source="cifar",
    )
