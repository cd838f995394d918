"""The QAT schedule as a training-loop callback: fixed activation scales, moving weight scales.

The activation scales come from the calibration and, for the first ``observe`` share of the
epochs (0 by default), keep moving with the training batches; then they are fixed, as
ModelOpt's QAT keeps its calibrated ranges (moving them while the weights move made a test
network collapse here: docs/quantization.md). The weight quantizers' scales track the current
weights throughout. Observers never see the evaluation images: they are off while the trainer
evaluates and saves. BatchNorm layers that could not be folded (one that follows no
convolution) stay frozen in eval mode throughout.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from compress.engine.callbacks import Callback
from compress.quantize.graph import set_observers


class QATCallback(Callback):
    """Observers on for the first `observe` share of the epochs, off for the rest and at eval."""

    def __init__(self, observe: float) -> None:
        self.observe = observe

    def observing(self, epoch: int, epochs: int) -> bool:
        """Whether the scales still move in 0-based `epoch` of `epochs`."""
        return epoch < math.ceil(self.observe * epochs)

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:  # noqa: D102
        model = trainer.task.model
        set_observers(model, self.observing(epoch, trainer.settings.epochs), weights=True)
        for m in model.modules():  # BatchNorm left unfolded: frozen statistics
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()

    def on_batches_end(self, trainer: Any, epoch: int) -> None:  # noqa: D102
        set_observers(trainer.task.model, False)  # evaluation must not move the scales
