from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from compress.config import (
    NO_HASH,
    build,
    config_hash,
    load_yaml,
    merge,
    parse_assignments,
    to_dict,
    write_config,
)
from compress.errors import ConfigError
from compress.train import TrainConfig


@dataclass
class Inner:
    lr: float = 0.1
    name: Literal["sgd", "adamw"] = "sgd"


@dataclass
class Outer:
    epochs: int = 10
    inner: Inner = field(default_factory=Inner)
    tags: list[int] = field(default_factory=list)
    path: str | None = field(default=None, metadata=NO_HASH)


def test_precedence_cli_over_file_over_default(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("epochs: 20\ninner: {lr: 0.5}\n")
    file_data = load_yaml(f)
    assert build(Outer, {}).epochs == 10  # default
    assert build(Outer, file_data).epochs == 20  # file over default
    merged = merge(file_data, {"epochs": 30, "inner.lr": None, "inner.name": "adamw"})
    cfg = build(Outer, merged)
    assert cfg.epochs == 30  # flag over file
    assert cfg.inner.lr == 0.5  # None flag = not given: file value kept
    assert cfg.inner.name == "adamw"


def test_unknown_key_names_closest(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'inner\.lrr'.*Did you mean 'inner\.lr'"):
        build(Outer, {"inner": {"lrr": 1}}, where="x.yaml")
    with pytest.raises(ConfigError, match=r"Did you mean 'epochs'"):
        build(Outer, {"epoch": 3})


def test_types_are_checked_and_coerced():
    assert build(Inner, {"lr": "5e-4"}).lr == 5e-4  # PyYAML reads 5e-4 as a string
    assert build(Outer, {"tags": 3}).tags == [3]
    with pytest.raises(ConfigError, match="must be an integer"):
        build(Outer, {"epochs": "many"})
    with pytest.raises(ConfigError, match=r"must be one of sgd, adamw.*Did you mean 'sgd'"):
        build(Inner, {"name": "sgdd"})


def test_validation_errors_from_post_init_are_config_errors():
    with pytest.raises(ConfigError, match="epochs must be"):
        build(TrainConfig, {"epochs": 0})


def test_hash_ignores_no_hash_fields_and_tracks_others():
    a = build(Outer, {"path": "/a"})
    b = build(Outer, {"path": "/b"})
    c = build(Outer, {"epochs": 11})
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(c)


def test_parse_assignments():
    assert parse_assignments(["optim.lr=0.1", "data.name=digits", "x=[1, 2]"]) == {
        "optim.lr": 0.1,
        "data.name": "digits",
        "x": [1, 2],
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_assignments(["oops"])


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(listy)


def test_write_config_round_trips(tmp_path):
    cfg = build(TrainConfig, {"model": "resnet8", "epochs": 3, "optim": {"lr": 0.2}})
    digest = write_config(cfg, tmp_path)
    text = (tmp_path / "config.yaml").read_text()
    assert digest in text.splitlines()[0]
    assert text.splitlines()[1].startswith("model:")  # config_order puts the model first
    again = build(TrainConfig, load_yaml(tmp_path / "config.yaml"))
    assert again == cfg
    assert to_dict(again) == to_dict(cfg)
