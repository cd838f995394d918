from __future__ import annotations

import pytest

from compress.errors import UnknownNameError
from compress.registry import Registry


def test_register_get_and_duplicates():
    reg: Registry = Registry("widget")

    @reg.register("alpha", colour="red")
    def alpha():
        return 1

    assert reg.get("alpha") is alpha
    assert reg.info("alpha") == {"colour": "red"}
    assert "alpha" in reg and "beta" not in reg
    with pytest.raises(ValueError, match="already registered"):
        reg.add("alpha", alpha)


def test_unknown_name_suggests_and_lists():
    reg: Registry = Registry("widget")
    reg.add("resnet8", 1)
    reg.add("resnet20", 2)
    with pytest.raises(UnknownNameError) as err:
        reg.get("resnet9")
    msg = str(err.value)
    assert "unknown widget 'resnet9'" in msg
    assert "Did you mean 'resnet8'" in msg
    assert "resnet20" in msg


def test_patterns():
    reg: Registry = Registry("widget")
    reg.add_pattern(r"w_(\d+)", lambda m: int(m[1]) * 2, example="w_{n}", kind="pattern")
    assert reg.get("w_21") == 42
    assert "w_3" in reg
    assert reg.info("w_3") == {"kind": "pattern"}
    with pytest.raises(UnknownNameError, match="w_\\{n\\}"):
        reg.get("v_3")
