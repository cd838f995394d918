"""``compress info``."""

from __future__ import annotations

import json

import click

from compress.cli.common import echo


@click.command("info")
@click.argument("model", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON.")
def info(model: str, as_json: bool) -> None:
    """Architecture, size, parameters, MACs, accuracy and provenance of a model file."""
    from compress.evaluate import model_file_info

    facts = model_file_info(model)
    if as_json:
        echo(json.dumps(facts, indent=2))
        return
    arch = facts["arch"] or {}
    prov = facts["provenance"] or {}
    metrics = facts["metrics"] or {}
    rows = [
        (
            "file",
            f"{facts['file']} ({facts['size_bytes'] / 1e6:.2f} MB, sha256 {facts['sha256'][:12]})",
        ),
        ("architecture", f"{arch.get('name')} {json.dumps(arch.get('kwargs', {}))}"),
        ("input", "×".join(map(str, facts["input_shape"])) + f", {facts['num_classes']} classes"),
        ("dataset", str(facts["dataset"])),
        ("normalisation", _normalisation(facts)),
        ("parameters", f"{facts['params']:,}"),
        ("MACs", "–" if facts["macs"] is None else f"{facts['macs'] / 1e6:.2f} M"),
        ("pruned", "yes" if facts["pruned"] else "no"),
        ("quantized", _quantization(facts.get("quantization"))),
    ]
    names = facts.get("class_names")
    if names:
        rows.append(("classes", ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")))
    if "top1" in metrics:
        rows.append(("top-1", f"{100 * metrics['top1']:.2f}% (epoch {metrics.get('epoch', '?')})"))
    rows.append(("created", f"{prov.get('created')} by compress {prov.get('toolkit_version')}"))
    for key in ("parent", "teacher", "source"):
        if prov.get(key):
            rows.append(
                (key, f"{prov[key].get('path')} (sha256 {prov[key].get('sha256', '')[:12]})")
            )
    if prov.get("config_hash"):
        rows.append(("config hash", prov["config_hash"]))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        echo(f"{key:<{width}}  {value}")


def _normalisation(facts: dict) -> str:
    if facts.get("mean") is None:
        return "none recorded (the dataset's own is used)"
    mean = ", ".join(f"{v:.4f}" for v in facts["mean"])
    std = ", ".join(f"{v:.4f}" for v in facts["std"])
    return f"mean {mean}; std {std}"


def _quantization(record: dict | None) -> str:
    if not record:
        return "no"
    return (
        f"yes: {record.get('scheme')}, {len(record.get('layers', []))} layers "
        f"(weights {record.get('weights')}), {record.get('activations')} activation quantizers, "
        f"{record.get('residual_adds')} residual adds"
    )
