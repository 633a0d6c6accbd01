"""A run's value models steering another provider or model (`generate|eval|serve --run RUN
--provider P --base-url U --model M`): which of the run's stored provider options still hold
(pure), and on real parts: V_1 trained on SmolLM2 through the local `hf` provider steering the
same model behind the real llama-cpp-python server (a counting proxy in front of it), refused
before any request where align would refuse, and never confused with the run's own answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from _fx_llama import MODEL_ALIAS, free_port
from _fx_runs import write_prompts

from iro_blackbox.cli.app import main
from iro_blackbox.errors import ConfigError, InputError
from iro_blackbox.iro.config import AlignConfig
from iro_blackbox.iro.generate import batch_key
from iro_blackbox.iro.steer import Steering, decode_options

HOST_A, HOST_B = "https://a.example/v1", "https://b.example/v1"
SECRET = "sk-steer-test-0123456789"


def stored(**kw):
    """A run's stored options, as align stores them."""
    return AlignConfig.from_dict({"data": "train.jsonl", **kw}).to_dict()


OPENAI_RUN = stored(provider="openai", base_url=HOST_A, model="small", api_key_env="A_KEY",
                    rpm=60, tpm=9000, price_input=0.1, price_output=0.2, api_mode="chat-prefill",
                    tokenizer="smollm2-135m-instruct", batch_api=True)  # fmt: skip


def test_no_override_and_a_new_address_keep_every_stored_option():
    d, steering = decode_options(OPENAI_RUN, {})
    assert d == OPENAI_RUN and steering is None
    # the same model at another address of the same server: the run's own policy, as before
    d, steering = decode_options(OPENAI_RUN, {"base_url": HOST_B, "rpm": 30})
    assert steering is None and d["base_url"] == HOST_B and d["rpm"] == 30
    assert (d["api_key_env"], d["price_input"], d["api_mode"]) == ("A_KEY", 0.1, "chat-prefill")


def test_another_model_on_the_same_host_keeps_host_options_only():
    d, steering = decode_options(OPENAI_RUN, {"model": "big"})
    assert steering == Steering("openai", "big", HOST_A, None, "auto")
    assert (d["base_url"], d["api_key_env"], d["rpm"], d["tpm"]) == (HOST_A, "A_KEY", 60, 9000)
    # priced, probed and tokenized on its own; the Batch API was the run's rollouts' choice
    assert (d["price_input"], d["price_output"], d["tokenizer"]) == (None, None, None)
    assert (d["api_mode"], d["batch_api"]) == ("auto", False)


def test_another_host_never_gets_the_runs_key_and_given_options_win():
    d, steering = decode_options(OPENAI_RUN, {"model": "big", "base_url": HOST_B})
    assert steering is not None and steering.label() == f"openai:big at {HOST_B}"
    assert (d["api_key_env"], d["rpm"], d["tpm"]) == (None, None, None)
    d, _ = decode_options(
        OPENAI_RUN,
        {"model": "big", "base_url": HOST_B, "api_key_env": "B_KEY", "price_input": 1.0,
         "price_output": 2.0, "tokenizer": "tok", "api_mode": "completions"},
    )  # fmt: skip
    assert (d["api_key_env"], d["price_input"], d["price_output"]) == ("B_KEY", 1.0, 2.0)
    assert (d["tokenizer"], d["api_mode"]) == ("tok", "completions")
    # the same model through another provider: nothing of the run's endpoint follows (the
    # tokenizer belongs to the model)
    d, steering = decode_options(OPENAI_RUN, {"provider": "vllm"})
    assert steering == Steering("vllm", "small", None, MODEL_ALIAS, "auto")
    assert d["base_url"] is None and d["api_key_env"] is None and d["batch_api"] is False


