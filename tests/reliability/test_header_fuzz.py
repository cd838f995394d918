"""Fuzz: random JSON in every model-file header field either loads or gives the toolkit's one-line
`ModelFileError`/`CompressError` — never a raw exception, a huge allocation or a hang."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

import compress
from compress.errors import CompressError
from compress.evaluate import model_file_info

FIELDS = [
    ("arch",),
    ("arch", "name"),
    ("arch", "kwargs"),
    ("arch", "kwargs", "num_classes"),
    ("arch", "kwargs", "width"),
    ("num_classes",),
    ("in_channels",),
    ("input_size",),
    ("mean",),
    ("std",),
    ("dataset",),
    ("class_names",),
    ("pruning",),
    ("pruning", "rounds"),
    ("metrics",),
    ("provenance",),
    ("extra",),
    ("format",),
    ("format_version",),
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**13), 10**13),
    st.sampled_from([0, 1, 3, 10, 28, 10**5, 10**8, 10**12, -1, 200000]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["resnet8", "torchvision.fasterrcnn_resnet50_fpn", "wrn_9999_99", "vgg8"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    model = compress.create_model("resnet8", num_classes=10, in_channels=1)
    path = compress.save_model(
        model,
        tmp_path_factory.mktemp("fuzz") / "m.safetensors",
        input_size=[8, 8],
        mean=[0.5],
        std=[0.25],
        dataset="digits",
    )
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        header = json.loads(fh.metadata()["compress"])
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    return header, tensors, path.parent


def _set(header, keys, value):
    node = header
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value


@settings(
    max_examples=150,
    deadline=timedelta(seconds=30),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.tuples(st.sampled_from(FIELDS), json_values), min_size=1, max_size=3))
def test_any_header_loads_or_gives_one_line_error(base, edits):
    header, tensors, folder = base
    header = copy.deepcopy(header)
    for keys, value in edits:
        _set(header, keys, value)
    path = folder / "fuzzed.safetensors"
    save_file(tensors, str(path), metadata={"compress": json.dumps(header)})
    try:
        facts = model_file_info(path)
    except CompressError as exc:
        assert "\n" not in str(exc).strip()
        return
    assert facts["params"] > 0 and facts["num_classes"] >= 1


@pytest.mark.parametrize(
    "edit",
    [
        {"num_classes": 10**8, "arch": {"name": "resnet8", "kwargs": {"num_classes": 10**8}}},
        {"input_size": [200000, 200000]},
        {"pruning": {"rounds": [{"history": [], "input_shape": [3, 100000, 100000]}]}},
        {"arch": {"name": "resnet8", "kwargs": {"num_classes": 10, "in_channels": 1000}}},
        {"arch": {"name": "torchvision.fasterrcnn_resnet50_fpn", "kwargs": {}}},
        {"pruning": {"rounds": [{"history": [["nolayer", True, [0]]], "input_shape": [1, 8, 8]}]}},
        {"mean": "zero"},
        {"num_classes": "ten"},
    ],
)
def test_the_reported_attacks_are_refused_before_building(base, edit):
    header, tensors, folder = base
    header = {**copy.deepcopy(header), **edit}
    path = folder / "attack.safetensors"
    save_file(tensors, str(path), metadata={"compress": json.dumps(header)})
    with pytest.raises(CompressError) as err:
        model_file_info(path)
    assert "\n" not in str(err.value)
