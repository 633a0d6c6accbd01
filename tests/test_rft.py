"""From OpenAI RFT unchanged: its documented grader examples load and score as documented,
`grader test` / `grader validate` / `data check --grader` answer like /graders/run, an RFT job
maps onto align (and runs end to end, slow), every bad input is one line."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from iro_blackbox.cli.app import main
from iro_blackbox.dataset import load_examples
from iro_blackbox.errors import ConfigError, InputError
from iro_blackbox.graders import load_grader
from iro_blackbox.graders.fields import fields_read, missing_fields
from iro_blackbox.graders.run import run_grader
from iro_blackbox.iro.rft import read_rft_job

DOCS = Path(__file__).parent / "data" / "openai_graders"
RFT = Path(__file__).parent / "data" / "rft"
BEAR = "fuzzy wuzzy was a bear"

# (file, item, sample, the score the documentation gives)
CASES = [
    ("string_check.json", {"label": "Paris"}, "Paris", 1.0),
    ("string_check.json", {"label": "Paris"}, "paris", 0.0),
    ("text_similarity.json", {"reference_answer": BEAR}, BEAR, 1.0),
    ("python_rapidfuzz.json", {"reference_answer": BEAR}, BEAR, 1.0),
    ("python_rapidfuzz.json", {"reference_answer": BEAR}, "Fuzzy Wuzzy was a bear!", 1.0),
    ("python_label.json", {"label": "positive"}, "positive", 1.0),
    ("python_label.json", {"label": "positive"}, "negative", 0.0),
]


def grade(g, samples, items):
    async def go():
        try:
            return await g.grade(samples, items)
        finally:
            await g.aclose()

    return asyncio.run(go())


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name,item,sample,expected", CASES)
def test_documented_examples_score_as_documented(name, item, sample, expected):
    g = load_grader(DOCS / name)  # the file as the docs print it: nothing added
    (out,) = grade(g, [sample], [item])
    assert out.error is None and out.score == pytest.approx(expected)


def test_documented_score_model_runs_unchanged_and_asks_for_structured_output(scripted_judge):
    """The /graders/run reference's score_model example: content parts, sampling_params."""
    scripted_judge.structured = True
    g = load_grader(DOCS / "score_model.json", provider_factory=lambda n, **k: scripted_judge)
    # the scripted judge answers the last line of the prompt: the model answer, a number here
    (out,) = grade(g, ["1"], [{"reference_answer": BEAR}])
    req = scripted_judge.calls[0][0]
    assert req.prompt[0]["content"].startswith("Score how close the reference answer")
    assert f"Reference answer: {BEAR}" in req.prompt[0]["content"]
    assert req.params.temperature == 1 and req.params.seed == 42
    assert req.response_format["json_schema"]["schema"]["required"] == ["result"]
    assert out.score == 1.0 and out.error is None and "warning" not in out.details
    (out,) = grade(g, ["2"], [{"reference_answer": BEAR}])
    assert out.error == "judge score 2 outside range [0, 1]"  # range defaults to [0, 1]


def test_documented_multi_tool_call_grader_loads_and_says_what_text_models_lack():
    g = load_grader(DOCS / "multi_tool_call.json")
    assert fields_read(g) == {"name": "template", "arguments": "template"}
    (a,) = run_grader(g, ["get_weather"], [{"name": "get_weather", "arguments": "{}"}])
    # `sample.output_tools[0]` parses; a text model makes no tool calls, so it is empty
    assert a["reward"] == 0.0 and "output_tools has no field '0'" in a["error"]
    assert a["metadata"]["errors"]["invalid_variable_error"] is True


def test_documented_list_form_multi_names_what_is_wrong():
    # the API reference's multi example: a list of graders whose names are not formula names
    with pytest.raises(ConfigError, match="name 'example text similarity grader' is not usable"):
        load_grader(DOCS / "multi_api_reference.json")