def test_an_hf_run_steers_an_endpoint_and_keys_identify_what_decoded(tmp_path):
    run = stored(provider="hf", model=MODEL_ALIAS)
    url = "http://127.0.0.1:9/v1"
    d, steering = decode_options(run, {"provider": "openai", "base_url": url})
    assert steering == Steering("openai", MODEL_ALIAS, url, None, "auto")
    assert steering.label() == f"openai:{MODEL_ALIAS} at {url}"
    assert decode_options(run, {"provider": "hf", "model": MODEL_ALIAS})[1] is None
    # generations of a steered model are stored apart from the run's own and from each other
    p = tmp_path / "p.jsonl"
    own = batch_key(p, {}, "score")
    assert own == batch_key(p, {}, "score", None)
    other = Steering("vllm", MODEL_ALIAS)
    assert len({own, batch_key(p, {}, "score", steering), batch_key(p, {}, "score", other)}) == 3


def test_options_that_change_what_the_run_learned_are_refused():
    with pytest.raises(InputError, match="option l, w cannot be overridden"):
        decode_options(OPENAI_RUN, {"w": 8, "l": 4}, "load_run")
    with pytest.raises(ConfigError, match="provider must be one of"):
        decode_options(OPENAI_RUN, {"provider": "nope"})


# -- real parts -----------------------------------------------------------------------------------
def _steer(proxy) -> list[str]:
    return ["--provider", "openai", "--base-url", proxy.base_url, "--model", MODEL_ALIAS]


def _files_hold(folder: Path, secret: str) -> list[str]:
    return [str(f) for f in folder.rglob("*") if f.is_file() and secret.encode() in f.read_bytes()]


@pytest.mark.slow
def test_hf_value_models_steer_the_llama_server(finished_hf_run, llama_proxy, tmp_path,
                                                 monkeypatch, capsys):  # fmt: skip
    from iro_blackbox.store import RunRepository, open_store

    run = finished_hf_run
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # for the endpoint named on the command line
    prompts = write_prompts(tmp_path / "p.jsonl", ["Say something about snow.",
                                                   "Say something about fog."], "p")  # fmt: skip
    out = tmp_path / "answers.jsonl"
    argv = ["generate", str(prompts), "--run", run.name, "-o", str(out), "--db", run.db, "-q"]
    assert main([*argv, *_steer(llama_proxy)]) == 0
    printed = capsys.readouterr().out
    assert f"steered openai:{MODEL_ALIAS} at {llama_proxy.base_url}" in printed
    assert "api mode completions" in printed  # negotiated by the probe, as align does
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["p0", "p1"] and all(r["response"] for r in records)
    assert all(r["steered"]["provider"] == "openai" for r in records)
    assert all(r["steered"]["base_url"] == llama_proxy.base_url for r in records)
    # the answers came from the server: CBS continued the prompts there, chunk by chunk
    bodies = [json.dumps(r.body) for r in llama_proxy.received]
    for word in ("snow", "fog"):
        assert sum(word in b for b in bodies) >= 2, word
    assert {r.authorization for r in llama_proxy.received} == {f"Bearer {SECRET}"}
    sent = llama_proxy.count()

    # stored apart from the run's own answers to the same file; a re-run sends nothing
    repo = RunRepository(open_store(run.db))
    run_id = repo.find(run.name).id
    assert repo.generations(run_id, batch_key(prompts, {}, "score")) == {}
    assert main([*argv, *_steer(llama_proxy)]) == 0
    assert "(0 new, 2 from the store)" in capsys.readouterr().out
    assert llama_proxy.count() == sent

    # eval: every method on the steered model, labelled, and the run's report left alone
    report = tmp_path / "eval.json"
    ev_argv = ["eval", str(run.evals), "--run", run.name, "--db", run.db, "--methods",
               "base,iro", "--budgets", "2", "--json", str(report)]  # fmt: skip
    assert main([*ev_argv, *_steer(llama_proxy)]) == 0
    printed = capsys.readouterr().out
    assert f"{run.name} steering openai:{MODEL_ALIAS}" in printed
    assert "not added to the run's report" in printed
    ev = json.loads(report.read_text())
    assert ev["steered"]["base_url"] == llama_proxy.base_url and ev["steered"]["mode"]
    assert set(ev["methods"]) == {"base", "iro"} and ev["iro_budgets"][0]["budget"] == 2
    assert ev["spent"]["requests"] > 0 and llama_proxy.count() > sent
    assert not (run.out / "compute.json").exists()
    # from Python: the same policy; its first call probes the endpoint (a stored probe reused)
    from iro_blackbox import load_run

    before = llama_proxy.count()
    policy = load_run(run.name, db=run.db, provider="openai", base_url=llama_proxy.base_url)
    assert policy.describe()["steering"]["base_url"] == llama_proxy.base_url
    gens = policy.generate(["Say something about sleet."], max_tokens=8)
    assert gens[0].text.strip() and policy.mode.startswith("api mode completions")
    assert any("sleet" in json.dumps(x.body) for x in llama_proxy.received[before:])
    # the key went to the endpoint named on the command line and nowhere else
    assert _files_hold(Path(run.db).parent, SECRET) == []
    assert _files_hold(tmp_path, SECRET) == []


