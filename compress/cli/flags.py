"""Command-line flags declared once per verb, as data: spelling, config key, what it does.

Everything else comes from the verb's config dataclass: the click type (``int``, ``float``,
a ``Literal`` as a choice, a ``bool`` as a switch), the default shown in ``--help`` (the
dataclass default, so help never drifts from the code), and the mapping of the given value
onto its dotted config key. An unset flag is ``None``: it never overrides the config file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, Union

import click

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Flag:
    """One flag of a verb.

    Attributes:
        spelling: ``--epochs``, or ``--float-first-last/--all-int8`` for a two-way switch.
        key: the dotted config key it sets (``data.batch_size``).
        help: what it does (the default is appended from the config class).
        short: a one-letter alias (``-o``).
        kind: ``ints`` / ``strs`` (comma-separated lists), ``file`` / ``dir`` (paths), or
            ``None`` (from the field's type).
        multiple: repeatable; the values are a list.
        constant: a switch that sets this value when given (``--no-latency`` → ``False``).
        also: more keys that receive the same value.
        show_default: show the config default in ``--help``.
    """

    spelling: str
    key: str
    help: str = ""
    short: str | None = None
    kind: str | None = None
    multiple: bool = False
    constant: Any = None
    also: tuple[str, ...] = ()
    show_default: bool = True

    @property
    def param(self) -> str:
        """The click parameter name (``--batch-size`` → ``batch_size``)."""
        return self.spelling.split("/")[0].lstrip("-").replace("-", "_")


def field_type(cls: type, key: str) -> Any:
    """The annotation of the dotted `key` in dataclass `cls` (``Any`` when it cannot be read)."""
    tp: Any = cls
    for part in key.split("."):
        if not dataclasses.is_dataclass(tp):
            return Any
        hints = typing.get_type_hints(tp)
        if part not in hints:
            return Any
        tp = _strip_optional(hints[part])
    return tp


def field_default(cls: type, key: str) -> Any:
    """The declared default of the dotted `key` in dataclass `cls` (``None`` if it has none).

    Read from the field declarations, without building the config (building a distill config
    imports the methods, and with them torch; ``compress --help`` must not).
    """
    value: Any = None
    owner: Any = cls
    for part in key.split("."):
        if owner is None or not dataclasses.is_dataclass(owner):
            return None
        fields = {f.name: f for f in dataclasses.fields(owner)}
        if part not in fields:
            return None
        f = fields[part]
        if f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        elif f.default is not dataclasses.MISSING:
            value = f.default
        else:
            return None
        owner = value if dataclasses.is_dataclass(value) else None
    return value


def _strip_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _describe_default(value: Any) -> str | None:
    if value is None or value == [] or value == () or value == "":
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def _click_type(flag: Flag, tp: Any) -> Any:
    if flag.kind in ("ints", "strs"):
        return click.STRING
    if flag.kind == "file":
        return click.Path(dir_okay=False)
    if flag.kind == "dir":
        return click.Path(file_okay=False)
    return {int: click.INT, float: click.FLOAT}.get(tp, click.STRING)


def option(flag: Flag, cls: type) -> Callable[[F], F]:
    """The click option of `flag`, typed and documented from `cls`.

    A ``Literal`` field's values are listed in the help; a wrong value is refused by the config
    builder, in one line with a suggestion (click's own choice errors span three lines).
    """
    tp = field_type(cls, flag.key)
    text = flag.help
    if typing.get_origin(tp) is Literal:  # the config refuses other values, with a suggestion
        choices = [str(a) for a in typing.get_args(tp)]
        if not all(c in text for c in choices):
            text = (
                f"{text} One of: {', '.join(choices)}."
                if text
                else f"One of: {', '.join(choices)}."
            )
    default = _describe_default(field_default(cls, flag.key)) if flag.show_default else None
    if default is not None:
        text = f"{text} [default: {default}]" if text else f"[default: {default}]"
    names = [flag.spelling] + ([flag.short] if flag.short else [])
    if flag.constant is not None or (tp is bool and "/" not in flag.spelling):
        return click.option(*names, flag.param, is_flag=True, default=None, help=text)
    if "/" in flag.spelling:
        return click.option(*names, flag.param, default=None, help=text)
    return click.option(
        *names, flag.param, type=_click_type(flag, tp), multiple=flag.multiple, help=text
    )


def options(flags: tuple[Flag, ...], cls: type) -> Callable[[F], F]:
    """Decorator adding every flag of a verb (in the order given)."""

    def deco(func: F) -> F:
        for flag in reversed(flags):
            func = option(flag, cls)(func)
        return func

    return deco


def _comma(text: str, kind: str, spelling: str) -> list[Any]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if kind == "strs":
        return items
    try:
        return [int(t) for t in items]
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated integers, got '{text}'", param_hint=spelling
        ) from None


def overrides(flags: tuple[Flag, ...], kw: dict[str, Any]) -> dict[str, Any]:
    """The dotted-key overrides of the flags given (popped from `kw`; unset flags are skipped)."""
    out: dict[str, Any] = {}
    for flag in flags:
        value = kw.pop(flag.param, None)
        if flag.multiple:
            value = list(value) or None
        if value is None:
            continue
        if flag.constant is not None:
            if not value:
                continue
            value = flag.constant
        elif flag.kind in ("ints", "strs"):
            value = _comma(value, flag.kind, flag.spelling)
        for key in (flag.key, *flag.also):
            out[key] = value
    return out
