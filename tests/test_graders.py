"""Graders on real inputs: spec loading and validation, string_check, text_similarity, sentiment,
templates, multi formulas, the registry, spec hashes and the grade cache on a real SQLite file."""

from __future__ import annotations

import asyncio
import json

import pytest

from iro_blackbox.errors import ConfigError, InputError
from iro_blackbox.graders import (
    CachedGrader,
    Grade,
    Grader,
    load_grader,
)
from iro_blackbox.graders.common import BaseGrader, read_common
from iro_blackbox.graders.formula import Formula, FormulaError
from iro_blackbox.graders.spec import SpecReader
from iro_blackbox.registry import GRADERS


def grade(grader, samples, items):
    return asyncio.run(grader.grade(samples, items))


def scores(grades):
    return [g.score for g in grades]


# --- loading specs ---------------------------------------------------------------------------


def test_load_from_name_file_inline_text_and_dict(tmp_path):
    spec = {"type": "string_check", "name": "exact", "reference": "{{ item.a }}", "operation": "eq"}
    f = tmp_path / "g.json"
    f.write_text(json.dumps(spec))
    from_file = load_grader(str(f))
    from_path = load_grader(f)
    from_text = load_grader(json.dumps(spec))
    from_dict = load_grader(spec)
    wrapped = load_grader({"grader": spec})  # OpenAI's fine-tuning job wrapper
    hashes = {g.spec_hash for g in (from_file, from_path, from_text, from_dict, wrapped)}
    assert len(hashes) == 1
    assert isinstance(from_file, Grader) and from_file.name == "exact"
    assert load_grader("sentiment").name == "sentiment"


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            {"type": "string_check", "name": "tone", "reference": "x", "operation": "eqq"},
            "grader 'tone': unknown operation 'eqq' in key 'operation' (choose eq, ne, like, ilike)",
        ),
        (
            {
                "type": "string_check",
                "name": "tone",
                "reference": "x",
                "operation": "eq",
                "inptu": 1,
            },
            "grader 'tone': unknown key 'inptu' (did you mean 'input'?",
        ),
        (
            {"type": "string_check", "name": "tone", "refrence": "x", "operation": "eq"},
            "grader 'tone': missing required key 'reference' (found unknown key 'refrence'",
        ),
        (
            {"type": "string_check", "name": "t", "reference": "{{ answer }}", "operation": "eq"},
            "grader 't': bad template expression '{{ answer }}' in key 'reference'",
        ),
        (
            {
                "type": "string_check",
                "name": "t",
                "reference": "{{ sample.text }}",
                "operation": "eq",
            },
            "bad template expression '{{ sample.text }}' in key 'reference' (sample has output_text",
        ),
        (
            {"type": "string_check", "name": "t", "reference": "{{ item.a", "operation": "eq"},
            "grader 't': unclosed '{{' in key 'reference'",
        ),
        (
            {"type": "string_check", "name": "t", "reference": 5, "operation": "eq"},
            "grader 't': expected a string, got int 5 in key 'reference'",
        ),
        (
            {"type": "text_similarity", "name": "s", "reference": "x", "evaluation_metric": "cos"},
            "grader 's': unknown metric 'cos' in key 'evaluation_metric' (choose cosine, fuzzy_match",
        ),
        (
            {
                "type": "text_similarity",
                "name": "s",
                "reference": "x",
                "evaluation_metric": "meteor",
                "embedding_model": "minilm-l6",
            },
            "grader 's': unknown key 'embedding_model'",
        ),
        ({"type": "sentiments"}, "unknown grader type 'sentiments' in key 'type'"),
        ({"name": "x"}, "grader 'x': missing required key 'type'"),
        (
            {"type": "sentiment", "normalize": "yes"},
            "grader 'sentiment': expected true or false, got str 'yes' in key 'normalize'",
        ),
        (
            {"type": "sentiment", "error_score": "low"},
            "expected a number, got str 'low' in key 'error_score'",
        ),
        (
            {"type": "python", "name": "p", "source": "def grade(s, i):\n    return (1\n"},
            "grader 'p': python syntax error at line 2",
        ),
        (
            {"type": "python", "name": "p", "source": "def score(s, i):\n    return 1\n"},
            "grader 'p': no top-level function 'grade' in key 'source'",
        ),
        (
            {"type": "python", "name": "p", "source": "def grade(s, i): return 1", "timeout": 0},
            "grader 'p': value 0 must be > 0.0 in key 'timeout'",
        ),
        (
            {"type": "python", "name": "p"},
            "grader 'p': give exactly one of 'source' (code) or 'file'",
        ),
        (
            {"type": "python", "name": "p", "file": "no/such/grader.py"},
            "grader 'p': cannot read",
        ),
        (
            {
                "type": "score_model",
                "name": "j",
                "input": "{{ sample.output_text }}",
                "model": "m",
                "range": [10, 0],
            },
            "grader 'j': expected [low, high] with low < high, got [10, 0] in key 'range'",
        ),
        (
            {"type": "score_model", "name": "j", "input": "x", "model": "m", "provider": "nope"},
            "grader 'j': unknown provider 'nope' in key 'provider'",
        ),
        (
            {
                "type": "score_model",
                "name": "j",
                "input": "x",
                "model": "m",
                "sampling_params": {"temperature": -1},
            },
            "grader 'j': value -1 must be >= 0.0 in key 'sampling_params.temperature'",
        ),
        (
            {
                "type": "score_model",
                "name": "j",
                "input": [{"role": "judge", "content": "x"}],
                "model": "m",
            },
            "grader 'j': unknown role 'judge' in key 'input[0].role'",
        ),
        (
            {
                "type": "score_model",
                "name": "j",
                "input": "x",
                "model": "m",
                "api_key_env": "IRO_TEST_SURELY_UNSET_KEY",
            },
            "environment variable 'IRO_TEST_SURELY_UNSET_KEY' is not set in key 'api_key_env'",
        ),
        (
            {
                "type": "score_model",
                "name": "j",
                "input": "x",
                "model": "m",
                "provider_options": {"api_key": "sk-123"},
            },
            "grader 'j': secrets do not belong in a spec in key 'provider_options'",
        ),
        (
            {
                "type": "score_model",
                "name": "j",
                "input": "x",
                "model": "m",
                "provider_options": {"colour": "blue"},
            },
            "grader 'j': provider 'openai' takes no option 'colour' in key "
            "'provider_options.colour'",
        ),
        (
            {
                "type": "multi",
                "name": "c",
                "graders": {"tone": {"type": "sentiment"}},
                "calculate_output": "tone + lenght",
            },
            "grader 'c': unknown name 'lenght' in key 'calculate_output' (graders: tone)",
        ),
        (
            {
                "type": "multi",
                "name": "c",
                "graders": {"tone": {"type": "sentiment"}},
                "calculate_output": "__import__('os').system('true')",
            },
            "is not allowed in key 'calculate_output'",
        ),
        (
            {
                "type": "multi",
                "name": "c",
                "graders": {"tone": {"type": "string_check", "reference": "x", "operation": "eqq"}},
                "calculate_output": "tone",
            },
            "grader 'c.tone': unknown operation 'eqq' in key 'operation'",
        ),
        (
            {"type": "multi", "name": "c", "graders": {}, "calculate_output": "1"},
            "grader 'c': no graders in key 'graders'",
        ),
        (
            {
                "type": "score_model",
                "name": "j",
                "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}],
                "model": "m",
            },
            "grader 'j': key 'input[0].content'[0]: a content part of type 'input_image' is not "
            "supported",
        ),
        (
            {
                "type": "python",
                "name": "p",
                "source": "def grade(s, i): return 1",
                "pass_threshold": "hi",
            },
            "expected a number, got str 'hi' in key 'pass_threshold'",
        ),
        (
            {
                "type": "multi",
                "name": "c",
                "graders": [{"type": "sentiment", "name": "my tone"}],
                "calculate_output": "1",
            },
            "grader 'c': name 'my tone' is not usable in a formula in key 'graders'",
        ),
    ],
)
def test_invalid_specs_name_the_bad_key(spec, message):
    with pytest.raises(ConfigError) as e:
        load_grader(spec)
    assert message in str(e.value)


