"""Job kinds: how to check a job's arguments at submit time and how to run it in a worker.

Built in: `align` (the IRO loop, `iro_blackbox.align`) and `generate` (decode a prompt file with
an aligned run, `iro_blackbox.iro.generate.generate_file`). Both are resumable, so a job whose
worker died simply runs again and continues where the store and request cache say it stopped.

A kind is a `JobKind` registered in iro_blackbox.registry.JOB_KINDS: the two built-ins are entry
points of the group `iro_blackbox.job_kinds` (ALIGN and GENERATE below), as a third party's are.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dataset import load_examples
from ..errors import InputError
from ..registry import JOB_KINDS
from .context import JobContext, JobLedger

# Options that are secrets: never stored with a job (workers read keys from env / config file).
SECRET_KEYS = frozenset({"api_key", "openai_api_key", "key", "token", "password"})


@dataclass
class JobKind:
    """One kind of job.

    prepare(args, job_id) validates and normalises arguments at submit time (absolute paths,
    a fixed run name so a resumed job continues the same run) and raises InputError naming the
    bad value. It is called twice: before the row exists (job_id None) and after (with its id).
    run(ctx) does the work, calls ctx.cancel_check() at safe points (raising
    iro_blackbox.errors.Cancelled) and ctx.on_progress(...); it returns a JSON-able summary.
    """

    name: str
    run: Callable[[JobContext], dict[str, Any] | None]
    prepare: Callable[[dict[str, Any], int | None], dict[str, Any]] = lambda a, _id: a
    help: str = ""


def prepare_args(kind: str, args: dict[str, Any], job_id: int | None = None) -> dict[str, Any]:
    if not isinstance(args, dict):
        raise InputError(f"job args must be a JSON object, got {type(args).__name__}")
    leaked = sorted(k for k in _walk_keys(args) if k.lower() in SECRET_KEYS)
    if leaked:
        raise InputError(
            f"job args must not hold secrets ({', '.join(leaked)}): workers read API keys from "
            "the environment (--api-key-env, OPENAI_API_KEY) or the config file"
        )
    return JOB_KINDS.get(kind).prepare(dict(args), job_id)


def _walk_keys(obj: Any) -> list[str]:
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append(str(k))
            out.extend(_walk_keys(v))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(_walk_keys(v))
    return out


def _existing_file(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{what} must be a file path, got {value!r}")
    p = Path(value).expanduser()
    if not p.is_file():
        raise InputError(f"{what} {value} does not exist or is not a file")
    return str(p.resolve())


def _out_path(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{what} must be a file path, got {value!r}")
    p = Path(value).expanduser().resolve()
    if p.is_dir():
        raise InputError(f"{what} {value} is a folder; give a file path")
    return str(p)


# -- align --------------------------------------------------------------------------------------
def _prepare_align(args: dict[str, Any], job_id: int | None) -> dict[str, Any]:
    """{"data": FILE, "options": {AlignConfig fields}} or {"resume": RUN, "options": {...}}."""
    from ..iro.config import AlignConfig  # heavy: torch (through the value package)

    unknown = sorted(set(args) - {"data", "options", "resume"})
    if unknown:
        raise InputError(
            f"align job args take 'data', 'resume' and 'options', not {', '.join(unknown)}"
        )
    options = dict(args.get("options") or {})
    if not isinstance(args.get("options") or {}, dict):
        raise InputError("align job 'options' must be an object of align options")
    options.pop("data", None)
    resume = args.get("resume")
    if resume is not None:
        if not isinstance(resume, str) or not resume:
            raise InputError(f"resume must be a run name, got {resume!r}")
        if args.get("data"):
            raise InputError("give either a data file or resume=RUN, not both")
        return {"resume": resume, "options": options}
    data = _existing_file(args.get("data"), "data file")
    for key in ("eval", "grader", "out", "value_backbone", "tokenizer", "model"):
        v = options.get(key)
        if isinstance(v, str) and v and key in ("eval", "out"):
            options[key] = str(Path(v).expanduser().resolve())  # workers may run elsewhere
        elif isinstance(v, str) and v and Path(v).expanduser().exists():
            options[key] = str(Path(v).expanduser().resolve())
    # every option is checked now (a typo fails the submit, not the worker an hour later)
    cfg = AlignConfig.from_dict({**options, "data": data})
    if job_id is None:
        load_examples(data)
    if not options.get("run_name"):
        # fixed at submit: a resumed attempt continues the same run, as re-running `align` does
        options["run_name"] = cfg.default_run_name()
    return {"data": data, "options": options}


def _run_align(ctx: JobContext) -> dict[str, Any]:
    from ..iro import align  # heavy: torch

    options = dict(ctx.args.get("options") or {})
    resume = ctx.args.get("resume")
    if ctx.attempt > 1:
        ctx.log(f"resuming run {resume or options.get('run_name')} (attempt {ctx.attempt})")
    result = align(
        ctx.args.get("data"),
        db=ctx.store,
        progress=False,
        cancel_check=ctx.cancel_check,
        on_progress=ctx.on_progress,
        resume=resume,
        **options,
    )
    return _summary(result)


def _summary(result: Any) -> dict[str, Any]:
    """A small JSON-able summary of a runner's return value (a dict, or RunResult's fields)."""
    if isinstance(result, dict):
        items = result.items()
    else:
        names = ("name", "id", "out_dir", "report", "metrics")
        items = ((n, getattr(result, n, None)) for n in names)
    return json.loads(json.dumps({k: v for k, v in items if v is not None}, default=str))


# -- generate -----------------------------------------------------------------------------------
GENERATE_SEARCH = ("max_tokens", "w", "k", "l", "seed")


GENERATE_BUDGET = ("max_cost_usd", "max_requests", "max_output_tokens")


def _prepare_generate(args: dict[str, Any], job_id: int | None) -> dict[str, Any]:
    """{"run": RUN, "input": FILE, "output": FILE, "search": {max_tokens, w, k, l, seed},
    "final": "score" | "grader", "budget": {max_cost_usd, max_requests, max_output_tokens}}."""
    from ..providers.budget import Budget

    unknown = sorted(set(args) - {"run", "input", "output", "search", "final", "budget"})
    if unknown:
        raise InputError(
            "generate job args take run, input, output, search, final and budget, not "
            + ", ".join(unknown)
        )
    budget = args.get("budget") or {}
    if not isinstance(budget, dict) or set(budget) - set(GENERATE_BUDGET):
        raise InputError(f"generate job budget is an object of {', '.join(GENERATE_BUDGET)}")
    budget = {k: v for k, v in budget.items() if v is not None}
    Budget(**budget)  # a bad limit fails the submit
    run = args.get("run")
    if not isinstance(run, (str, int)) or isinstance(run, bool) or str(run) == "":
        raise InputError(f"generate job needs a run name or id, got {run!r}")
    inp = _existing_file(args.get("input"), "prompts file")
    out = _out_path(args.get("output"), "output file")
    if out == inp:
        raise InputError(f"output file {out} is the prompts file; give another path")
    search = dict(args.get("search") or {})
    bad = sorted(set(search) - set(GENERATE_SEARCH))
    if bad:
        raise InputError(f"generate search options are {', '.join(GENERATE_SEARCH)}, not {bad}")
    for k, v in search.items():
        if v is not None and (
            isinstance(v, bool) or not isinstance(v, int) or v < (0 if k == "seed" else 1)
        ):
            raise InputError(f"{k} must be a positive integer, got {v!r}")
    final = args.get("final") or "score"
    if final not in ("score", "grader"):
        raise InputError(f"final must be score or grader, got {final!r}")
    if job_id is None:
        load_examples(inp)
    out_args: dict[str, Any] = {"run": str(run), "input": inp, "output": out}
    search = {k: v for k, v in search.items() if v is not None}
    if search:
        out_args["search"] = search
    if final != "score":
        out_args["final"] = final
    if budget:
        out_args["budget"] = budget
    return out_args


def _run_generate(ctx: JobContext) -> dict[str, Any]:
    from ..iro.generate import generate_file  # heavy: torch
    from ..providers.budget import Budget

    if ctx.attempt > 1:
        ctx.log(f"resuming generation into {ctx.args['output']} (attempt {ctx.attempt})")
    result = generate_file(
        ctx.args["run"],
        ctx.args["input"],
        ctx.args["output"],
        db=ctx.store,
        progress=False,
        cancel_check=ctx.cancel_check,
        on_progress=ctx.on_progress,
        final=ctx.args.get("final", "score"),
        budget=Budget(**(ctx.args.get("budget") or {})),
        ledger=JobLedger(ctx),
        **(ctx.args.get("search") or {}),
    )
    return _summary(result)


ALIGN = JobKind(
    "align",
    run=_run_align,
    prepare=_prepare_align,
    help="Align a model on a JSONL dataset (iro-bb align).",
)
GENERATE = JobKind(
    "generate",
    run=_run_generate,
    prepare=_prepare_generate,
    help="Decode a prompts file with an aligned run (iro-bb generate).",
)
