"""One registry for providers, graders, searches and job kinds: the built-ins are entry points of
iro-bb's own package; an outside package's entry points (a real dist-info on sys.path) are found
the same way, and a whole align runs on an outside provider and an outside grader by name."""

from __future__ import annotations

import json
import textwrap

import pytest

from iro_blackbox.errors import ConfigError
from iro_blackbox.registry import (
    EXECUTORS,
    GRADERS,
    JOB_KINDS,
    PROVIDERS,
    SEARCHES,
    plugin_scope,
    use_plugins,
)
from iro_blackbox.testing import FakeProvider

PLUGIN = '''
"""An outside package: a provider and a grader type for iro-bb, the provider built on the fake
provider iro-bb ships for plugin authors."""
from iro_blackbox.graders import Grade
from iro_blackbox.testing import FakeProvider
from iro_blackbox.utils import stable_hash

BUILT = []


class EchoProvider(FakeProvider):
    """Answers every request with the words of its prompt, one per token, in a fixed order."""

    name = "echo"

    def __init__(self, model):
        super().__init__(model, stop_prob=0.0, script=self.echo)
        BUILT.append(self)

    @staticmethod
    def echo(r, j):
        words = str(r.prompt).split()
        start = len(r.prefix.split()) + r.sample_index + j
        take = [words[(start + i) % len(words)] for i in range(r.max_tokens)]
        return " " + " ".join(take), "length"


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


def install(site, name: str, entry_points: str, module: str | None = None) -> None:
    """A package `name` 0.1 on the path `site`: its dist-info (entry points) and its module."""
    site.mkdir(exist_ok=True)
    if module is not None:
        (site / f"{name}.py").write_text(textwrap.dedent(module))
    dist = site / f"{name}-0.1.dist-info"
    dist.mkdir()
    pkg = name.replace("_", "-")
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {pkg}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(entry_points)


@pytest.fixture
def all_plugins(monkeypatch):
    """Every installed package's entry points (the tests otherwise read only iro-bb's own)."""
    use_plugins("all")
    yield
    use_plugins(None)  # back to IRO_BB_PLUGINS=own (conftest)


@pytest.fixture
def outside_plugin(tmp_path, monkeypatch, all_plugins):
    site = tmp_path / "site"
    install(site, "outside_plugin", ENTRY_POINTS, PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    for reg in (PROVIDERS, GRADERS):
        reg.refresh()
    yield
    for reg in (PROVIDERS, GRADERS):
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
    PROVIDERS.register("mine", FakeProvider)
    try:
        assert PROVIDERS.get("mine") is FakeProvider and "mine" in PROVIDERS.names()
    finally:
        PROVIDERS.unregister("mine")
    assert "mine" not in PROVIDERS
    with pytest.raises(ConfigError, match="job kind 'broken'.*has no `name` string"):
        JOB_KINDS.register("broken", object())
    # a built-in name is only replaced on purpose
    with pytest.raises(ConfigError, match="provider 'openai' is provided by entry point 'openai = "
                       "iro_blackbox.providers.openai:OpenAIProvider' of package iro-bb"):  # fmt: skip
        PROVIDERS.register("openai", FakeProvider)
    PROVIDERS.register("openai", FakeProvider, override=True)
    try:
        assert PROVIDERS.get("openai") is FakeProvider
    finally:
        PROVIDERS.unregister("openai")
    assert PROVIDERS.get("openai").__name__ == "OpenAIProvider"


class NoExtend:
    def __init__(self, model):
        pass

    def describe(self):
        return {}

    async def aclose(self):
        pass


class SyncExtend(NoExtend):
    def extend(self, requests):
        return []


async def search_without_params(examples, provider):
    return []


def grader_of_one_argument(spec):
    return None


class ExecutorWithoutTrain:
    @classmethod
    def create(cls, cfg, store, provider=None, cancel_check=None):
        return cls()

    def driver_provider(self):
        return None

    async def search(self, *a):
        pass

    async def grade(self, *a):
        pass

    async def aclose(self):
        pass


@pytest.mark.parametrize(
    "registry,obj,needle",
    [
        (PROVIDERS, NoExtend, "has no extend()"),
        (PROVIDERS, SyncExtend, "extend(requests) is not an async method"),
        (PROVIDERS, "not a class", "not callable"),
        (PROVIDERS, lambda: None, "does not take (model=...)"),
        (SEARCHES, lambda *a, **k: [], "not an async function"),
        (SEARCHES, search_without_params, "does not take (examples, provider, scorer, params"),
        (GRADERS, grader_of_one_argument, "does not take (spec, ctx)"),
        (EXECUTORS, ExecutorWithoutTrain, "has no train()"),
        (EXECUTORS, FakeProvider, "has no create("),
        (JOB_KINDS, object(), "has no `name` string"),
    ],
)
def test_each_kind_is_checked_against_its_protocol(registry, obj, needle):
    with pytest.raises(ConfigError, match="does not follow the .* protocol") as e:
        registry.register("odd", obj)
    assert needle in str(e.value)
    assert "odd" not in registry


def test_broken_plugin_is_one_clear_error(tmp_path, monkeypatch, all_plugins):
    site = tmp_path / "site"
    install(site, "broken_plugin", "[iro_blackbox.searches]\nbeam = no_such_module:beam\n")
    install(site, "odd_plugin", "[iro_blackbox.searches]\nsync = odd_plugin:sync\n",
            "def sync(examples, provider, scorer, params, grader=None, on_result=None):\n"
            "    return []\n")  # fmt: skip
    monkeypatch.syspath_prepend(str(site))
    SEARCHES.refresh()
    try:
        with pytest.raises(ConfigError, match="cannot load search 'beam' from no_such_module:beam"):
            SEARCHES.get("beam")
        # loaded, but not a search: the error names the entry point and its package
        with pytest.raises(ConfigError, match="search 'sync' \\(entry point 'sync = "
                           "odd_plugin:sync' of package odd-plugin\\) does not follow the search "
                           "protocol: it is not an async function"):  # fmt: skip
            SEARCHES.get("sync")
    finally:
        SEARCHES.refresh()


SHADOW = """
[iro_blackbox.searches]
cbs = shadow_plugin:cbs
"""
SHADOW_MODULE = """
async def cbs(examples, provider, scorer, params, grader=None, on_result=None):
    return ["shadow"]
"""


def test_a_duplicate_name_is_an_error_unless_it_says_it_overrides(
    tmp_path, monkeypatch, all_plugins
):
    site = tmp_path / "site"
    install(site, "shadow_plugin", SHADOW, SHADOW_MODULE)
    monkeypatch.syspath_prepend(str(site))
    SEARCHES.refresh()
    try:
        with pytest.raises(ConfigError, match="search 'cbs' is declared more than once") as e:
            SEARCHES.get("cbs")
        msg = str(e.value)
        assert "iro_blackbox.search.cbs:cbs' of package iro-bb" in msg
        assert "shadow_plugin:cbs' of package shadow-plugin" in msg and "'cbs.override'" in msg
        assert SEARCHES.get("sample").__name__ == "sample"  # other names are not affected
        # the same package saying it overrides: its cbs wins, iro-bb's is not loaded
        (site / "shadow_plugin-0.1.dist-info" / "entry_points.txt").write_text(
            SHADOW.replace("cbs =", "cbs.override =")
        )
        SEARCHES.refresh()
        assert "cbs" in SEARCHES.names() and "cbs.override" not in SEARCHES.names()
        assert SEARCHES.get("cbs").__module__ == "shadow_plugin"
        # only iro-bb's own plugins: the outside package is not read at all
        use_plugins("own")
        assert plugin_scope() == "own"
        assert SEARCHES.get("cbs").__module__ == "iro_blackbox.search.cbs"
    finally:
        use_plugins(None)
        SEARCHES.refresh()


def test_the_plugin_scope_comes_from_the_environment(monkeypatch):
    assert plugin_scope() == "own"  # conftest: the tests read only iro-bb's own plugins
    monkeypatch.setenv("IRO_BB_PLUGINS", "all")
    assert plugin_scope() == "all"
    monkeypatch.setenv("IRO_BB_PLUGINS", "mine")
    with pytest.raises(ConfigError, match="IRO_BB_PLUGINS must be 'all' or 'own', got 'mine'"):
        plugin_scope()


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
