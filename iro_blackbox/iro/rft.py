"""An OpenAI reinforcement fine-tuning job, read as an iro-bb alignment run.

    plan = read_rft_job("job.json")      # the body of POST /v1/fine_tuning/jobs, or a job object
    plan.data, plan.options              # DATA and align options
    plan.mapped, plan.unmapped           # what became what, and what has no counterpart (and why)

The files are local paths (relative to the job file); OpenAI file ids are refused with how to
download them. The grader is taken as it is (`method.reinforcement.grader`). Hyperparameters that
mean something here are mapped (seed, n_epochs -> value-model epochs, compute_multiplier ->
rollouts per prompt); the rest are listed as having no counterpart, never silently dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .config import AlignConfig

TOP_LEVEL = {
    "training_file",
    "validation_file",
    "model",
    "method",
    "hyperparameters",
    "seed",
    "suffix",
    "metadata",
    "integrations",
    # a job object as GET /v1/fine_tuning/jobs/ID returns it
    "id",
    "object",
    "created_at",
    "finished_at",
    "fine_tuned_model",
    "organization_id",
    "result_files",
    "status",
    "trained_tokens",
    "error",
    "estimated_finish",
    "user_provided_suffix",
    "usage_metrics",
    "shared_with_openai",
    "eval_id",
}
NO_COUNTERPART = {
    "batch_size": "IRO trains no policy weights (the value model's batches are fixed)",
    "learning_rate_multiplier": "no policy learning rate; the value model's is --value-lr",
    "eval_interval": "IRO evaluates after every iteration",
    "eval_samples": "IRO's evaluation decodes every held-out prompt (--eval, --eval-split)",
    "reasoning_effort": "the policy is the model you give (--model), sampled as it is",
}


@dataclass
class RftPlan:
    data: str
    options: dict[str, Any]
    mapped: list[tuple[str, str, Any]] = field(default_factory=list)  # (rft field, option, value)
    unmapped: list[tuple[str, str]] = field(default_factory=list)  # (rft field, why)


def _file(job: dict[str, Any], key: str, base: Path, where: str) -> str | None:
    v = job.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or not v:
        raise InputError(f"{where}: '{key}' must be a file path, got {v!r}")
    p = Path(v).expanduser()
    if not p.is_absolute():
        p = base / p
    if not p.is_file():
        if re.fullmatch(r"file-[A-Za-z0-9]+", v):
            raise InputError(
                f"{where}: '{key}' is the OpenAI file id {v}: download it (`curl "
                f'https://api.openai.com/v1/files/{v}/content -H "Authorization: Bearer '
                '$OPENAI_API_KEY" -o FILE.jsonl`) and give its path here'
            )
        raise InputError(
            f"{where}: '{key}' {v} does not exist (paths are relative to the job file)"
        )
    return str(p.resolve())


def read_rft_job(path: str | Path, given: dict[str, Any] | None = None) -> RftPlan:
    """Read an RFT job description into DATA, align options and the mapping shown to the user.
    `given`: the align options otherwise in force (compute_multiplier scales their W*K)."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise InputError(f"{where}: file not found")
    try:
        job = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(
            f"{where}: invalid JSON at line {e.lineno} col {e.colno}: {e.msg}"
        ) from None
    except UnicodeDecodeError:
        raise InputError(f"{where}: not UTF-8 text") from None
    if not isinstance(job, dict):
        raise InputError(f"{where}: an RFT job is a JSON object, got {type(job).__name__}")
    unknown = sorted(set(job) - TOP_LEVEL)
    if unknown:
        raise InputError(
            f"{where}: unknown key '{unknown[0]}' (an RFT job has {', '.join(sorted(TOP_LEVEL)[:9])}, ...)"
        )
    base = path.resolve().parent
    data = _file(job, "training_file", base, where)
    if data is None:
        raise InputError(f"{where}: 'training_file' is required")
    plan = RftPlan(data=data, options={})
    plan.mapped.append(("training_file", "DATA", data))
    val = _file(job, "validation_file", base, where)
    if val is not None:
        plan.options["eval"] = val
        plan.mapped.append(("validation_file", "--eval", val))

    method = job.get("method") or {}
    if not isinstance(method, dict):
        raise InputError(f"{where}: 'method' must be an object")
    mtype = method.get("type", "reinforcement")
    if mtype != "reinforcement":
        raise InputError(
            f"{where}: method.type is {mtype!r}; iro-bb runs reinforcement jobs (a grader and "
            "prompts), not supervised or DPO ones"
        )
    rein = method.get("reinforcement") or {}
    if not isinstance(rein, dict):
        raise InputError(f"{where}: method.reinforcement must be an object")
    bad = sorted(set(rein) - {"grader", "hyperparameters", "response_format"})
    if bad:
        raise InputError(f"{where}: unknown key 'method.reinforcement.{bad[0]}'")
    grader = rein.get("grader")
    if not isinstance(grader, dict):
        raise InputError(f"{where}: method.reinforcement.grader (the grader object) is required")
    plan.options["grader"] = json.dumps(grader, ensure_ascii=False)
    plan.mapped.append(
        (
            "method.reinforcement.grader",
            "--grader",
            f"{grader.get('type')} '{grader.get('name', '')}'",
        )
    )
    if rein.get("response_format") is not None:
        plan.unmapped.append(
            (
                "method.reinforcement.response_format",
                "the policy's answers are not constrained to a schema; a grader that reads "
                "sample.output_json sees JSON only where the model writes it",
            )
        )

    hp = dict(job.get("hyperparameters") or {})
    hp.update(rein.get("hyperparameters") or {})
    defaults = AlignConfig.from_dict({**(given or {}), "data": data})
    for key, value in hp.items():
        if value is None or value == "auto":
            plan.unmapped.append((f"hyperparameters.{key}", "auto: iro-bb's default is used"))
            continue
        if key == "n_epochs":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{where}: hyperparameters.n_epochs must be a positive integer")
            plan.options["value_epochs"] = value
            plan.mapped.append(("hyperparameters.n_epochs", "--value-epochs", value))
        elif key == "compute_multiplier":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise InputError(f"{where}: hyperparameters.compute_multiplier must be > 0")
            n = max(1, round(defaults.n_rollouts * float(value)))
            plan.options["rollouts"] = n
            plan.mapped.append(
                (
                    "hyperparameters.compute_multiplier",
                    "--rollouts",
                    f"{n} ({value} x {defaults.n_rollouts})",
                )
            )
        elif key in NO_COUNTERPART:
            plan.unmapped.append((f"hyperparameters.{key}", NO_COUNTERPART[key]))
        else:
            raise InputError(f"{where}: unknown hyperparameter '{key}'")

    if job.get("seed") is not None:
        seed = job["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InputError(f"{where}: 'seed' must be an integer >= 0")
        plan.options["seed"] = seed
        plan.mapped.append(("seed", "--seed", seed))
    if job.get("suffix"):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(job["suffix"])).strip("-")
        if name:
            plan.options["run_name"] = name
            plan.mapped.append(("suffix", "--run-name", name))
    if job.get("model"):
        plan.unmapped.append(
            (
                "model",
                f"{job['model']} is OpenAI's to fine-tune; iro-bb steers the model you give "
                "(--model / --provider; default the local SmolLM2)",
            )
        )
    for key in ("metadata", "integrations"):
        if job.get(key):
            plan.unmapped.append(
                (key, "kept by OpenAI's dashboard; iro-bb has its runs and report")
            )
    AlignConfig.from_dict({"data": data, **plan.options})  # every mapped value checked now
    return plan