def test_pass_threshold_everywhere_and_list_form_multi():
    spec = {
        "type": "multi",
        "name": "combo",
        "pass_threshold": 0.75,
        "graders": [
            {
                "type": "string_check",
                "name": "exact",
                "reference": "{{ item.a }}",
                "operation": "eq",
            },
            {
                "type": "python",
                "name": "short",
                "pass_threshold": 0.5,
                "source": "def grade(sample, item):\n    return 1.0 if len(sample['output_text']) < 5 else 0.0\n",
            },
        ],
        "calculate_output": "0.5 * exact + 0.5 * short",
    }
    g = load_grader(spec)
    out = run_grader(g, ["ok", "ok but long", "no"], [{"a": "ok"}] * 3)
    assert [a["reward"] for a in out] == [1.0, 0.0, 0.5]
    assert [a["passed"] for a in out] == [True, False, False]
    assert out[2]["sub_rewards"] == {"exact": 0.0, "short": 1.0}
    short = load_grader(spec["graders"][1])
    assert [g.details["passed"] for g in grade(short, ["a", "abcdef"], [{}, {}])] == [True, False]


def test_meteor_uses_wordnet_synonyms():
    def meteor(a, b):
        g = load_grader(
            {
                "type": "text_similarity",
                "name": "m",
                "input": "{{ sample.output_text }}",
                "reference": "{{ item.ref }}",
                "evaluation_metric": "meteor",
            }
        )
        return grade(g, [a], [{"ref": b}])[0]

    same = meteor("the cat sat on the mat", "the cat sat on the mat")
    syn = meteor("the cat sat on the rug", "the cat sat on the carpet")  # rug ~ carpet in WordNet
    other = meteor("the cat sat on the banana", "the cat sat on the carpet")
    assert same.error is None and same.score > 0.99
    assert syn.error is None and syn.score > other.score  # a synonym counts, an unrelated word not


@pytest.mark.slow
def test_cosine_with_the_shipped_minilm():
    g = load_grader(
        {
            "type": "text_similarity",
            "name": "c",
            "input": "{{ sample.output_text }}",
            "reference": "{{ item.ref }}",
            "evaluation_metric": "cosine",
        }
    )
    ref = {"ref": "The weather is sunny and warm today."}
    same, close, far = grade(
        g,
        ["The weather is sunny and warm today.", "It is a warm, sunny day.", "Stock prices fell."],
        [ref] * 3,
    )
    assert same.score == pytest.approx(1.0, abs=1e-4)
    assert close.score > 0.5 > far.score and far.error is None


def test_rft_dataset_lines_are_read_as_they_are(tmp_path):
    ex = load_examples(RFT / "train.jsonl")
    assert ex[0].prompt[1]["content"].startswith("What colour is the sky")
    assert ex[0].data["meta"] == {"topic": "nature", "difficulty": 0}  # any JSON type
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps(
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}
        )
        + "\n"
    )
    with pytest.raises(
        InputError,
        match=r"bad.jsonl:1: messages\[0\].content\[0\]: a content part of type 'image_url'",
    ):
        load_examples(bad)


