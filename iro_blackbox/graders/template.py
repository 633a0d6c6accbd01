"""A tiny safe template renderer for grader specs (OpenAI grader syntax).

    t = Template.parse("Answer: {{ item.answer }} / {{ sample.output_text }}", label, key)
    t.render(item={"answer": "4"}, sample=sample_view("four"))

`{{ item.a.b }}` walks dicts (and lists by integer index, `item.a.0` or `item.a[0]` as OpenAI
writes it: `{{ sample.output_tools[0].function.name }}`); `{{ sample.output_text }}` is the
response, `{{ sample.output_json.x }}` its JSON when it parses. Nothing is evaluated: an expression
is a dotted path, checked when the spec loads. Strings render as they are, anything else as JSON.
A field missing at render time raises TemplateError (recorded on that sample's grade).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..content import ContentError, text_of_parts
from ..errors import ConfigError, GraderError

_EXPR = re.compile(r"\{\{(.*?)\}\}", re.S)
_SEGMENT = re.compile(r"^[A-Za-z0-9_\-]+$")
SAMPLE_FIELDS = ("output_text", "output_json", "output_tools")
ROLES = ("system", "developer", "user", "assistant")


class TemplateError(GraderError):
    """A template could not be rendered for one sample (missing field)."""


def sample_view(text: str) -> dict[str, Any]:
    """What graders see as `sample`: OpenAI's shape (output_text, output_json, output_tools)."""
    parsed = None
    s = text.strip()
    if s[:1] in ("{", "["):
        try:
            parsed = json.loads(s)
        except ValueError:
            parsed = None
    return {"output_text": text, "output_json": parsed, "output_tools": []}


def _to_text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


@dataclass(frozen=True)
class _Field:
    source: str  # the whole "{{ ... }}" text
    root: str  # "item" or "sample"
    path: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return ".".join((self.root, *self.path))


def _lookup(value: Any, path: tuple[str, ...], root: str) -> Any:
    walked = [root]
    for seg in path:
        if isinstance(value, dict) and seg in value:
            value = value[seg]
        elif isinstance(value, list) and seg.isdigit() and int(seg) < len(value):
            value = value[int(seg)]
        else:
            what = ".".join(walked)
            if value is None and walked[-1] == "output_json":
                raise TemplateError(f"{what} is null (the response is not JSON), so no '{seg}'")
            raise TemplateError(f"{what} has no field '{seg}'")
        walked.append(seg)
    return value


class Template:
    """A parsed template: literal text parts interleaved with fields."""

    def __init__(self, text: str, parts: list[str | _Field], key: str):
        self.text = text
        self.parts = parts
        self.key = key

    @classmethod
    def parse(cls, text: str, label: str, key: str) -> Template:
        parts: list[str | _Field] = []
        pos = 0
        for m in _EXPR.finditer(text):
            if m.start() > pos:
                parts.append(text[pos : m.start()])
            parts.append(_parse_field(m.group(0), m.group(1), label, key))
            pos = m.end()
        rest = text[pos:]
        if "{{" in rest:
            raise ConfigError(f"{label}: unclosed '{{{{' in key '{key}'")
        if rest:
            parts.append(rest)
        return cls(text, parts, key)

    @property
    def fields(self) -> list[_Field]:
        return [p for p in self.parts if isinstance(p, _Field)]

    @property
    def item_paths(self) -> list[tuple[str, ...]]:
        return [f.path for f in self.fields if f.root == "item"]

    def render(self, item: dict[str, Any], sample: dict[str, Any]) -> str:
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
            else:
                root = item if p.root == "item" else sample
                try:
                    out.append(_to_text(_lookup(root, p.path, p.root)))
                except TemplateError as e:
                    raise TemplateError(f"template in key '{self.key}': {e}") from None
        return "".join(out)

    def missing_in(self, item: dict[str, Any]) -> str | None:
        """The first item field this template needs that `item` lacks (None when all present)."""
        for f in self.fields:
            if f.root == "item":
                try:
                    _lookup(item, f.path, "item")
                except TemplateError:
                    return f.dotted
        return None


_INDEX = re.compile(r"\[(\d+)\]")


def _parse_field(source: str, expr: str, label: str, key: str) -> _Field:
    parts = _INDEX.sub(r".\1", expr.strip()).split(".")
    root, path = parts[0], tuple(parts[1:])
    bad = f"{label}: bad template expression '{source}' in key '{key}'"
    if root not in ("item", "sample"):
        raise ConfigError(f"{bad} (use item.<field> or sample.output_text)")
    if not all(_SEGMENT.match(s) for s in path):
        raise ConfigError(f"{bad} (a dotted path of field names, nothing else)")
    if root == "sample" and (not path or path[0] not in SAMPLE_FIELDS):
        raise ConfigError(f"{bad} (sample has {', '.join(SAMPLE_FIELDS)})")
    return _Field(source, root, path)


class MessagesTemplate:
    """A prompt template: chat messages whose contents are templates."""

    def __init__(self, messages: list[tuple[str, Template]]):
        self.messages = messages

    @classmethod
    def parse(cls, value: Any, label: str, key: str) -> MessagesTemplate:
        if isinstance(value, str):
            if not value.strip():
                raise ConfigError(f"{label}: empty prompt in key '{key}'")
            return cls([("user", Template.parse(value, label, key))])
        if not isinstance(value, list) or not value:
            raise ConfigError(
                f"{label}: expected a prompt string or a list of {{role, content}} messages "
                f"in key '{key}', got {value!r}"
            )
        out = []
        for i, m in enumerate(value):
            where = f"{key}[{i}]"
            if not isinstance(m, dict):
                raise ConfigError(f"{label}: expected a message object in key '{where}'")
            extra = set(m) - {"role", "content", "type"}
            if extra:
                raise ConfigError(
                    f"{label}: unknown key '{sorted(extra)[0]}' in key '{where}' "
                    "(a message has role and content)"
                )
            role = m.get("role")
            if role not in ROLES:
                raise ConfigError(
                    f"{label}: unknown role {role!r} in key '{where}.role' "
                    f"(choose {', '.join(ROLES)})"
                )
            try:
                content = text_of_parts(m.get("content"))
            except ContentError as e:
                raise ConfigError(f"{label}: key '{where}.content'{e}") from None
            out.append((role, Template.parse(content, label, f"{where}.content")))
        return cls(out)

    @property
    def templates(self) -> list[Template]:
        return [t for _, t in self.messages]

    def render(self, item: dict[str, Any], sample: dict[str, Any]) -> list[dict[str, str]]:
        return [{"role": r, "content": t.render(item, sample)} for r, t in self.messages]
