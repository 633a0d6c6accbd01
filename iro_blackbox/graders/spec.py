"""Reading grader specs: where a spec comes from, and a validating reader for its keys.

    source = read_spec_source("grader.json")     # -> SpecSource(spec dict, where, base_dir)
    r = SpecReader(spec, "grader 'tone'")
    op = r.choice("operation", ["eq", "ne", "like", "ilike"])
    r.finish()                                   # unknown keys -> ConfigError naming them

Every error is a ConfigError that names the grader and the bad key, e.g.
"grader 'tone': unknown operation 'eqq' in key 'operation' (choose eq, ne, like, ilike)".
`SpecReader.normalized` collects the values read, defaults filled in: the canonical spec.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .template import MessagesTemplate, Template

_MISSING = object()


@dataclass
class SpecSource:
    """A parsed spec and where it came from (for messages and relative file paths)."""

    spec: dict[str, Any]
    where: str  # "grader spec /x/g.json", "grader spec (inline JSON)", "grader type 'sentiment'"
    base_dir: Path  # relative `file` paths inside the spec resolve against this folder


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"{where}: invalid JSON at line {e.lineno} col {e.colno}: {e.msg}"
        ) from None


def _unwrap(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: a grader spec is a JSON object, got {type(obj).__name__}")
    # accept the OpenAI fine-tuning wrapper {"grader": {...}} as it is
    if set(obj) == {"grader"} and isinstance(obj["grader"], dict):
        return obj["grader"]
    return obj


def read_spec_source(spec: str | dict[str, Any] | Path, types: Any) -> SpecSource:
    """Turn what the user gave (a grader type's name, file path, inline JSON text, dict) into a
    spec dict. `types`: the registered grader types (`name in types`, `types.names()`)."""
    if isinstance(spec, dict):
        return SpecSource(_unwrap(spec, "grader spec"), "grader spec", Path.cwd())
    if isinstance(spec, Path):
        return _from_file(spec)
    if not isinstance(spec, str):
        raise ConfigError(
            f"grader spec must be a name, a file path, JSON text or a dict, got {type(spec).__name__}"
        )
    text = spec.strip()
    if not text:
        raise ConfigError("grader spec is empty: give a built-in name, a JSON file or inline JSON")
    if text[0] in "{[":
        where = "grader spec (inline JSON)"
        return SpecSource(_unwrap(_parse_json(text, where), where), where, Path.cwd())
    if text in types:
        return SpecSource({"type": text}, f"grader type '{text}'", Path.cwd())
    p = Path(text).expanduser()
    if p.is_file():
        return _from_file(p)
    if p.suffix.lower() == ".json" or "/" in text or p.exists():
        raise ConfigError(f"grader spec file not found: {p}")
    names = ", ".join(types.names()) or "none"
    close = difflib.get_close_matches(text, types.names(), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ConfigError(
        f"unknown grader '{text}': {hint}give a grader type ({names}), a JSON spec file or "
        "inline JSON"
    )


def _from_file(p: Path) -> SpecSource:
    p = p.expanduser()
    where = f"grader spec {p}"
    if not p.is_file():
        raise ConfigError(f"grader spec file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: cannot read: {e}") from None
    return SpecSource(_unwrap(_parse_json(text, where), where), where, p.resolve().parent)


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class SpecReader:
    """Reads and validates the keys of one grader spec; remembers the keys it read."""

    def __init__(self, spec: dict[str, Any], label: str, prefix: str = ""):
        self.spec = spec
        self.label = label  # "grader 'tone'"
        self.prefix = prefix  # "sampling_params." when reading a nested object
        self.normalized: dict[str, Any] = {}
        self.notes: list[str] = []  # keys accepted but not acted on, and why
        self._read: set[str] = set()

    # errors -----------------------------------------------------------------------------------
    def error(self, key: str, what: str, hint: str = "") -> ConfigError:
        hint = f" ({hint})" if hint else ""
        return ConfigError(f"{self.label}: {what} in key '{self.prefix}{key}'{hint}")

    def _get(self, key: str, default: Any) -> Any:
        self._read.add(key)
        if key in self.spec:
            return self.spec[key]
        if default is _MISSING:
            close = difflib.get_close_matches(key, [k for k in self.spec if isinstance(k, str)], 1)
            hint = f" (found unknown key '{self.prefix}{close[0]}': a typo?)" if close else ""
            raise ConfigError(f"{self.label}: missing required key '{self.prefix}{key}'{hint}")
        return default

    def _keep(self, key: str, value: Any) -> Any:
        self.normalized[key] = value
        return value

    # typed readers ----------------------------------------------------------------------------
    def raw(self, key: str, default: Any = _MISSING, *, keep: bool = True) -> Any:
        v = self._get(key, default)
        return self._keep(key, v) if keep else v

    def text(self, key: str, default: Any = _MISSING, *, allow_empty: bool = False) -> str | None:
        v = self._get(key, default)
        if v is None and default is None:
            return self._keep(key, None)
        if not isinstance(v, str):
            raise self.error(key, f"expected a string, got {_type_name(v)} {v!r}")
        if not allow_empty and not v.strip():
            raise self.error(key, "empty string")
        return self._keep(key, v)

    def number(
        self,
        key: str,
        default: Any = _MISSING,
        *,
        lo: float | None = None,
        hi: float | None = None,
        lo_open: bool = False,
    ) -> float | None:
        v = self._get(key, default)
        if v is None and default is None:
            return self._keep(key, None)
        if not _is_number(v):
            raise self.error(key, f"expected a number, got {_type_name(v)} {v!r}")
        if lo is not None and (v < lo or (lo_open and v == lo)):
            raise self.error(key, f"value {v!r} must be {'>' if lo_open else '>='} {lo}")
        if hi is not None and v > hi:
            raise self.error(key, f"value {v!r} must be <= {hi}")
        return self._keep(key, float(v))

    def integer(self, key: str, default: Any = _MISSING, *, lo: int | None = None) -> int | None:
        v = self._get(key, default)
        if v is None and default is None:
            return self._keep(key, None)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(key, f"expected an integer, got {_type_name(v)} {v!r}")
        if lo is not None and v < lo:
            raise self.error(key, f"value {v!r} must be >= {lo}")
        return self._keep(key, v)

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        v = self._get(key, default)
        if not isinstance(v, bool):
            raise self.error(key, f"expected true or false, got {_type_name(v)} {v!r}")
        return self._keep(key, v)

    def choice(
        self, key: str, choices: Iterable[str], default: Any = _MISSING, *, what: str = "value"
    ) -> str:
        choices = list(choices)
        v = self._get(key, default)
        if not isinstance(v, str) or v not in choices:
            shown = repr(v) if not isinstance(v, str) else f"'{v}'"
            raise self.error(key, f"unknown {what} {shown}", f"choose {', '.join(choices)}")
        return self._keep(key, v)

    def mapping(self, key: str, default: Any = _MISSING) -> dict[str, Any]:
        v = self._get(key, default)
        if not isinstance(v, dict):
            raise self.error(key, f"expected an object, got {_type_name(v)} {v!r}")
        return self._keep(key, dict(v))

    def number_range(self, key: str, default: Any = _MISSING) -> tuple[float, float]:
        v = self._get(key, default)
        if (
            not isinstance(v, (list, tuple))
            or len(v) != 2
            or not all(_is_number(x) for x in v)
            or not v[0] < v[1]
        ):
            raise self.error(key, f"expected [low, high] with low < high, got {v!r}")
        lo, hi = float(v[0]), float(v[1])
        self._keep(key, [lo, hi])
        return lo, hi

    def template(self, key: str, default: Any = _MISSING) -> Template:
        v = self.text(key, default, allow_empty=True)
        return Template.parse(v, self.label, key)

    def messages(self, key: str, default: Any = _MISSING) -> MessagesTemplate:
        """A prompt: a template string (one user turn) or a list of {role, content} messages."""
        v = self._get(key, default)
        self._keep(key, v)
        return MessagesTemplate.parse(v, self.label, key)

    def check(self, key: str, ok: bool, what: str, hint: str = "") -> None:
        if not ok:
            raise self.error(key, what, hint)

    def finish(self, ignored: dict[str, str] | Iterable[str] = ()) -> dict[str, Any]:
        """Raise on keys nobody read (typos); returns the normalized spec. `ignored`: keys that are
        accepted but not acted on, each with why (given ones become `notes`, never silent)."""
        why = (
            dict(ignored)
            if isinstance(ignored, dict)
            else {k: "accepted, not used" for k in ignored}
        )
        for key, reason in why.items():
            if key in self.spec:
                self.notes.append(f"{self.prefix}{key}: {reason}")
        allowed = self._read | set(why)
        for key in self.spec:
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f"did you mean '{self.prefix}{close[0]}'? " if close else ""
                raise ConfigError(
                    f"{self.label}: unknown key '{self.prefix}{key}' ({hint}allowed keys: "
                    f"{', '.join(sorted(allowed))})"
                )
        for key in ignored:
            if key in self.spec and key not in self.normalized:
                self.normalized[key] = self.spec[key]
        return self.normalized


def check_callable(factory: Any, what: str) -> Callable[..., Any]:
    if not callable(factory):
        raise ConfigError(f"{what} must be callable, got {type(factory).__name__}")
    return factory
