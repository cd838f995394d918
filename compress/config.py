"""YAML → typed dataclasses, with precedence CLI > file > code defaults and helpful errors.

Settings are plain dataclasses declared next to the code that uses them. This module turns a
mapping (from YAML, plus flag overrides) into such a dataclass, checking every key and type:

* an unknown key is an error that names the closest valid key;
* ``None`` means "not given", so an unset CLI flag never overrides the file or the default;
* the resolved config is written as ``config.yaml`` beside every output, with a short hash
  (of the fields that change results: paths and devices are left out) that later stages and
  ``compress run`` use to tell whether anything changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from compress.errors import ConfigError
from compress.registry import suggest

T = TypeVar("T")

#: Names users reach for, mapped to the key that means it here (a better suggestion than the
#: nearest spelling: ``optim.learning_rate`` is ``optim.lr``, not ``optim.name``).
SYNONYMS = {
    "learning_rate": "lr",
    "learningrate": "lr",
    "num_epochs": "epochs",
    "n_epochs": "epochs",
    "epoch": "epochs",
    "bs": "batch_size",
    "batchsize": "batch_size",
    "wd": "weight_decay",
    "arch": "model",
    "dataset": "name",
}

#: Field metadata flag: leave this field out of the config hash (paths, devices, verbosity).
NO_HASH = {"hash": False}


#: Largest config file read (bytes) and largest number of YAML nodes after expanding aliases.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_NODES = 100_000


def _expanded_size(node: yaml.Node, budget: int) -> int:
    """Nodes in `node` with every alias expanded, counted without expanding (memoised by id)."""
    sizes: dict[int, int] = {}

    def size(n: yaml.Node) -> int:
        if id(n) in sizes:
            return sizes[id(n)]
        sizes[id(n)] = budget + 1  # a node reached again while being sized: a cycle
        if isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(c) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in n.value)
        else:
            total = 1
        sizes[id(n)] = min(total, budget + 1)
        return sizes[id(n)]

    return size(node)


def safe_load_yaml(text: str, *, where: str) -> Any:
    """`yaml.safe_load` that refuses documents whose aliases expand past `MAX_CONFIG_NODES`.

    A few hundred bytes of nested anchors and aliases ("billion laughs") would otherwise expand
    into gigabytes as soon as anything walks the data.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, MAX_CONFIG_NODES) > MAX_CONFIG_NODES:
            raise ConfigError(
                f"{where} expands to more than {MAX_CONFIG_NODES:,} values through YAML aliases; "
                "write the values out instead of nesting anchors"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        reason = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"{where} is not valid YAML{line}: {reason}") from None
    except RecursionError:
        raise ConfigError(f"{where} is nested too deeply to be a config") from None
    finally:
        loader.dispose()


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from `path`; raise `ConfigError` if missing, not text or not a mapping."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file '{p}' does not exist; pass the path of a YAML file")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config file '{p}' cannot be read: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file '{p}' is {len(raw):,} bytes; a config is at most {MAX_CONFIG_BYTES:,}"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file '{p}' is not a UTF-8 text file; pass a YAML file") from None
    data = safe_load_yaml(text, where=f"config file '{p}'") or {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file '{p}' must hold a mapping of keys, not {type(data).__name__}"
        )
    return data


class _Null:
    """An explicit ``null`` from ``--set key=null``: unlike ``None`` ("not given") it is applied."""

    def __repr__(self) -> str:
        return "NULL"


#: The value `parse_assignments` gives for ``--set key=null`` (or ``key=~``, ``key=``).
NULL = _Null()


