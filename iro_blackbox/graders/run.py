"""Trying a grader on samples, answered the way OpenAI's /fine_tuning/alpha/graders/run does.

    out = run_grader(grader, ["fuzzy wuzzy was a bear"], [{"reference_answer": "fuzzy wuzzy"}])
    out[0]["reward"], out[0]["sub_rewards"], out[0]["metadata"]["errors"]

Each answer has `reward`, `sub_rewards` (a multi grader's sub-scores), and `metadata` with the
grader's name and type, `errors` (OpenAI's error flags: which kind of failure, with details) and
`execution_time`; plus `passed` where the spec has a pass_threshold, and iro-bb's `error` text.
`pair_samples` reads a data file and a samples file into (sample, item) pairs with file:line
errors.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from ..dataset import Example, load_examples
from ..errors import InputError
from .base import Grade, Grader

ERROR_FLAGS = (
    "formula_parse_error",
    "sample_parse_error",
    "truncated_observation_error",
    "unresponsive_reward_error",
    "invalid_variable_error",
    "other_error",
    "python_grader_server_error",
    "python_grader_runtime_error",
    "model_grader_server_error",
    "model_grader_refusal_error",
    "model_grader_parse_error",
)


def error_flags(grader_type: str, error: str | None) -> dict[str, Any]:
    """OpenAI's metadata.errors for one grade: every flag false, the matching one true."""
    flags: dict[str, Any] = dict.fromkeys(ERROR_FLAGS, False)
    flags.update(
        python_grader_server_error_type=None,
        python_grader_runtime_error_details=None,
        model_grader_server_error_details=None,
    )
    if not error:
        return flags
    e = error.lower()
    if "template in key" in e or "has no field" in e or "is null" in e:
        flags["invalid_variable_error"] = True
    elif "calculate_output" in e:
        flags["formula_parse_error"] = True
    elif grader_type == "python" and ("timed out" in e or "worker crashed" in e):
        flags["python_grader_server_error"] = True
        flags["python_grader_server_error_type"] = "timeout" if "timed out" in e else "crash"
    elif grader_type == "python":
        flags["python_grader_runtime_error"] = True
        flags["python_grader_runtime_error_details"] = error
    elif grader_type == "score_model" and ("request failed" in e or "judge failed" in e):
        flags["model_grader_server_error"] = True
        flags["model_grader_server_error_details"] = error
    elif grader_type == "score_model":
        flags["model_grader_parse_error"] = True
    else:
        flags["other_error"] = True
    return flags


def _type_of(grader: Grader) -> str:
    return str(grader.spec.get("type") or getattr(grader, "type_name", "") or "")


def answer(grader: Grader, grade: Grade, seconds: float) -> dict[str, Any]:
    """One /graders/run-shaped answer for one grade."""
    gtype = _type_of(grader)
    details = dict(grade.details)
    sub: dict[str, Any] = {}
    subs = getattr(grader, "graders", None)
    if isinstance(subs, dict):
        sub = {n: details[n] for n in subs if n in details}
    flags = error_flags(gtype, grade.error)
    sub_errors = details.get("errors") if isinstance(details.get("errors"), dict) else {}
    for n, msg in sub_errors.items():  # a multi grader: flag each sub-grader's kind of failure
        sub_type = _type_of(subs[n]) if isinstance(subs, dict) and n in subs else ""
        for k, v in error_flags(sub_type, msg).items():
            if v and not flags.get(k):
                flags[k] = v
    if sub_errors and any(flags[k] for k in ERROR_FLAGS if k != "other_error"):
        flags["other_error"] = False  # the sub-graders' own kinds say what failed
    out: dict[str, Any] = {
        "reward": grade.score,
        "sub_rewards": sub,
        "metadata": {
            "name": grader.name,
            "type": gtype,
            "errors": flags,
            "execution_time": round(seconds, 4),
            "scores": {
                k: v
                for k, v in details.items()
                if k in ("raw_score",) or (k in sub and isinstance(v, (int, float)))
            },
        },
    }
    if "passed" in details:
        out["passed"] = details["passed"]
    if grade.error:
        out["error"] = grade.error
    if details.get("warning"):
        out["warning"] = details["warning"]
    if details.get("reply"):
        out["metadata"]["reply"] = details["reply"]
    return out


def run_grader(grader: Grader, samples: list[str], items: list[dict[str, Any]]) -> list[dict]:
    """Grade every (sample, item) pair in one batch; one answer each, in order."""

    async def go() -> list[Grade]:
        try:
            return await grader.grade(samples, items)
        finally:
            aclose = getattr(grader, "aclose", None)
            if aclose is not None:
                await aclose()

    t0 = time.perf_counter()
    grades = asyncio.run(go())
    per = (time.perf_counter() - t0) / max(len(samples), 1)
    return [answer(grader, g, per) for g in grades]


def _sample_text(rec: Any, where: str) -> str:
    if isinstance(rec, str):
        return rec
    if isinstance(rec, dict):
        for key in ("output_text", "response", "sample", "model_sample", "completion"):
            if isinstance(rec.get(key), str):
                return rec[key]
    raise InputError(
        f"{where}: a sample line is a JSON string or an object with 'output_text' or 'response' "
        "(what `iro-bb generate` writes)"
    )


def read_samples(path: str | Path) -> list[tuple[str | None, str, int]]:
    """(id or None, sample text, line) per line of a samples JSONL file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    out: list[tuple[str | None, str, int]] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{where}: invalid JSON: {e.msg} (column {e.colno})") from None
            rid = rec.get("id") if isinstance(rec, dict) else None
            out.append((None if rid is None else str(rid), _sample_text(rec, where), lineno))
    if not out:
        raise InputError(f"{path}: no samples (the file is empty)")
    return out


def pair_samples(data: str | Path, samples: str | Path) -> list[tuple[Example, str, int]]:
    """(example, sample, samples line): by id when every sample line has one, else line by line."""
    examples = load_examples(data)
    rows = read_samples(samples)
    if all(rid is not None for rid, _, _ in rows):
        by_id = {e.id: e for e in examples}
        out = []
        for rid, text, line in rows:
            if rid not in by_id:
                raise InputError(f"{samples}:{line}: id {rid!r} is not in {data}")
            out.append((by_id[rid], text, line))
        return out
    if len(rows) != len(examples):
        raise InputError(
            f"{samples}: {len(rows)} samples for {len(examples)} lines of {data} (give each "
            "sample line the item's 'id', or one sample per data line in order)"
        )
    return [(e, text, line) for e, (_, text, line) in zip(examples, rows, strict=True)]
