"""JSONL dataset loader: one example per line, streamed, with file:line errors.

A line is `{"prompt": "..."}` or `{"messages": [{"role": ..., "content": ...}, ...]}` (a content
is a string or a list of text parts, as OpenAI's fine-tuning files write it), an optional `id`
(string or integer, unique), and any other fields of any JSON type, which graders can reference
as `{{ item.field }}` (an OpenAI RFT file is read as it is).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .content import ContentError, text_of_parts
from .errors import InputError
from .utils import derive_seed

ROLES = {"system", "developer", "user", "assistant"}


@dataclass
class Example:
    id: str
    prompt: str | list[dict[str, str]]  # text, or chat messages ending with a user turn
    data: dict[str, Any] = field(default_factory=dict)  # the whole record (for graders)
    line: int = 0

    @property
    def is_chat(self) -> bool:
        return isinstance(self.prompt, list)

    @property
    def text(self) -> str:
        """The prompt as plain text (what the value model reads before the response)."""
        return prompt_text(self.prompt)


def prompt_text(prompt: str | list[dict[str, str]]) -> str:
    """Plain-text view of a prompt: the text itself, or the chat turns one per line."""
    if isinstance(prompt, str):
        return prompt
    if len(prompt) == 1 and prompt[0]["role"] == "user":
        return prompt[0]["content"]
    return "\n".join(f"{m['role']}: {m['content']}" for m in prompt)


def _parse_record(rec: Any, where: str, lineno: int) -> Example:
    if not isinstance(rec, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    has_p, has_m = "prompt" in rec, "messages" in rec
    if has_p and has_m:
        raise InputError(f"{where}: give either 'prompt' or 'messages', not both")
    if not has_p and not has_m:
        raise InputError(f"{where}: missing 'prompt' (text) or 'messages' (chat)")
    prompt: str | list[dict[str, str]]
    if has_p:
        p = rec["prompt"]
        if not isinstance(p, str):
            raise InputError(f"{where}: 'prompt' must be a string, got {type(p).__name__}")
        if not p.strip():
            raise InputError(f"{where}: 'prompt' is empty")
        prompt = p
    else:
        msgs = rec["messages"]
        if not isinstance(msgs, list):
            raise InputError(f"{where}: 'messages' must be a list, got {type(msgs).__name__}")
        if not msgs:
            raise InputError(f"{where}: 'messages' is empty")
        prompt = []
        for i, m in enumerate(msgs):
            if not isinstance(m, dict):
                raise InputError(f"{where}: messages[{i}] must be an object")
            role, content = m.get("role"), m.get("content")
            if role not in ROLES:
                raise InputError(
                    f"{where}: messages[{i}].role must be one of {', '.join(sorted(ROLES))}, "
                    f"got {role!r}"
                )
            try:
                content = text_of_parts(content)
            except ContentError as e:
                raise InputError(f"{where}: messages[{i}].content{e}") from None
            if not content.strip() and role == "user":
                raise InputError(f"{where}: messages[{i}].content is empty")
            prompt.append({"role": role, "content": content})
        if prompt[-1]["role"] != "user":
            raise InputError(
                f"{where}: the last message must be from the user, got {prompt[-1]['role']!r}"
            )
    ex_id = rec.get("id", None)
    if ex_id is None:
        ex_id = f"line-{lineno}"
    elif isinstance(ex_id, bool) or not isinstance(ex_id, (str, int)):
        raise InputError(
            f"{where}: 'id' must be a string or an integer, got {type(ex_id).__name__}"
        )
    elif isinstance(ex_id, str) and not ex_id.strip():
        raise InputError(f"{where}: 'id' is empty")
    return Example(id=str(ex_id), prompt=prompt, data=rec, line=lineno)


def iter_examples(path: str | Path, errors: list[str] | None = None) -> Iterator[Example]:
    """Stream examples from a JSONL file.

    Raises InputError (`file:line: what is wrong`) at the first bad line, or, when `errors` is a
    list, appends each message there and goes on.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a JSONL file")
    seen: dict[str, int] = {}
    count = 0

    def fail(msg: str) -> None:
        if errors is None:
            raise InputError(msg)
        errors.append(msg)

    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                fail(f"{where}: not valid UTF-8 (byte {e.start})")
                continue
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                fail(f"{where}: invalid JSON: {e.msg} (column {e.colno})")
                continue
            try:
                ex = _parse_record(rec, where, lineno)
            except InputError as e:
                fail(str(e))
                continue
            if ex.id in seen:
                fail(f"{where}: duplicate id {ex.id!r} (first on line {seen[ex.id]})")
                continue
            seen[ex.id] = lineno
            count += 1
            yield ex
    if count == 0 and not (errors):
        fail(f"{path}: no examples (the file is empty)")