def test_spec_source_errors(tmp_path):
    bad = tmp_path / "g.json"
    bad.write_text('{\n  "type": "string_check",\n    "name" "x"\n}\n')
    with pytest.raises(ConfigError, match=rf"grader spec {bad}: invalid JSON at line 3 col 12"):
        load_grader(str(bad))
    with pytest.raises(ConfigError, match=r"grader spec \(inline JSON\): invalid JSON at line 1"):
        load_grader('{"type": }')
    with pytest.raises(ConfigError, match="grader spec file not found"):
        load_grader(str(tmp_path / "missing.json"))
    with pytest.raises(
        ConfigError,
        match=r"unknown grader 'sentimnt': did you mean 'sentiment'\? give a grader type",
    ):
        load_grader("sentimnt")
    with pytest.raises(ConfigError, match="a grader spec is a JSON object, got list"):
        load_grader("[1, 2]")


# --- string_check / text_similarity / sentiment ----------------------------------------------


def test_string_check_operations():
    items = [{"answer": "Paris"}] * 4
    samples = ["Paris", "paris", "The capital is Paris.", "the capital is paris"]
    want = {
        "eq": [1, 0, 0, 0],
        "ne": [0, 1, 1, 1],
        "like": [1, 0, 1, 0],
        "ilike": [1, 1, 1, 1],
    }
    for op, expected in want.items():
        g = load_grader(
            {"type": "string_check", "name": op, "reference": "{{ item.answer }}", "operation": op}
        )
        assert scores(grade(g, samples, items)) == [float(x) for x in expected], op


