"""Every recipe shipped under configs/ resolves into its settings without error."""

from __future__ import annotations

from pathlib import Path

import pytest

from compress.config import build, load_yaml
from compress.distill.config import DistillConfig
from compress.pipeline import plan_pipeline
from compress.train import TrainConfig

CONFIGS = sorted(Path(__file__).resolve().parents[1].joinpath("configs").rglob("*.yaml"))


def test_configs_exist():
    assert len(CONFIGS) >= 10


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_recipe_resolves(path, tmp_path):
    data = load_yaml(path)
    if "axis" in data:
        from compress.study import StudyConfig, plan_study

        _, cells = plan_study(build(StudyConfig, data, where=str(path)))
        assert len(cells) >= 8
    elif "stages" in data:
        _, stages = plan_pipeline(path, output=tmp_path)
        assert stages
    elif "method" in data or "teacher" in data:
        config = build(DistillConfig, data, where=str(path))
        assert config.student and config.method
    else:
        config = build(TrainConfig, data, where=str(path))
        assert config.data.name in {"digits", "fashion-mnist", "cifar10", "cifar100", "imagefolder"}