def load_examples(path: str | Path) -> list[Example]:
    """All examples of a JSONL file (raises InputError on the first bad line)."""
    return list(iter_examples(path))


def hold_out(
    examples: list[Example], fraction: float, seed: int, where: str = "data"
) -> tuple[list[Example], list[Example]]:
    """(kept, held out): a seeded random `fraction` of the examples held out (at least one, and
    at least one kept), each side in file order."""
    order = list(range(len(examples)))
    random.Random(derive_seed(seed, "eval-split")).shuffle(order)
    n_held = max(1, round(len(examples) * fraction))
    if len(examples) - n_held < 1:
        raise InputError(f"{where}: too few examples ({len(examples)}) to hold out an eval split")
    held = set(order[:n_held])
    return (
        [e for i, e in enumerate(examples) if i not in held],
        [e for i, e in enumerate(examples) if i in held],
    )


def check_disjoint(a: list[Example], b: list[Example], a_where: str, b_where: str) -> None:
    """InputError when two example sets share ids (held-out prompts must be distinct). Lines of
    `b` without an id of their own that clash with `a` are renamed "held-out-line-N" instead."""
    ids = {e.id for e in a}
    for e in b:
        if e.id in ids and "id" not in e.data:
            e.id = f"held-out-{e.id}"
    clash = ids & {e.id for e in b}
    if clash:
        raise InputError(
            f"{b_where}: ids also in {a_where}: {', '.join(sorted(clash)[:5])} "
            "(held-out prompts must be distinct)"
        )


def train_and_heldout(
    data: str, eval_data: str | None, eval_split: float, seed: int, limit: int | None = None
) -> tuple[list[Example], list[Example]]:
    """A run's training and held-out examples: `eval_data`'s (distinct from `data`'s), or a
    seeded `eval_split` of `data` held out; the first `limit` training examples only, if given."""
    train = load_examples(data)
    if eval_data:
        evals = load_examples(eval_data)
        check_disjoint(train, evals, data, eval_data)
    else:
        train, evals = hold_out(train, eval_split, seed, where=data)
    if limit:
        train = train[:limit]
    return train, evals


@dataclass
class DatasetSummary:
    path: str
    count: int
    errors: list[str]
    fields: dict[str, int]  # field name -> number of examples having it
    chat: int
    text: int
    token_percentiles: dict[str, float] | None  # p0, p50, p90, p99, p100 (model tokens)


def _percentiles(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    s = sorted(values)

    def pct(q: float) -> float:
        k = (len(s) - 1) * q
        lo, hi = int(k), min(int(k) + 1, len(s) - 1)
        return float(s[lo] + (s[hi] - s[lo]) * (k - lo))

    return {
        "min": float(s[0]),
        "p50": pct(0.5),
        "p90": pct(0.9),
        "p99": pct(0.99),
        "max": float(s[-1]),
    }


def check_dataset(path: str | Path, tokenizer: Any = None, max_errors: int = 50) -> DatasetSummary:
    """Validate every line; count fields; prompt lengths in the tokenizer's tokens if given."""
    errors: list[str] = []
    fields: dict[str, int] = {}
    lengths: list[int] = []
    chat = text = 0
    for ex in iter_examples(path, errors=errors):
        for k in ex.data:
            fields[k] = fields.get(k, 0) + 1
        if ex.is_chat:
            chat += 1
        else:
            text += 1
        if tokenizer is not None:
            lengths.append(count_prompt_tokens(tokenizer, ex.prompt))
        if len(errors) >= max_errors:
            break
    return DatasetSummary(
        path=str(path),
        count=chat + text,
        errors=errors,
        fields=dict(sorted(fields.items())),
        chat=chat,
        text=text,
        token_percentiles=_percentiles(lengths) if tokenizer is not None else None,
    )


def count_prompt_tokens(tokenizer: Any, prompt: str | list[dict[str, str]]) -> int:
    """Length of the prompt as the model sees it (chat template applied where there is one)."""
    if isinstance(prompt, list) and getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return len(ids)
    return len(tokenizer(prompt_text(prompt), add_special_tokens=False)["input_ids"])
