"""A run's value models steering the `vllm` provider: V_1 trained on SmolLM2 through the local
`hf` provider guides chunk-level search on vLLM's CPU engine (its own process, .venv-vllm)."""

from __future__ import annotations

import json

import pytest
from _fx_runs import write_prompts


@pytest.mark.slow
def test_hf_value_models_steer_the_vllm_provider(finished_hf_run, vllm_python, tmp_path):
    from iro_blackbox.iro.generate import batch_key, generate_file
    from iro_blackbox.store import RunRepository, open_store

    run = finished_hf_run
    prompts = write_prompts(tmp_path / "p.jsonl", ["Say something about snow.",
                                                   "Say something about fog."], "p")  # fmt: skip
    out = tmp_path / "answers.jsonl"
    steer = {"provider": "vllm", "vllm_dtype": "float32", "vllm_python": vllm_python}
    res = generate_file(run.name, prompts, out, db=run.db, progress=False, overrides=steer)
    st = res["steered"]
    assert (st["provider"], st["model"]) == ("vllm", "smollm2-135m-instruct")
    assert "engine ready" in st["mode"] and "token-ID prompts" in st["mode"]
    assert res["generated"] == 2 and res["spent"]["requests"] > 0  # generate calls on the engine
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(r["response"] and r["steered"]["provider"] == "vllm" for r in records)
    # the run's own answers to this file are not these
    repo = RunRepository(open_store(run.db))
    assert repo.generations(repo.find(run.name).id, batch_key(prompts, {}, "score")) == {}
