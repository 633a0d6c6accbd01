"""One registry for providers, graders, searches and job kinds: the built-ins are entry points of
iro-bb's own package; an outside package's entry points (a real dist-info on sys.path) are found
the same way, and a whole align runs on an outside provider and an outside grader by name."""

from __future__ import annotations

import json
import textwrap

import pytest

from iro_blackbox.errors import ConfigError
from iro_blackbox.registry import GRADERS, JOB_KINDS, PROVIDERS, SEARCHES

PLUGIN = '''
"""An outside package: a provider and a grader type for iro-bb."""
from iro_blackbox.graders import Grade
from iro_blackbox.providers import Chunk, ProviderStats, Usage
from iro_blackbox.utils import stable_hash

BUILT = []


class EchoProvider:
    """Answers every request with the words of its prompt, one per token, in a fixed order."""

    name = "echo"

    def __init__(self, model):
        self.model_name = model
        self.stats = ProviderStats()
        self.requests = []
        BUILT.append(self)

    async def extend(self, requests):
        self.requests += requests
        self.stats.requests += 1
        out = []
        for r in requests:
            words = str(r.prompt).split()
            chunks = []
            for j in range(r.n):
                start = len(r.prefix.split()) + r.sample_index + j
                take = [words[(start + i) % len(words)] for i in range(r.max_tokens)]
                chunks.append(Chunk(" " + " ".join(take), "length", usage=Usage(1, len(take))))
            out.append(chunks)
        return out

    def describe(self):
        return {"provider": "echo", "model": self.model_name}

    async def aclose(self):
        pass


class LengthGrader:
    def __init__(self, spec):
        self.name = spec.get("name", "length")
        self.spec = dict(spec)

    @property
    def spec_hash(self):
        return stable_hash(self.spec)

    async def grade(self, samples, items):
        return [Grade(float(len(s.split()))) for s in samples]


def length_grader(spec, ctx):
    return LengthGrader(spec)
'''

ENTRY_POINTS = """
[iro_blackbox.providers]
echo = outside_plugin:EchoProvider

[iro_blackbox.graders]
length = outside_plugin:length_grader
"""


@pytest.fixture
def outside_plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "outside_plugin.py").write_text(textwrap.dedent(PLUGIN))
    dist = site / "outside_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: outside-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    for reg in (PROVIDERS, GRADERS):
        reg.refresh()
    yield
    for reg in (PROVIDERS, GRADERS):
        reg.unregister("echo")
        reg.unregister("length")
        reg.refresh()


def test_builtins_are_entry_points():
    assert {"hf", "openai"} <= set(PROVIDERS.names())
    assert {
        "string_check",
        "text_similarity",
        "python",
        "score_model",
        "multi",
        "sentiment",
    } <= set(GRADERS.names())
    assert SEARCHES.names() == ["best_of_n", "cbs", "rerank", "sample"]
    assert JOB_KINDS.get("align").name == "align" and JOB_KINDS.get("generate").name == "generate"
    with pytest.raises(ConfigError, match="unknown provider 'nope': choose one of .*hf.*openai"):
        PROVIDERS.get("nope")


def test_registered_at_run_time_and_forgotten():
    class Mine:
        pass

    PROVIDERS.register("mine", Mine)
    try:
        assert PROVIDERS.get("mine") is Mine and "mine" in PROVIDERS.names()
    finally:
        PROVIDERS.unregister("mine")
    assert "mine" not in PROVIDERS
    with pytest.raises(ConfigError, match="not usable"):
        JOB_KINDS.register("broken", object())


def test_broken_plugin_is_one_clear_error(tmp_path, monkeypatch):
    site = tmp_path / "site"
    dist = site / "broken_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[iro_blackbox.searches]\nbeam = no_such_module:beam\n")
    monkeypatch.syspath_prepend(str(site))
    SEARCHES.refresh()
    try:
        with pytest.raises(ConfigError, match="cannot load search 'beam' from no_such_module:beam"):
            SEARCHES.get("beam")
    finally:
        SEARCHES.refresh()


def test_align_on_an_outside_provider_and_grader(outside_plugin, tmp_path, tiny_bert_dir):
    """Nothing injected: the run names its provider and grader, the registry finds them."""
    import outside_plugin as plugin

    from iro_blackbox import align

    train, evals = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train.write_text(
        "".join(json.dumps({"prompt": f"one two three four {i}"}) + "\n" for i in range(4))
    )
    evals.write_text(json.dumps({"prompt": "five six seven"}) + "\n")
    res = align(
        train,
        eval=str(evals),
        provider="echo",
        model="echo-1",
        grader='{"type": "length", "name": "words"}',
        iterations=1,
        w=2,
        k=2,
        l=4,
        max_tokens=8,
        value_backbone=str(tiny_bert_dir),
        value_epochs=1,
        db=str(tmp_path / "s.db"),
        out=str(tmp_path / "run"),
        run_name="outside",
        progress=False,
    )
    assert [i["stage"] for i in res.iterations] == ["done", "done"]
    (provider,) = plugin.BUILT
    assert provider.model_name == "echo-1" and provider.requests
    # every answer is 8 words long (max_tokens, one word per token): the grader's reward
    assert res.metrics["base_mean_reward"] == 8.0 and res.metrics["iro_mean_reward"] == 8.0