def test_templates_nested_fields_json_and_missing_fields():
    g = load_grader(
        {
            "type": "string_check",
            "name": "nested",
            "input": "{{ sample.output_json.city }}",
            "reference": "{{ item.meta.answers.0 }}",
            "operation": "eq",
        }
    )
    items = [{"meta": {"answers": ["Oslo", "Bergen"]}}] * 3 + [{"meta": {}}]
    samples = ['{"city": "Oslo"}', '{"city": "Bergen"}', "Oslo, not JSON", '{"city": "Oslo"}']
    out = grade(g, samples, items)
    assert scores(out[:2]) == [1.0, 0.0]
    assert out[2].error and "sample.output_json is null" in out[2].error
    assert out[3].error == "template in key 'reference': item.meta has no field 'answers'"
    assert out[3].score == 0.0
    # the same check, before any generation, against the dataset's records
    g.check_items(items[:3])
    with pytest.raises(ConfigError, match=r"item 3 has no field 'item.meta.answers.0'"):
        g.check_items(items)


def test_template_renders_non_strings_as_json():
    g = load_grader(
        {
            "type": "string_check",
            "name": "t",
            "input": "{{ sample.output_text }}",
            "reference": "n={{ item.n }} tags={{ item.tags }}",
            "operation": "eq",
        }
    )
    out = grade(g, ['n=3 tags=["a", "b"]'], [{"n": 3, "tags": ["a", "b"]}])
    assert out[0].score == 1.0 and out[0].error is None


def test_text_similarity_metrics():
    ref = {"ref": "the cat sat on a mat"}
    samples = ["the cat sat on a mat", "the cat sat on the mat", "completely unrelated words"]

    def run(metric, **extra):
        g = load_grader(
            {
                "type": "text_similarity",
                "name": metric,
                "reference": "{{ item.ref }}",
                "evaluation_metric": metric,
                **extra,
            }
        )
        return grade(g, samples, [ref] * 3)

    for metric in ("fuzzy_match", "bleu", "gleu", "rouge_1", "rouge_2", "rouge_l"):
        same, close, far = scores(run(metric))
        assert same == pytest.approx(1.0), metric
        assert 0.0 < close < 1.0, metric
        assert far < close, metric
        assert 0.0 <= far <= 1.0, metric
    # by hand: 5 of 6 unigrams shared both ways -> F = 5/6; Indel similarity 2*19 / (20 + 22)
    assert scores(run("rouge_1"))[1] == pytest.approx(5 / 6)
    assert scores(run("fuzzy_match"))[1] == pytest.approx(38 / 42)
    assert scores(run("rouge_l"))[2] == 0.0
    passed = run("fuzzy_match", pass_threshold=0.95)
    assert [g.details["passed"] for g in passed] == [True, False, False]