def parse_assignments(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Parse ``--set key.sub=value`` items; values are read as YAML scalars.

    ``--set key=null`` (or ``key=``) sets the key to null, overriding the file: its value is
    `NULL`, which `merge` applies where a plain ``None`` ("flag not given") is skipped.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE (e.g. optim.lr=0.1), got '{item}'")
        try:
            value = safe_load_yaml(raw, where=f"--set {key.strip()}") if raw.strip() else None
        except ConfigError:
            value = raw
        out[key.strip()] = NULL if value is None else value
    return out


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return `base` with dotted-key `overrides` applied.

    ``None`` values are skipped (an unset flag); `NULL` sets the key to ``None``.
    """
    out = _deepcopy_mapping(base)
    for dotted, value in overrides.items():
        if value is None:
            continue
        if value is NULL:
            value = None
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {} if child is None else child
                if not isinstance(child, dict):
                    raise ConfigError(f"cannot set '{dotted}': '{part}' is not a mapping")
                node[part] = child
            node = child
        node[parts[-1]] = value
    return out


def _deepcopy_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deepcopy_mapping(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Nested mappings merged key by key; values of `top` win."""
    out = _deepcopy_mapping(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = _deepcopy_mapping(value) if isinstance(value, Mapping) else value
    return out


def build(
    cls: type[T], data: Mapping[str, Any] | None, *, where: str = "config", prefix: str = ""
) -> T:
    """Build dataclass `cls` from `data`, validating keys and types recursively.

    Args:
        cls: the settings dataclass.
        data: a mapping of field values; missing fields take the dataclass defaults.
        where: where the data came from, for error messages (a file name, "flags").
        prefix: the dotted key of `data` inside a larger config (for nested settings).

    Raises:
        ConfigError: for an unknown key (naming the closest valid one) or a badly typed value.
    """
    return _build(cls, data, where=where, prefix=prefix, base=None)


def _field_default(f: dataclasses.Field) -> Any:
    """The default value of a dataclass field, or ``dataclasses.MISSING``."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _build(
    cls: type[T], data: Mapping[str, Any] | None, *, where: str, prefix: str, base: Any
) -> T:
    """`build`, starting from the instance `base` (the field's own default) when given.

    A partial nested mapping (``data: {data_dir: x}``) thus changes only the keys it names and
    keeps the rest of the *verb's* default (``compress prune``'s ``data.name`` is empty, "the
    model's dataset"), not the nested class's default.
    """
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            valid = sorted(prefix + k for k in fields)
            full = prefix + str(key)
            hint = suggest(full, valid)
            if str(key) in SYNONYMS and SYNONYMS[str(key)] in fields:
                hint = f" Did you mean '{prefix}{SYNONYMS[str(key)]}'?"
            raise ConfigError(
                f"unknown key '{full}' in {where}.{hint} Valid keys: {', '.join(valid)}"
            )
    kwargs = {}
    for name, value in data.items():
        if value is None and not _allows_none(hints[name]):
            continue  # None means "not given": keep the default
        tp = hints[name]
        if dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
            default = getattr(base, name) if base is not None else _field_default(fields[name])
            start = default if isinstance(default, tp) else None
            kwargs[name] = _build(tp, value, where=where, prefix=prefix + name + ".", base=start)
            continue
        kwargs[name] = _coerce(value, tp, prefix + name, where)
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {prefix.rstrip('.') or 'config'} in {where}: {exc}") from None


def _allows_none(tp: Any) -> bool:
    return tp is Any or type(None) in typing.get_args(tp)


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"{key} in {where}: invalid value {value!r}"
        )
    if origin is Literal:
        if value in args:
            return value
        choices = [str(a) for a in args]
        raise ConfigError(
            f"{key} in {where} must be one of {', '.join(choices)}, not {value!r}.{suggest(str(value), choices)}"
        )
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} in {where} must be a mapping, not {value!r}")
        return build(tp, value, where=where, prefix=key + ".")
    if origin in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            value = [value]
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{key}[{i}]", where) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} in {where} must be a mapping, not {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} in {where} must be true or false, not {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key} in {where} must be an integer, not {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads 5e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key} in {where} must be a number, not {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float, Path)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key} in {where} must be a string, not {value!r}")
    return value


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain, YAML/JSON-serialisable data.

    Keys named in the class attribute ``config_order`` come first (so a verb's config file
    starts with ``model`` and ``data`` even when engine fields are inherited).
    """
    data = _plain(dataclasses.asdict(obj))
    first = [k for k in getattr(obj, "config_order", ()) if k in data]
    return {**{k: data[k] for k in first}, **{k: v for k, v in data.items() if k not in first}}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def hashed_dict(obj: Any) -> dict[str, Any]:
    """The dataclass as data, without the fields marked `NO_HASH` (at any depth)."""
    out = {}
    for f in dataclasses.fields(obj):
        if not f.metadata.get("hash", True):
            continue
        value = getattr(obj, f.name)
        out[f.name] = hashed_dict(value) if dataclasses.is_dataclass(value) else _plain(value)
    return out


def config_hash(obj: Any) -> str:
    """A short, stable hash of the result-relevant fields of a settings dataclass or mapping."""
    data = hashed_dict(obj) if dataclasses.is_dataclass(obj) else _plain(obj)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def dump_yaml(data: Mapping[str, Any]) -> str:
    """YAML text for a plain mapping, keys in their given order."""
    return yaml.safe_dump(_plain(dict(data)), sort_keys=False, default_flow_style=None)


def write_config(
    obj: Any, directory: str | Path, *, name: str = "config.yaml", digest: str | None = None
) -> str:
    """Write the resolved config (with its hash in a header comment) into `directory`.

    Args:
        obj: the settings dataclass.
        directory: where ``config.yaml`` goes.
        name: the file name.
        digest: the run's hash when it covers more than the config (a teacher's or a model's
            SHA-256), so that ``config.yaml``, ``summary.json`` and the model file all carry
            the same one; default `config_hash(obj)`.

    Returns:
        The config hash written.
    """
    from compress._version import __version__
    from compress.atomic import atomic_write_text

    digest = digest or config_hash(obj)
    header = f"# resolved config written by compress {__version__}; config hash {digest}\n"
    atomic_write_text(Path(directory) / name, header + dump_yaml(to_dict(obj)))
    return digest
