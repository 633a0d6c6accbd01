"""API keys stay with their host: two loopback servers of _fx_api record the Authorization header
of every request they receive. The user's OPENAI_API_KEY reaches the endpoint they named (and
OpenAI's own API), never a judge's host from a grader spec; a per-URL entry of the config file and
--api-key-env / api_key_env name the key of an endpoint and win over OPENAI_API_KEY."""

from __future__ import annotations

import asyncio
import json

import pytest
from _fx_api import FakeOpenAIServer

from iro_blackbox.cli.app import main
from iro_blackbox.credentials import api_key_for
from iro_blackbox.errors import ConfigError
from iro_blackbox.graders import load_grader
from iro_blackbox.params import SamplingParams
from iro_blackbox.providers.base import Extend
from iro_blackbox.providers.openai import OpenAIProvider

ENV_KEY = "sk-users-openai-key-000000"
NAMED_KEY = "sk-named-endpoint-key-111111"
PER_URL_KEY = "sk-per-url-key-222222"
JUDGE_KEY = "sk-judge-key-333333"


@pytest.fixture
def hosts():
    a, b = FakeOpenAIServer().start(), FakeOpenAIServer().start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def keys_env(tmp_path, monkeypatch):
    """OPENAI_API_KEY set, an empty config file; returns the config file to fill."""
    cfg = tmp_path / "config.json"
    cfg.write_text("{}")
    monkeypatch.setenv("IRO_CONFIG", str(cfg))
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    return cfg


def auths(srv: FakeOpenAIServer) -> set[str | None]:
    return {r.authorization for r in srv.received}


def ask(provider: OpenAIProvider) -> None:
    async def go():
        try:
            await provider.extend(
                [Extend("hi", max_tokens=2, params=SamplingParams(temperature=0.0))]
            )
        finally:
            await provider.aclose()

    asyncio.run(go())


def judge_spec(base_url: str, **extra) -> dict:
    return {
        "type": "score_model", "name": "judge", "model": "judge-model", "base_url": base_url,
        "input": [{"role": "user", "content": "Rate: {{ sample.output_text }}"}],
        "range": [0, 100], **extra,
    }  # fmt: skip


def run_judge(spec: dict) -> None:
    g = load_grader(spec)

    async def go():
        try:
            await g.grade(["an answer"], [{}])
        finally:
            await g.aclose()

    asyncio.run(go())


def test_a_judges_host_never_gets_the_users_openai_key(hosts, keys_env, monkeypatch):
    policy, judge = hosts
    run_judge(judge_spec(judge.base_url))
    assert judge.received and auths(judge) == {"Bearer sk-no-key-required"}
    # the key the spec names (by variable) goes there, and only that one
    judge.received.clear()
    monkeypatch.setenv("JUDGE_KEY_VAR", JUDGE_KEY)
    run_judge(judge_spec(judge.base_url, api_key_env="JUDGE_KEY_VAR"))
    assert auths(judge) == {f"Bearer {JUDGE_KEY}"}
    # the config file's entry for the judge's URL is its key
    judge.received.clear()
    keys_env.write_text(json.dumps({"api_keys": {judge.base_url: PER_URL_KEY}}))
    run_judge(judge_spec(judge.base_url))
    assert auths(judge) == {f"Bearer {PER_URL_KEY}"}
    assert policy.received == []


def test_named_endpoint_per_url_entry_and_api_key_env(hosts, keys_env, monkeypatch):
    policy, other = hosts
    # the endpoint the user named gets OPENAI_API_KEY when nothing more specific is configured
    ask(OpenAIProvider("m", base_url=policy.base_url, mode="completions"))
    assert auths(policy) == {f"Bearer {ENV_KEY}"}
    # a per-URL entry wins over OPENAI_API_KEY
    policy.received.clear()
    keys_env.write_text(json.dumps({"api_keys": {policy.base_url + "/": PER_URL_KEY}}))
    ask(OpenAIProvider("m", base_url=policy.base_url, mode="completions"))
    assert auths(policy) == {f"Bearer {PER_URL_KEY}"}
    # --api-key-env names the variable; an unset one is an error before any request
    policy.received.clear()
    monkeypatch.setenv("NAMED_KEY_VAR", NAMED_KEY)
    ask(OpenAIProvider("m", base_url=policy.base_url, mode="completions",
                       api_key_env="NAMED_KEY_VAR"))  # fmt: skip
    assert auths(policy) == {f"Bearer {NAMED_KEY}"}
    with pytest.raises(ConfigError, match="'NOT_SET_ANYWHERE' is not set"):
        OpenAIProvider("m", base_url=other.base_url, api_key_env="NOT_SET_ANYWHERE")
    # an endpoint nobody named gets no unscoped key; OpenAI's own API does
    assert api_key_for(other.base_url, named=False) is None
    assert api_key_for("https://api.openai.com/v1", named=False) == ENV_KEY
    assert other.received == []


def test_probe_cli_sends_the_key_of_api_key_env(hosts, keys_env, monkeypatch, tmp_path, capsys):
    policy, other = hosts
    monkeypatch.setenv("NAMED_KEY_VAR", NAMED_KEY)
    db = str(tmp_path / "p.db")
    argv = ["probe", "--base-url", policy.base_url, "--model", "m", "--db", db]
    assert main([*argv, "--api-key-env", "NAMED_KEY_VAR"]) == 0
    assert policy.received and auths(policy) == {f"Bearer {NAMED_KEY}"}
    assert main([*argv, "--reprobe", "--api-key-env", "NOT_SET_ANYWHERE"]) != 0
    err = capsys.readouterr().err
    assert "NOT_SET_ANYWHERE" in err and "Traceback" not in err
    assert other.received == []