def test_sentiment_builtin_orders_texts_and_normalizes():
    g = load_grader("sentiment")
    texts = ["I love this wonderful, happy day!", "The table is brown.", "This is awful and sad."]
    pos, neutral, neg = scores(grade(g, texts, [{}] * 3))
    assert pos > 0.5 and neg < -0.3 and neutral == 0.0
    gn = load_grader({"type": "sentiment", "normalize": True})
    assert scores(grade(gn, texts, [{}] * 3)) == pytest.approx([(pos + 1) / 2, 0.5, (neg + 1) / 2])
    assert gn.spec_hash != g.spec_hash


def test_grade_checks_batch_shape():
    g = load_grader("sentiment")
    with pytest.raises(InputError, match="got 2 samples but 1 items"):
        grade(g, ["a", "b"], [{}])
    assert grade(g, [], []) == []


# --- multi ------------------------------------------------------------------------------------


def test_multi_formula_combines_sub_graders():
    spec = {
        "type": "multi",
        "name": "combo",
        "graders": {
            "tone": {"type": "sentiment"},
            "exact": {
                "type": "string_check",
                "reference": "{{ item.answer }}",
                "operation": "ilike",
            },
            "sim": {
                "type": "text_similarity",
                "reference": "{{ item.answer }}",
                "evaluation_metric": "fuzzy_match",
            },
        },
        "calculate_output": "0.5*tone + 0.3*exact^2 + 0.2*min(sim, 0.5) - abs(-0.1)",
    }
    g = load_grader(spec)
    samples = ["Great news, the answer is four!", "seven", "four"]
    items = [{"answer": "four"}] * 3
    out = grade(g, samples, items)
    parts = {
        name: scores(grade(load_grader({**sub, "name": name}), samples, items))
        for name, sub in spec["graders"].items()
    }
    for i, gr in enumerate(out):
        t, e, s = parts["tone"][i], parts["exact"][i], parts["sim"][i]
        assert gr.error is None
        assert gr.score == pytest.approx(0.5 * t + 0.3 * e**2 + 0.2 * min(s, 0.5) - 0.1)
        assert gr.details == pytest.approx({"tone": t, "exact": e, "sim": s})
    assert g.spec["graders"]["exact"]["name"] == "exact"


def test_multi_records_sub_errors_and_math_errors():
    g = load_grader(
        {
            "type": "multi",
            "name": "ratio",
            "error_score": -1,
            "graders": {
                "a": {"type": "string_check", "reference": "{{ item.x }}", "operation": "eq"},
                "b": {"type": "string_check", "reference": "yes", "operation": "like"},
            },
            "calculate_output": "b / a",
        }
    )
    out = grade(g, ["yes", "yes", "no"], [{"x": "yes"}, {"x": "nope"}, {}])
    assert out[0].score == 1.0 and out[0].error is None
    assert out[1].score == -1 and "ZeroDivisionError" in out[1].error
    assert out[2].score == -1 and out[2].error.startswith("a: template in key 'reference'")
    assert out[2].details["errors"]["a"]


def test_formula_evaluator_is_safe_and_exact():
    f = Formula.parse("2 ** 3 + 2^2 - -1 + max(a, b, 0.5) / sqrt(4) + floor(1.7) + ceil(0.2)", "ab")
    assert f.evaluate({"a": 0.1, "b": 0.3}) == pytest.approx(8 + 4 + 1 + 0.25 + 1 + 1)
    assert f.names == ["a", "b"]
    # ^ is a power with the usual precedence, as in OpenAI's formulas
    assert Formula.parse("1 + 2*a^2", "a").evaluate({"a": 3.0}) == 19.0
    for bad in (
        "a.__class__",
        "a if b else 1",
        "[a]",
        "'x'",
        "a < b",
        "open('f')",
        "a and b",
        "lambda: 1",
        "min()",
        "abs(a, b)",
        "True + a",
        "a(1)",
        "abs",
    ):
        with pytest.raises(FormulaError):
            Formula.parse(bad, "ab")
    with pytest.raises(OverflowError):
        Formula.parse("10 ** 10 ** 10", "").evaluate({})
    with pytest.raises(ValueError):
        Formula.parse("log(a)", "a").evaluate({"a": 0.0})


# --- registry, hashes, cache -------------------------------------------------------------------