@pytest.mark.slow
def test_refused_before_any_request(finished_hf_run, llama_proxy, tmp_path, capsys):
    run = finished_hf_run
    prompts = write_prompts(tmp_path / "p.jsonl", ["Say something about rain."], "p")
    out = tmp_path / "a.jsonl"
    gen = ["generate", str(prompts), "--run", run.name, "-o", str(out), "--db", run.db, "-q"]
    # a budget with no room for one request: refused before the probe, as align refuses
    assert main([*gen, *_steer(llama_proxy), "--max-requests", "0"]) == 3
    assert "budget reached (--max-requests 0)" in capsys.readouterr().err
    ev = ["eval", str(run.evals), "--run", run.name, "--db", run.db, "-q"]
    assert main([*ev, *_steer(llama_proxy), "--max-output-tokens", "0"]) == 3
    assert "budget reached (--max-output-tokens 0)" in capsys.readouterr().err
    port = str(free_port())
    serve = ["serve", "--run", run.name, "--db", run.db, "--port", port]
    assert main([*serve, *_steer(llama_proxy), "--max-requests", "0"]) == 3
    assert llama_proxy.count() == 0 and not out.exists()
    # a paid endpoint whose prices are unknown is never priced at $0 (nothing is sent: this
    # address answers nothing, and asking it would hang the test)
    unknown = ["--provider", "openai", "--base-url", "http://192.0.2.1:9/v1", "--model", "m-x"]
    assert main([*gen, *unknown]) == 2
    assert "not in genai-prices' price list" in capsys.readouterr().err
    # a local provider costs nothing: a budget for it is an error, before its engine starts
    assert main([*gen, "--provider", "vllm", "--max-requests", "5"]) == 2
    assert "costs nothing" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_steers_the_llama_server(finished_hf_run, llama_proxy, tmp_path):
    import openai

    run = finished_hf_run
    port = free_port()
    log = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "iro_blackbox.cli.app", "serve", "--run", run.name, "--db",
           run.db, "--port", str(port), "--api-key", "k-serve", *_steer(llama_proxy)]  # fmt: skip
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        deadline = time.time() + 300
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
            assert time.time() < deadline, log.read_text()[-3000:]
        probe_requests = llama_proxy.count()
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k-serve",
                               max_retries=0, timeout=300)  # fmt: skip
        r = client.completions.create(model=run.name, prompt="Say something about hail.",
                                      max_tokens=16, seed=1)  # fmt: skip
        assert r.choices[0].text.strip()
        assert llama_proxy.count() > probe_requests
        assert any("hail" in json.dumps(x.body) for x in llama_proxy.received)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    assert f"steering openai:{MODEL_ALIAS} at {llama_proxy.base_url}: api mode" in text, text
    assert f"serving run '{run.name}' steering openai:{MODEL_ALIAS}" in text
