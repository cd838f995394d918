"""A new export format is one class: it registers, exports, validates and is refused options.

The format here lives only in this test (ONNX at opset 13 under its own file name); nothing in
the package names it, yet `compress export --format` runs it end to end through the same
staging, validation and ``export.json`` as every format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from compress.cli import cli
from compress.exporters.base import EXPORTERS, CommonExportSettings, ExportContext, Exporter


class Opset13Exporter(Exporter):
    """fp32 ONNX pinned at opset 13 (what an older runtime reads)."""

    name = "onnx-opset13"
    precisions = ("fp32",)
    settings_cls = CommonExportSettings

    def output_name(self) -> str:
        return "model.opset13.onnx"

    def _export_impl(self, model: Any, ctx: ExportContext, path: Path) -> dict[str, Any]:
        from compress.exporters.onnx import export_onnx, provenance

        meta = provenance(ctx, fmt=self.name, precision="fp32")
        export_onnx(model, path, ctx.header.input_shape, opset=13, metadata={"compress": meta})
        return {"opset": 13}


@pytest.fixture
def registered():
    EXPORTERS.add(Opset13Exporter.name, Opset13Exporter, summary="test only")
    try:
        yield
    finally:
        EXPORTERS._items.pop(Opset13Exporter.name)
        EXPORTERS._info.pop(Opset13Exporter.name)


def test_a_format_class_is_all_a_new_format_needs(registered, digits_model, tmp_path):
    import onnx

    out = tmp_path / "e"
    result = CliRunner().invoke(
        cli, ["export", str(digits_model), "--format", "onnx-opset13", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    entry = json.loads((out / "export.json").read_text())["formats"]["onnx-opset13"]
    assert entry["status"] == "ok" and entry["validation"]["passed"]
    assert onnx.load(str(out / "model.opset13.onnx")).opset_import[0].version == 13
    refused = CliRunner().invoke(
        cli, ["export", str(digits_model), "--format", "onnx-opset13", "--auto-precision",
              "-o", str(tmp_path / "f")],
    )  # fmt: skip
    assert refused.exit_code == 2 and "--auto-precision applies to onnx-int8" in refused.output