class WordCountGrader(BaseGrader):
    """A third-party grader type, registered the same way as the built-ins."""

    @classmethod
    def from_spec(cls, spec, ctx):
        r = SpecReader(spec, ctx.label(spec.get("name", "word_count")))
        r.raw("type")
        name, error_score = read_common(r)
        r.integer("per", 1, lo=1)
        return cls(name=name, spec=r.finish(), label=r.label, error_score=error_score)

    def score_one(self, sample, item):
        return len(sample["output_text"].split()) / self.spec["per"]


def test_register_grader_type_and_use_it_in_multi():
    GRADERS.register("word_count", WordCountGrader.from_spec)
    g = load_grader({"type": "word_count", "per": 2})
    assert scores(grade(g, ["one two three four"], [{}])) == [2.0]
    m = load_grader(
        {"type": "multi", "graders": {"wc": {"type": "word_count"}}, "calculate_output": "wc * 10"}
    )
    assert scores(grade(m, ["a b c"], [{}])) == [30.0]
    with pytest.raises(ConfigError, match="unknown key 'pre'"):
        load_grader({"type": "word_count", "pre": 2})


def test_spec_hash_is_canonical(tmp_path):
    a = load_grader({"type": "string_check", "name": "x", "reference": "r", "operation": "eq"})
    b = load_grader(
        {
            "operation": "eq",
            "input": "{{ sample.output_text }}",
            "reference": "r",
            "name": "x",
            "type": "string_check",
            "error_score": 0,
        }
    )
    c = load_grader({"type": "string_check", "name": "x", "reference": "r", "operation": "ne"})
    assert a.spec_hash == b.spec_hash != c.spec_hash
    assert a.spec == b.spec
    m1 = load_grader({"type": "multi", "graders": {"x": a.spec}, "calculate_output": "x"})
    m2 = load_grader({"type": "multi", "graders": {"x": c.spec}, "calculate_output": "x"})
    assert m1.spec_hash != m2.spec_hash


def test_cached_grader_hits_on_repeat_and_survives_reopen(tmp_path, store):
    from iro_blackbox.store import open_store

    calls = tmp_path / "calls.txt"
    src = (
        "def grade(sample, item):\n"
        f"    with open({str(calls)!r}, 'a') as f:\n"
        "        f.write(sample['output_text'] + '\\n')\n"
        "    if item.get('boom'):\n"
        "        raise RuntimeError('boom')\n"
        "    return len(sample['output_text'])\n"
    )
    inner = load_grader({"type": "python", "name": "len", "source": src, "workers": 1})
    try:
        g = CachedGrader(inner, store)
        samples = ["a", "bb", "a", "ccc", "x"]
        items = [{}, {}, {}, {"k": 1}, {"boom": True}]
        first = grade(g, samples, items)
        assert scores(first) == [1.0, 2.0, 1.0, 3.0, 0.0]
        assert first[4].error == "RuntimeError: boom (line 5)"
        # the duplicate ("a", {}) was graded once
        assert calls.read_text().splitlines() == ["a", "bb", "ccc", "x"]
        assert (g.hits, g.misses) == (0, 5)
        second = grade(g, samples, items)
        assert scores(second) == scores(first)
        assert all(x.details.get("cached") for x in second[:4])
        # failures are not cached: "x" was graded again
        assert calls.read_text().splitlines() == ["a", "bb", "ccc", "x", "x"]
        assert g.hits == 4
        # another process (a fresh store handle on the same file) sees the same cache
        st2 = open_store(store.url)
        try:
            g2 = CachedGrader(inner, st2, cache_errors=True)
            third = grade(g2, ["ccc", "x", "new"], [{"k": 1}, {"boom": True}, {}])
            assert scores(third) == [3.0, 0.0, 3.0] and g2.hits == 1
            fourth = grade(g2, ["x"], [{"boom": True}])
            assert fourth[0].error == "RuntimeError: boom (line 5)" and g2.hits == 2
        finally:
            st2.close()
        # a different grader (another spec hash) does not see these entries
        other = CachedGrader(load_grader("sentiment"), store)
        grade(other, ["a"], [{}])
        assert other.hits == 0
    finally:
        inner.close()


def test_grade_dataclass_defaults():
    g = Grade(score=0.5)
    assert g.error is None and g.details == {}
