"""Property: a training config that `build` accepts survives the optimiser, the schedule and one
step — anything else is refused up front with a `ConfigError` (never a raw error at step 1)."""

from __future__ import annotations

import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compress.config import build
from compress.engine.optim import build_optimizer, build_scheduler
from compress.engine.tasks import SupervisedTask
from compress.errors import ConfigError
from compress.train import TrainConfig

numbers = st.one_of(
    st.integers(-(10**25), 10**25),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 0.5, 1e-12, 1e12, 2**63, -0.0]),
)
anything = st.one_of(
    numbers, st.none(), st.booleans(), st.text(max_size=5), st.lists(numbers, max_size=3)
)


def maybe(strategy):
    return st.one_of(st.just(None), strategy, anything)


configs = st.fixed_dictionaries(
    {},
    optional={
        "epochs": maybe(st.integers(-2, 5)),
        "seed": maybe(numbers),
        "label_smoothing": maybe(numbers),
        "grad_clip": maybe(numbers),
        "amp": maybe(st.sampled_from(["bf16", "fp16", "none", "fp8"])),
        "optim": st.fixed_dictionaries(
            {},
            optional={
                "name": maybe(st.sampled_from(["sgd", "adamw", "adam"])),
                "lr": maybe(numbers),
                "momentum": maybe(numbers),
                "weight_decay": maybe(numbers),
                "nesterov": maybe(st.booleans()),
                "betas": maybe(st.lists(numbers, max_size=3)),
            },
        ),
        "schedule": st.fixed_dictionaries(
            {},
            optional={
                "name": maybe(st.sampled_from(["multistep", "cosine", "constant"])),
                "milestones": maybe(st.lists(numbers, max_size=3)),
                "gamma": maybe(numbers),
                "warmup_epochs": maybe(numbers),
                "min_lr": maybe(numbers),
            },
        ),
        "data": st.fixed_dictionaries(
            {},
            optional={"batch_size": maybe(numbers), "train_subset": maybe(numbers)},
        ),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_accepted_configs_survive_the_first_step(data):
    try:
        config = build(TrainConfig, data)
    except ConfigError:
        return
    torch.manual_seed(config.seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    task = SupervisedTask(model, config.label_smoothing)
    optimizer = build_optimizer(task.trainable_parameters(), config.optim)
    scheduler = build_scheduler(optimizer, config.schedule, steps_per_epoch=2, epochs=config.epochs)
    x, y = torch.randn(4, 1, 2, 2), torch.tensor([0, 1, 2, 0])
    for _ in range(2):
        loss = task(x, y)["loss"]
        optimizer.zero_grad()
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
    assert math.isfinite(float(loss.detach()))
    assert all(math.isfinite(g["lr"]) and g["lr"] >= 0 for g in optimizer.param_groups)
