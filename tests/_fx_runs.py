"""A finished run, once per session: SmolLM2-135M-Instruct on the local `hf` provider aligned for
one iteration (a MiniLM value model V_1 trained on its rollouts, the VADER grader) on a few
prompts, in a real SQLite store. For tests that use a run's aligned policy (generate, eval,
serve, steering another model) without paying for an align of their own."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

RUN_PROMPTS = [
    "Write one sentence about a rainy Monday.",
    "Write one sentence about a queue at the post office.",
    "Write one sentence about a delayed train.",
    "Write one sentence about doing the laundry.",
    "Write one sentence about a broken umbrella.",
]
RUN_SETTINGS = dict(iterations=1, w=2, k=2, l=8, max_tokens=16, value_epochs=1, seed=5, gate=False)


@dataclass
class FinishedRun:
    name: str
    db: str  # the store's SQLite file
    out: Path  # the run's folder
    evals: Path  # its held-out prompts (JSONL)


def write_prompts(path: Path, prompts: list[str], prefix: str) -> Path:
    path.write_text(
        "".join(
            json.dumps({"id": f"{prefix}{i}", "prompt": p}) + "\n" for i, p in enumerate(prompts)
        )
    )
    return path


@pytest.fixture(scope="session")
def finished_hf_run(tmp_path_factory) -> FinishedRun:
    from iro_blackbox import align

    folder = tmp_path_factory.mktemp("hf-run")
    train = write_prompts(folder / "train.jsonl", RUN_PROMPTS[:3], "t")
    evals = write_prompts(folder / "eval.jsonl", RUN_PROMPTS[3:], "e")
    db, out = str(folder / "iro.db"), folder / "run"
    res = align(train, eval=str(evals), db=db, out=str(out), run_name="hf-run", progress=False,
                provider="hf", model="smollm2-135m-instruct", device="cpu", **RUN_SETTINGS)  # fmt: skip
    assert [i["stage"] for i in res.iterations] == ["done", "done"]
    return FinishedRun(res.name, db, out, evals)


__all__ = ["FinishedRun", "finished_hf_run", "write_prompts"]
