"""score_model graders: a local reward model (tiny random classifiers with MiniLM's real tokenizer),
the judge's parsing and failure handling, and a judge talking to the real llama-cpp-python server."""

from __future__ import annotations

import asyncio
import re
import shutil

import pytest

from iro_blackbox.errors import ConfigError, GraderError
from iro_blackbox.graders import load_grader
from iro_blackbox.graders.judge import (
    FALLBACK_WARNING,
    RESULT_SCHEMA,
    first_number,
    structured_result,
)

TEXTS = [
    "short",
    "a somewhat longer response about the weather on a rainy monday",
    "ok",
    "the queue at the post office was long but the staff were kind and quick",
    "medium length text here",
]


def grade(grader, samples, items):
    return asyncio.run(grader.grade(samples, items))


def direct_logits(folder, texts):
    """One unpadded forward pass per text, straight through transformers."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.inference_mode():
        return [model(**tok(t, return_tensors="pt")).logits[0, 0].item() for t in texts]


# --- local reward model -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_reward_model_batched_scores_match_single_forward(tiny_reward_models, arch):
    folder = str(tiny_reward_models[arch])
    g = load_grader({"type": "score_model", "name": "rm", "reward_model": folder, "batch_size": 2})
    out = grade(g, TEXTS, [{}] * len(TEXTS))
    assert all(x.error is None for x in out)
    # padded, length-sorted batches of 2 give each text the score of its own unpadded pass
    assert [x.score for x in out] == pytest.approx(direct_logits(folder, TEXTS), abs=1e-4)
    assert len({round(x.score, 6) for x in out}) == len(TEXTS)
    sig = load_grader(
        {"type": "score_model", "reward_model": folder, "activation": "sigmoid", "batch_size": 8}
    )
    import math

    want = [1 / (1 + math.exp(-x.score)) for x in out]
    assert [x.score for x in grade(sig, TEXTS, [{}] * len(TEXTS))] == pytest.approx(want, abs=1e-4)


@pytest.mark.slow
def test_reward_model_chat_input_and_template_errors(tiny_reward_models):
    folder = str(tiny_reward_models["bert"])
    g = load_grader(
        {
            "type": "score_model",
            "name": "rm",
            "reward_model": folder,
            "input": [
                {"role": "user", "content": "{{ item.prompt }}"},
                {"role": "assistant", "content": "{{ sample.output_text }}"},
            ],
        }
    )
    items = [{"prompt": "How was your day?"}, {"prompt": "Any news?"}, {"no_prompt": 1}]
    out = grade(g, ["Lovely, thanks!", "Nothing much.", "Fine."], items)
    # MiniLM's tokenizer has no chat template: turns are scored as "role: content" lines
    want = direct_logits(
        folder,
        [
            "user: How was your day?\nassistant: Lovely, thanks!",
            "user: Any news?\nassistant: Nothing much.",
        ],
    )
    assert [x.score for x in out[:2]] == pytest.approx(want, abs=1e-4)
    assert out[2].error == "template in key 'input[0].content': item has no field 'prompt'"


@pytest.mark.slow
def test_reward_model_spec_checks_and_hash(tiny_reward_models, tmp_path):
    with pytest.raises(ConfigError, match=r"one output \(num_labels=1\), this one has 2"):
        load_grader({"type": "score_model", "reward_model": str(tiny_reward_models["two_labels"])})
    with pytest.raises(
        ConfigError, match="grader 'score_model': model not found: .* in key 'reward_model'"
    ):
        load_grader({"type": "score_model", "reward_model": str(tmp_path / "nothing")})
    with pytest.raises(ConfigError, match="give either 'model'"):
        load_grader(
            {"type": "score_model", "reward_model": str(tiny_reward_models["bert"]), "model": "x"}
        )
    # the hash follows the weights, not the folder's name or place
    copy = shutil.copytree(tiny_reward_models["bert"], tmp_path / "copy")
    h = {
        k: load_grader({"type": "score_model", "reward_model": str(p)}).spec_hash
        for k, p in {
            "a": tiny_reward_models["bert"],
            "b": copy,
            "c": tiny_reward_models["bert_seed1"],
        }.items()
    }
    assert h["a"] == h["b"] != h["c"]


# --- LLM judge: parsing, range, failures (scripted replies) -----------------------------------


def test_first_number():
    assert first_number("Score: 7/10") == 7.0
    assert first_number("<think>maybe 3 or 4</think> Final: 8.5") == 8.5
    assert first_number("-2 points") == -2.0
    assert first_number(".5") == 0.5
    assert first_number("no digits here") is None


def judge_spec(**extra):
    return {
        "type": "score_model",
        "name": "judge",
        "model": "scripted-judge",
        "input": [
            {"role": "system", "content": "Rate the answer from 0 to 10."},
            {"role": "user", "content": "Answer: {{ sample.output_text }}\n{{ item.verdict }}"},
        ],
        "range": [0, 10],
        **extra,
    }


def test_judge_parses_checks_range_and_normalizes(scripted_judge):
    made = []

    def factory(name, **kwargs):
        made.append((name, kwargs))
        return scripted_judge

    g = load_grader(
        judge_spec(normalize=True, sampling_params={"max_completions_tokens": 8, "seed": 3}),
        provider_factory=factory,
    )
    verdicts = ["7", "Score: 2.5 out of 10", "eleven", "42", "10"]
    out = grade(g, ["a"] * 5, [{"verdict": v} for v in verdicts])
    assert [x.score for x in out] == [0.7, 0.25, 0.0, 0.0, 1.0]
    # this judge ignores the JSON schema asked for: the first number counts, the grade says so
    assert out[0].details == {"reply": "7", "raw_score": 7.0, "warning": FALLBACK_WARNING}
    assert out[2].error == "judge reply has no number: 'eleven'"
    assert out[3].error == "judge score 42 outside range [0, 10]"
    # one extend call for the whole batch, greedy, with the spec's limits
    assert len(scripted_judge.calls) == 1 and len(scripted_judge.calls[0]) == 5
    req = scripted_judge.calls[0][0]
    assert req.params.greedy and req.params.seed == 3 and req.max_tokens == 8 and req.n == 1
    assert req.prompt[0] == {"role": "system", "content": "Rate the answer from 0 to 10."}
    assert req.prompt[1]["content"] == "Answer: a\n7"
    assert made == [("openai", {"model": "scripted-judge"})]


def test_judge_asks_for_structured_output_and_reads_it(scripted_judge):
    scripted_judge.structured = True
    g = load_grader(judge_spec(pass_threshold=5), provider_factory=lambda n, **k: scripted_judge)
    out = grade(g, ["a", "b"], [{"verdict": "7"}, {"verdict": "3"}])
    assert scripted_judge.calls[0][0].response_format == RESULT_SCHEMA
    assert out[0].details == {"reply": '{"result": 7.0}', "raw_score": 7.0, "passed": True}
    assert out[1].score == 3.0 and out[1].details["passed"] is False
    assert structured_result('```json\n{"result": 0.5}\n```') == 0.5
    assert structured_result('{"result": "high"}') is None and structured_result("7") is None


def test_judge_isolates_a_failing_request_and_raises_when_all_fail(scripted_judge):
    g = load_grader(judge_spec(error_score=-1), provider_factory=lambda n, **k: scripted_judge)
    out = grade(g, ["a", "b", "c"], [{"verdict": "3"}, {"verdict": "FAIL"}, {}])
    assert out[0].score == 3.0 and out[0].error is None
    assert out[1].score == -1 and out[1].error == "judge request failed: 400: request refused"
    assert out[2].error == "template in key 'input[1].content': item has no field 'verdict'"
    # the batch of two failed (structured), again without the schema (the endpoint may refuse
    # it), then each request went alone: 2 + 2 extend calls
    assert [len(c) for c in scripted_judge.calls] == [2, 2, 1, 1]
    assert scripted_judge.calls[0][0].response_format == RESULT_SCHEMA
    assert scripted_judge.calls[1][0].response_format is None
    with pytest.raises(GraderError, match="grader 'judge': the judge failed"):
        grade(g, ["a"], [{"verdict": "FAIL"}])


def test_judge_transient_failure_stops_and_shared_provider_stays_open(scripted_judge):
    g = load_grader(judge_spec())
    g.use_provider(scripted_judge)  # e.g. the policy's own provider
    with pytest.raises(GraderError, match="the judge failed: connection refused"):
        grade(g, ["a", "b"], [{"verdict": "4"}, {"verdict": "DOWN"}])
    assert len(scripted_judge.calls) == 1  # not retried sample by sample
    assert [x.score for x in grade(g, ["a"], [{"verdict": "4"}])] == [4.0]
    asyncio.run(g.aclose())
    assert not scripted_judge.closed
    owned = load_grader(judge_spec(), provider_factory=lambda n, **k: scripted_judge)
    grade(owned, ["a"], [{"verdict": "4"}])
    asyncio.run(owned.aclose())
    assert scripted_judge.closed


def test_judge_api_key_comes_from_the_environment(scripted_judge, monkeypatch):
    monkeypatch.setenv("IRO_TEST_JUDGE_KEY", "sk-test-secret")
    seen = {}

    def factory(name, **kwargs):
        seen.update(kwargs)
        return scripted_judge

    g = load_grader(
        judge_spec(api_key_env="IRO_TEST_JUDGE_KEY", base_url="http://127.0.0.1:9/v1"),
        provider_factory=factory,
    )
    grade(g, ["a"], [{"verdict": "5"}])
    assert seen["api_key"] == "sk-test-secret" and seen["base_url"] == "http://127.0.0.1:9/v1"
    assert "sk-test-secret" not in repr(g.spec)
    other = load_grader(judge_spec(base_url="http://127.0.0.1:9/v1"), provider_factory=factory)
    assert other.spec_hash == g.spec_hash  # which variable holds the key changes no grade


# --- LLM judge against the real llama-cpp-python server ----------------------------------------


@pytest.mark.slow
def test_judge_through_openai_provider_on_real_server(llama_server):
    spec = {
        "type": "score_model",
        "name": "helpful",
        "model": llama_server.model,
        "provider": "openai",
        "base_url": llama_server.base_url,
        # a judge needs no partial-answer continuation: plain chat, no capability probing
        "provider_options": {"mode": "chat"},
        "input": [
            {
                "role": "system",
                "content": "You grade answers. Reply with only a number from 1 to 10.",
            },
            {
                "role": "user",
                "content": "Question: {{ item.question }}\nAnswer: {{ sample.output_text }}\n"
                "How good is the answer, from 1 to 10?",
            },
        ],
        "range": [0, 10],
        "normalize": True,
        "sampling_params": {"temperature": 0, "max_completions_tokens": 12},
    }
    g = load_grader(spec)
    items = [
        {"question": "What is the capital of France?"},
        {"question": "What is 2 + 2?"},
        {"question": "Name a colour of the sky on a clear day."},
    ]
    samples = ["Paris is the capital of France.", "2 + 2 = 4.", "Blue."]

    async def run():
        try:
            first = await g.grade(samples, items)
            again = await g.grade(samples[:1], items[:1])
            return first, again
        finally:
            await g.aclose()

    first, again = asyncio.run(run())
    numeric = 0
    for x in first:
        reply = x.details.get("reply", "")
        if x.error is None:
            numeric += 1
            raw = float(re.search(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)", reply).group(0))
            assert x.details["raw_score"] == raw
            assert x.score == pytest.approx(raw / 10) and 0.0 <= x.score <= 1.0
        else:
            assert x.error.startswith(("judge reply has no number", "judge score")), x.error
    assert numeric >= 1, [x.error for x in first]
    # measured: llama-cpp-python's server refuses a json_schema response_format (a 500 holding a
    # validation error), so the judge asked again without it and each grade says so
    assert g.structured is False
    assert all(x.details.get("warning") == FALLBACK_WARNING for x in first)
    # greedy: the same question gets the same reply (through the same provider, built once)
    assert again[0].details.get("reply") == first[0].details.get("reply")
