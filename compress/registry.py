"""The one small registry used for everything a user names (models, datasets, methods, ...)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from compress.errors import UnknownNameError

T = TypeVar("T")


def suggest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return a " Did you mean 'x'?" hint for `name` among `choices`, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


class Registry(Generic[T]):
    """A name → object map filled by a decorator.

    Duplicate names raise; unknown names raise `UnknownNameError` with a suggestion and the list
    of valid names. Besides exact names, a registry may hold *patterns* (a regular expression and
    a factory) for parametric families such as ``wrn_{depth}_{width}``.

    Example:
        >>> MODELS = Registry("model")
        >>> @MODELS.register("resnet8", family="resnet")
        ... def resnet8(num_classes=10): ...
    """

    def __init__(self, kind: str, *, entry_points: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_points
        self._plugins_loaded = False
        self._items: dict[str, T] = {}
        self._info: dict[str, dict[str, Any]] = {}
        self._patterns: list[tuple[re.Pattern[str], Callable[[re.Match[str]], T], str]] = []
        self._pattern_info: list[dict[str, Any]] = []

    def register(self, name: str | None = None, **info: Any) -> Callable[[T], T]:
        """Decorator that registers an object under `name` (default: its ``__name__``)."""

        def deco(obj: T) -> T:
            self.add(name or obj.__name__, obj, **info)  # type: ignore[attr-defined]
            return obj

        return deco

    def add(self, name: str, obj: T, **info: Any) -> None:
        """Register `obj` under `name`; raises `ValueError` if the name is taken."""
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._items[name] = obj
        self._info[name] = dict(info)

    def add_pattern(
        self, regex: str, factory: Callable[[re.Match[str]], T], example: str, **info: Any
    ) -> None:
        """Resolve names matching `regex` (full match) with `factory(match)`."""
        self._patterns.append((re.compile(regex), factory, example))
        self._pattern_info.append(dict(info))

    def get(self, name: str) -> T:
        """Return the object registered as `name`, or raise `UnknownNameError`."""
        if name in self._items:
            return self._items[name]
        for regex, factory, _ in self._patterns:
            match = regex.fullmatch(name)
            if match:
                return factory(match)
        if self.load_plugins():
            return self.get(name)
        raise UnknownNameError(self.unknown_message(name))

    def load_plugins(self) -> bool:
        """Register what the installed distributions offer in the entry-point group (once).

        An entry point names either a factory (registered under the entry point's name) or a
        module that registers its objects when imported.

        Returns:
            Whether this call loaded the group (``False`` when done before or there is none).

        Raises:
            CompressError: a plugin fails to import.
        """
        if self._plugins_loaded or not self.entry_point_group:
            return False
        self._plugins_loaded = True
        import inspect
        from importlib.metadata import entry_points

        from compress.errors import CompressError

        for ep in entry_points(group=self.entry_point_group):
            try:
                obj = ep.load()
            except Exception as exc:
                raise CompressError(
                    f"the {self.kind} plugin '{ep.name}' ({ep.value}) failed to load: {exc}"
                ) from None
            if ep.name not in self._items and callable(obj) and not inspect.ismodule(obj):
                self.add(ep.name, obj, source="plugin")
        return True

    def unknown_message(self, name: str) -> str:
        """The one-line message for an unknown `name`."""
        names = self.names()
        shown = ", ".join(names[:40]) + (f", ... ({len(names)} in all)" if len(names) > 40 else "")
        extra = "".join(f", {ex}" for _, _, ex in self._patterns)
        return f"unknown {self.kind} '{name}'.{suggest(name, names)} Valid: {shown}{extra}"

    def info(self, name: str) -> dict[str, Any]:
        """Metadata given at registration (for a pattern-resolved name, the pattern's)."""
        if name in self._info:
            return dict(self._info[name])
        for (regex, _, _), info in zip(self._patterns, self._pattern_info):
            if regex.fullmatch(name):
                return dict(info)
        if self.load_plugins():
            return self.info(name)
        raise UnknownNameError(self.unknown_message(name))

    def names(self) -> list[str]:
        """All registered names, in registration order."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name in self._items or any(r.fullmatch(name) for r, _, _ in self._patterns):
            return True
        return self.load_plugins() and name in self

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
