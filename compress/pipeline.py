"""``compress run CONFIG``: the stages of one YAML file, skipping those already done.

A pipeline file looks like::

    output: runs/quickstart          # default for --output
    defaults:                        # merged into every stage (the stage's own keys win)
      data: {name: digits}
      seed: 0
    stages:
      - name: teacher                # also the stage's directory under output/
        type: train                  # a registered stage type
        model: resnet20
        epochs: 15

A field that takes a model file (e.g. ``teacher``) may name an earlier stage instead; it then
means that stage's output model. Each stage directory gets a ``stage.json`` recording the hash
of the stage's resolved config and of its input files. On a re-run, a finished stage whose
hash is unchanged is skipped; an interrupted one with the same hash is resumed; a stage whose
config or inputs changed runs again, and its previous finished outputs are kept as
``<name>.prev/`` until the new ones are complete (an interrupted re-run never touches them, and
a stage whose config returns to that of ``<name>.prev/`` gets it back instead of re-running).
Stage names are plain folder names; compress writes only inside the folders it made
(docs/reliability.md).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress.artifacts import atomic_write_json, file_sha256
from compress.config import NULL, build, config_hash, deep_merge, hashed_dict, load_yaml, merge
from compress.errors import CompressError, ConfigError
from compress.outputs import (
    DirectoryLock,
    is_owned,
    make_owned_dir,
    move_aside,
    remove_owned,
    safe_name,
)
from compress.registry import Registry, suggest

STAGE_FILE = "stage.json"
TOP_KEYS = ("output", "defaults", "stages")


@dataclass
class StageType:
    """How to run one kind of stage.

    Attributes:
        config_cls: the settings dataclass of the stage (the verb's config).
        run: ``run(config, log) -> summary``; the config's ``output`` is the stage directory.
        model_fields: fields that hold a model file path and may name an earlier stage.
        output_file: the file (relative to the stage directory) later stages refer to.
        resumable: whether an interrupted run continues (``config.resume = True``).
        row: ``row(summary) -> dict`` of columns for the final table.
    """

    config_cls: type
    run: Callable[..., dict[str, Any]]
    model_fields: tuple[str, ...] = ()
    output_file: str = "model.safetensors"
    resumable: bool = False
    row: Callable[[dict[str, Any]], dict[str, Any]] | None = None


#: stage type name → StageType
STAGES: Registry = Registry("stage type")


@dataclass
class StageResult:
    """What happened to one stage."""

    name: str
    type: str
    status: str  # "ran", "resumed", "skipped", "restored"
    seconds: float
    output: Path
    summary: dict[str, Any]


def _register_builtin_stages() -> None:
    """One stage type per verb of the verb table that is a stage (`compress.verbs`)."""
    if "train" in STAGES:
        return
    from compress.verbs import stage_verbs

    for verb in stage_verbs():
        STAGES.add(
            verb.name,
            StageType(
                verb.config_cls(),
                _stage_run(verb),
                verb.model_fields,
                verb.output_file,
                resumable=verb.resumable,
                row=verb.row,
            ),
        )


def _stage_run(verb: Any) -> Callable[..., dict[str, Any]]:
    def run(config: Any, log: Callable[[str], None]) -> dict[str, Any]:
        result = verb(config, log=log)
        if verb.name == "benchmark":  # the final table shows the benchmark's own table
            return {"table": result["table"], "gate": result["gate"], "output": result["output"]}
        return result

    return run


def load_pipeline(path: str | Path) -> dict[str, Any]:
    """Read and check the top level of a pipeline file."""
    spec = load_yaml(path)
    for key in spec:
        if key not in TOP_KEYS:
            raise ConfigError(
                f"unknown key '{key}' in {path}.{suggest(key, TOP_KEYS)} A pipeline file has: "
                f"{', '.join(TOP_KEYS)}"
            )
    stages = spec.get("stages")
    if not isinstance(stages, list) or not stages:
        raise ConfigError(
            f"{path} has no 'stages' list; see configs/quickstart.yaml for the layout"
        )
    if not isinstance(spec.get("defaults", {}) or {}, dict):
        raise ConfigError(f"'defaults' in {path} must be a mapping")
    return spec


def apply_assignments(
    spec: dict[str, Any], assignments: dict[str, Any], *, where: str
) -> dict[str, Any]:
    """Apply ``--set`` keys to a pipeline: ``STAGE.key=…``, ``defaults.key=…`` or ``output=…``.

    Raises:
        ConfigError: a key names no stage (with a suggestion) or only a stage.
    """
    spec = dict(spec)
    spec["stages"] = [dict(s) if isinstance(s, dict) else s for s in spec["stages"]]
    by_name = {s.get("name"): s for s in spec["stages"] if isinstance(s, dict)}
    for dotted, value in assignments.items():
        head, _, rest = dotted.partition(".")
        if head == "output" and not rest:
            spec["output"] = None if value is NULL else value
        elif head == "defaults" and rest:
            spec["defaults"] = merge(spec.get("defaults") or {}, {rest: value})
        elif head in by_name and rest:
            if rest in ("name", "type"):
                raise ConfigError(f"--set {dotted}: a stage's name and type cannot be changed")
            stage = by_name[head]
            merged = merge(stage, {rest: value})
            stage.clear()
            stage.update(merged)
        else:
            names = [str(n) for n in by_name]
            raise ConfigError(
                f"--set {dotted}: '{head}' is not a stage of {where}.{suggest(head, names)} Use "
                f"STAGE.KEY=VALUE (stages: {', '.join(names)}), defaults.KEY=VALUE or output=DIR"
            )
    return spec


@dataclass
class PlannedStage:
    """A stage with its resolved config, before it runs."""

    name: str
    type: str
    stage_type: StageType
    config: Any
    directory: Path


def plan_pipeline(
    path: str | Path,
    *,
    output: str | Path | None = None,
    device: str | None = None,
    assignments: dict[str, Any] | None = None,
) -> tuple[Path, list[PlannedStage]]:
    """Resolve every stage of the pipeline file `path` without running anything.

    References to earlier stages are replaced by the path of their output model. Raises
    `ConfigError`/`UnknownNameError` for any problem in any stage, so a typo in the last stage
    is reported before the first one trains.

    Args:
        path: the pipeline YAML file.
        output: the pipeline directory (overrides the file's).
        device: a device for every stage.
        assignments: ``--set`` overrides (`apply_assignments`).

    Returns:
        The pipeline directory and the planned stages, in order.
    """
    _register_builtin_stages()
    spec = load_pipeline(path)
    if assignments:
        spec = apply_assignments(spec, assignments, where=str(path))
    root = Path(output or spec.get("output") or Path("runs") / "run" / Path(path).stem)
    defaults = spec.get("defaults") or {}
    planned: list[PlannedStage] = []
    by_name: dict[str, PlannedStage] = {}
    names = [raw.get("name") if isinstance(raw, dict) else None for raw in spec["stages"]]
    for index, raw in enumerate(spec["stages"]):
        if not isinstance(raw, dict):
            raise ConfigError(
                f"stage {index + 1} in {path} must be a mapping with 'name' and 'type'"
            )
        raw = dict(raw)
        name = raw.pop("name", None)
        kind = raw.pop("type", None)
        if not name or not kind:
            raise ConfigError(f"stage {index + 1} in {path} needs both 'name' and 'type'")
        if not isinstance(kind, str):
            raise ConfigError(
                f"stage {index + 1} in {path}: 'type' must be a stage type name, not {kind!r}"
            )
        try:
            safe_name(name, what=f"stage {index + 1} in {path}: name")
        except CompressError as exc:
            raise ConfigError(str(exc)) from None
        if name in by_name:
            raise ConfigError(
                f"stage name '{name}' appears twice in {path}; stage names must be unique"
            )
        stype: StageType = STAGES.get(kind)
        fields = {f.name for f in dataclasses.fields(stype.config_cls)}
        cfg = deep_merge({k: v for k, v in defaults.items() if k in fields}, raw)
        if device and "device" in fields:
            cfg["device"] = device

        def resolve(ref: Any, field_name: str, name: str = name) -> Any:
            if isinstance(ref, str) and ref in by_name:
                earlier = by_name[ref]
                return str(earlier.directory / earlier.stage_type.output_file)
            if isinstance(ref, str) and ref in names:
                when = "itself" if ref == name else "a stage that runs later"
                raise ConfigError(
                    f"{path}: stage '{name}' takes its {field_name} from '{ref}', {when}; a stage "
                    "can only use the outputs of earlier stages"
                )
            if isinstance(ref, str) and not Path(ref).is_file():
                earlier_names = ", ".join(by_name) or "none"
                raise ConfigError(
                    f"{path}: stage '{name}' {field_name} '{ref}' is neither an earlier stage "
                    f"(earlier: {earlier_names}) nor an existing file"
                )
            return ref

        for field_name in stype.model_fields:
            value = cfg.get(field_name)
            cfg[field_name] = (
                [resolve(v, field_name) for v in value]
                if isinstance(value, list)
                else resolve(value, field_name)
            )
        stage_dir = root / name
        cfg["output"] = str(stage_dir)
        config = build(stype.config_cls, cfg, where=f"{path}: stage '{name}'")
        stage = PlannedStage(name, kind, stype, config, stage_dir)
        planned.append(stage)
        by_name[name] = stage
    return root, planned


def run_pipeline(
    path: str | Path,
    *,
    output: str | Path | None = None,
    device: str | None = None,
    assignments: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> list[StageResult]:
    """Run the stages of the pipeline file `path` in order (see the module docstring).

    Args:
        path: the pipeline YAML file.
        output: the pipeline directory (default: the file's ``output``, else
            ``runs/run/<file stem>``).
        device: a device for every stage (overrides the file).
        assignments: ``--set`` overrides, ``STAGE.key`` or ``defaults.key`` (`apply_assignments`).
        log: where progress lines go.

    Returns:
        One `StageResult` per stage.
    """
    root, planned = plan_pipeline(path, output=output, device=device, assignments=assignments)
    make_owned_dir(root, kind="pipeline")
    with DirectoryLock(root):
        return [_run_stage(stage, log) for stage in planned]


def _stage_digest(stage: PlannedStage) -> tuple[str, list[str]]:
    """The stage's hash (type, resolved config, input files' SHA-256) and the inputs not yet made."""
    inputs, missing = {}, []
    for f in stage.stage_type.model_fields:
        value = getattr(stage.config, f, None)
        for i, ref in enumerate(value if isinstance(value, list) else [value]):
            if isinstance(ref, str) and Path(ref).is_file():
                inputs[f"{f}[{i}]"] = file_sha256(ref)
            elif isinstance(ref, str):
                missing.append(ref)
    digest = config_hash(
        {"type": stage.type, "config": hashed_dict(stage.config), "inputs": inputs}
    )
    return digest, missing


def stage_plan(stage: PlannedStage) -> tuple[str, str]:
    """What a run would do with `stage` now, and why: ``(action, reason)``.

    Actions: ``skip``, ``restore`` (from ``<stage>.prev``), ``resume``, ``re-run``, ``run``.
    """
    digest, missing = _stage_digest(stage)
    if missing:
        return (
            "run",
            f"its input {Path(missing[0]).parent.name} is made by an earlier stage of this run",
        )
    marker = _read_marker(stage.directory)
    prev = stage.directory.with_name(stage.directory.name + ".prev")
    prev_marker = _read_marker(prev) if prev.is_dir() and is_owned(prev) else {}
    if marker.get("hash") == digest and marker.get("status") == "done":
        return "skip", "finished, and its config and inputs are unchanged"
    if prev_marker.get("hash") == digest and prev_marker.get("status") == "done":
        return "restore", f"{prev.name} holds finished outputs of this very config"
    if (
        stage.stage_type.resumable
        and marker.get("hash") == digest
        and any(stage.directory.rglob("state.pt"))
    ):
        return "resume", "interrupted with the same config; it continues from its checkpoint"
    if marker.get("status") == "done":
        return "re-run", f"its config or inputs changed; the old outputs go to {prev.name}"
    if stage.directory.exists():
        return "run", "an interrupted run of another config is discarded first"
    return "run", "not run before"


def explain_plan(planned: list[PlannedStage]) -> list[tuple[PlannedStage, str, str]]:
    """`stage_plan` for every stage, in order.

    A stage whose input an earlier stage remakes runs again too, whatever its own record says.
    """
    remade: dict[Path, str] = {}
    out = []
    for stage in planned:
        action, reason = stage_plan(stage)
        if action in ("skip", "restore"):
            for f in stage.stage_type.model_fields:
                value = getattr(stage.config, f, None)
                for ref in value if isinstance(value, list) else [value]:
                    if isinstance(ref, str) and Path(ref).parent in remade:
                        action = "re-run"
                        reason = f"its input from stage '{remade[Path(ref).parent]}' is remade"
        if action not in ("skip", "restore"):
            remade[stage.directory] = stage.name
        out.append((stage, action, reason))
    return out


def _run_stage(stage: PlannedStage, log: Callable[[str], None]) -> StageResult:
    """Skip, restore, resume or (re-)run one stage; previous finished outputs are moved aside."""
    name, kind, stype, config, stage_dir = (
        stage.name,
        stage.type,
        stage.stage_type,
        stage.config,
        stage.directory,
    )
    digest, _ = _stage_digest(stage)
    if stage_dir.exists() and not is_owned(stage_dir):
        raise CompressError(
            f"'{stage_dir}' exists and was not made by compress; move it away or choose another --output"
        )
    marker = _read_marker(stage_dir)
    prev = stage_dir.with_name(stage_dir.name + ".prev")
    prev_marker = _read_marker(prev) if prev.is_dir() and is_owned(prev) else {}
    t0 = time.perf_counter()
    if marker.get("hash") == digest and marker.get("status") == "done":
        log(f"[{name}] unchanged since its last run: skipped")
        return StageResult(name, kind, "skipped", 0.0, stage_dir, marker.get("summary", {}))
    if prev_marker.get("hash") == digest and prev_marker.get("status") == "done":
        if marker.get("status") == "done":
            raise CompressError(
                f"'{stage_dir}' and '{prev}' both hold finished outputs; move one away to choose"
            )
        remove_owned(stage_dir)  # an interrupted run of another config
        prev.rename(stage_dir)
        log(f"[{name}] same config as its previous outputs: restored them from {prev.name}")
        return StageResult(name, kind, "restored", 0.0, stage_dir, prev_marker.get("summary", {}))
    status = "ran"
    if stype.resumable and marker.get("hash") == digest and any(stage_dir.rglob("state.pt")):
        config = dataclasses.replace(config, resume=True)
        status = "resumed"
    elif marker.get("status") == "done":
        moved = move_aside(stage_dir)
        log(f"[{name}] config or inputs changed: previous outputs moved to {moved}")
    elif stage_dir.exists():
        remove_owned(stage_dir)  # compress's own unfinished output; finished ones stay in .prev
        log(f"[{name}] discarded the unfinished outputs of an interrupted run")
    make_owned_dir(stage_dir, kind=f"stage:{kind}")
    _write_marker(stage_dir, {"type": kind, "hash": digest, "status": "running"})
    log(f"[{name}] {kind}")
    summary = stype.run(config, log=log)
    _write_marker(
        stage_dir,
        {
            "type": kind,
            "hash": digest,
            "status": "done",
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "summary": summary,
        },
    )
    return StageResult(name, kind, status, time.perf_counter() - t0, stage_dir, summary)


def _read_marker(stage_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((stage_dir / STAGE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_marker(stage_dir: Path, data: dict[str, Any]) -> None:
    atomic_write_json(stage_dir / STAGE_FILE, data)


def results_table(results: list[StageResult]) -> str:
    """A Markdown table of the stages: status, time, the stage's own columns, output."""
    rows = []
    extra_cols: list[str] = []
    for r in results:
        stype: StageType = STAGES.get(r.type)
        cols = stype.row(r.summary) if stype.row else {}
        for key in cols:
            if key not in extra_cols:
                extra_cols.append(key)
        rows.append((r, cols))
    header = ["stage", "type", "status", "time (s)", *extra_cols, "output"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r, cols in rows:
        cells = [r.name, r.type, r.status, f"{r.seconds:.1f}"]
        cells += [_fmt(key, cols.get(key)) for key in extra_cols]
        cells.append(str(r.output))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if key.startswith("top-1") and isinstance(value, float):
        return f"{100 * value:.2f}%"
    if key == "params" and isinstance(value, int):
        return f"{value / 1e6:.3f} M"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