def test_grader_test_and_validate_commands(capsys, tmp_path):
    g = str(DOCS / "python_rapidfuzz.json")
    code, out, _ = cli(
        capsys,
        "grader",
        "test",
        g,
        "--sample",
        BEAR,
        "--item",
        json.dumps({"reference_answer": BEAR}),
        "--json",
    )
    a = json.loads(out)
    assert code == 0 and a["reward"] == 1.0 and a["metadata"]["type"] == "python"
    assert not any(v for k, v in a["metadata"]["errors"].items() if k.endswith("_error"))
    samples = tmp_path / "samples.jsonl"
    samples.write_text(
        json.dumps({"id": "line-2", "response": "Bees make honey."})
        + "\n"
        + json.dumps({"id": "line-1", "output_text": "no idea"})
        + "\n"
    )
    code, out, _ = cli(
        capsys, "grader", "test", g, "--data", str(RFT / "train.jsonl"), "--samples", str(samples)
    )
    assert code == 0 and "samples.jsonl:1" in out and "1.0000" in out and "2 sample(s)" in out
    code, out, _ = cli(capsys, "grader", "validate", g)
    assert code == 0 and "reads item.reference_answer (python)" in out and "image_tag" in out
    for argv, needle in (
        (["grader", "test", g], "give --sample TEXT"),
        (["grader", "test", g, "--sample", "x", "--item", "{nope"], "--item: invalid JSON"),
        (["grader", "test", g, "--samples", str(samples)], "--samples needs --data"),
        (["grader", "validate", str(DOCS / "multi_api_reference.json")], "not usable in a formula"),
        (["grader", "test", '{"type": "string_check"}', "--sample", "x"], "missing required key"),
    ):
        code, _, err = cli(capsys, *argv)
        assert code != 0 and needle in err, (argv, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err


def test_grader_test_fails_when_a_sample_failed_to_grade(capsys):
    g = '{"type": "string_check", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}", "operation": "eq"}'
    for extra in ([], ["--json"]):
        code, out, err = cli(capsys, "grader", "test", g, "--sample", "x", *extra)  # no item
        assert code != 0 and "item has no field 'answer'" in out, (out, err)
        errors = [x for x in err.splitlines() if x.startswith("error")]
        assert errors == ["error: 1 of 1 sample(s) failed to grade (see above)"], err
    code, _, _ = cli(capsys, "grader", "test", g, "--sample", "x", "--item", '{"answer": "x"}')
    assert code == 0


def test_data_check_reports_every_line_that_lacks_a_field_the_grader_reads(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(
        '{"prompt": "a", "reference_answer": "x"}\n{"prompt": "b"}\n{"prompt": "c", "label": 1}\n'
    )
    g = load_grader(DOCS / "python_rapidfuzz.json")
    assert [(e.line, f) for e, f in missing_fields(g, load_examples(data))] == [
        (2, "item.reference_answer"),
        (3, "item.reference_answer"),
    ]
    assert missing_fields(load_grader(DOCS / "python_label.json"), load_examples(data)) == []
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "iro_blackbox.cli.app",
            "data",
            "check",
            str(data),
            "--no-tokens",
            "--grader",
            str(DOCS / "python_rapidfuzz.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and "reads item.reference_answer" in r.stdout
    assert f"{data}:2: no field 'item.reference_answer'" in r.stderr
    assert f"{data}:3:" in r.stderr and "2 line(s) lack a field" in r.stderr
    assert "Traceback" not in r.stderr


def test_rft_job_maps_what_has_a_meaning_and_lists_the_rest(tmp_path):
    plan = read_rft_job(RFT / "job.json", given={"w": 2, "k": 2})
    assert plan.data == str((RFT / "train.jsonl").resolve())
    assert plan.options["eval"] == str((RFT / "valid.jsonl").resolve())
    assert json.loads(plan.options["grader"])["name"] == "Example python grader"
    assert plan.options["seed"] == 3 and plan.options["run_name"] == "nature-qa"
    assert plan.options["value_epochs"] == 1 and plan.options["rollouts"] == 4  # 1 x W*K
    unmapped = dict(plan.unmapped)
    assert "o4-mini" in unmapped["model"] and "hyperparameters.reasoning_effort" in unmapped
    job = json.loads((RFT / "job.json").read_text())
    for change, needle in (
        ({"training_file": "file-abc123"}, "is the OpenAI file id file-abc123: download it"),
        ({"method": {"type": "dpo", "dpo": {}}}, "iro-bb runs reinforcement jobs"),
        ({"trianing_file": "x"}, "unknown key 'trianing_file'"),
        (
            {"method": {"type": "reinforcement", "reinforcement": {}}},
            r"grader \(the grader object\) is required",
        ),
    ):
        p = tmp_path / "job.json"
        p.write_text(json.dumps({**job, **change}))
        for f in ("train.jsonl", "valid.jsonl"):
            shutil.copy(RFT / f, tmp_path / f)
        with pytest.raises(InputError, match=needle):
            read_rft_job(p)


@pytest.mark.slow
def test_rft_job_through_align_end_to_end(tmp_path, capsys):
    """An RFT dataset and grader, unchanged, through `align --from-rft` on the local SmolLM2."""
    db = str(tmp_path / "iro.db")
    code, out, err = cli(
        capsys,
        "align",
        "--from-rft",
        str(RFT / "job.json"),
        "--db",
        db,
        "--out",
        str(tmp_path / "run"),
        "--iterations",
        "1",
        "--w",
        "2",
        "--k",
        "2",
        "--l",
        "8",
        "--max-tokens",
        "16",
        "--quiet",
    )
    assert code == 0, err
    assert "hyperparameters.compute_multiplier" in out and "no counterpart" in out
    assert "run: nature-qa" in out and "held-out mean reward" in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["run"] == "nature-qa"
    code, out, _ = cli(capsys, "runs", "show", "nature-qa", "--db", db)
    assert code == 0 and "pi_1" in out
