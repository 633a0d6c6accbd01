"""The JSONL loader: good files load; every kind of bad line names file and line."""

from __future__ import annotations

import json

import pytest

from iro_blackbox.dataset import check_dataset, iter_examples, load_examples, prompt_text
from iro_blackbox.errors import InputError


def write(tmp_path, lines, name="d.jsonl", raw: bytes | None = None):
    p = tmp_path / name
    if raw is not None:
        p.write_bytes(raw)
    else:
        p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_good_file(tmp_path):
    p = write(
        tmp_path,
        [
            json.dumps({"prompt": "Say hi", "answer": "hi"}),
            "",
            json.dumps(
                {
                    "id": 7,
                    "messages": [
                        {"role": "system", "content": "be nice"},
                        {"role": "user", "content": "yo"},
                    ],
                }
            ),
        ],
    )
    exs = load_examples(p)
    assert [e.id for e in exs] == ["line-1", "7"]
    assert exs[0].prompt == "Say hi" and exs[0].data["answer"] == "hi"
    assert exs[1].is_chat and exs[1].line == 3
    assert prompt_text(exs[1].prompt) == "system: be nice\nuser: yo"


BAD = [
    ("{not json", "invalid JSON"),
    ('{"text": "x"}', "missing 'prompt'"),
    ('{"prompt": "  "}', "'prompt' is empty"),
    ('{"prompt": 5}', "'prompt' must be a string"),
    ('{"prompt": "a", "messages": []}', "not both"),
    ('{"messages": []}', "'messages' is empty"),
    ('{"messages": "hi"}', "'messages' must be a list"),
    ('{"messages": [{"role": "robot", "content": "x"}]}', "role must be one of"),
    (
        '{"messages": [{"role": "user", "content": 3}]}',
        "content: expected a string or a list of text parts, got 3",
    ),
    (
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}',
        "last message must be from the user",
    ),
    ('{"prompt": "x", "id": [1]}', "'id' must be a string or an integer"),
    ("[1, 2]", "expected a JSON object"),
]


@pytest.mark.parametrize("line,msg", BAD)
def test_bad_lines_name_file_and_line(tmp_path, line, msg):
    p = write(tmp_path, [json.dumps({"prompt": "fine"}), line])
    with pytest.raises(InputError) as ei:
        load_examples(p)
    assert f"{p}:2:" in str(ei.value)
    assert msg in str(ei.value)


def test_duplicate_ids(tmp_path):
    p = write(
        tmp_path,
        ['{"id": "a", "prompt": "x"}', '{"id": "b", "prompt": "y"}', '{"id": "a", "prompt": "z"}'],
    )
    with pytest.raises(InputError, match=r":3: duplicate id 'a' \(first on line 1\)"):
        load_examples(p)


def test_non_utf8(tmp_path):
    p = write(tmp_path, [], raw=b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r":2: not valid UTF-8"):
        load_examples(p)


def test_empty_and_missing(tmp_path):
    with pytest.raises(InputError, match="empty"):
        load_examples(write(tmp_path, [], raw=b""))
    with pytest.raises(InputError, match="file not found"):
        load_examples(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="is a folder"):
        load_examples(tmp_path)


def test_check_collects_all_errors(tmp_path):
    p = write(tmp_path, ['{"prompt": "a"}', "oops", '{"prompt": ""}', '{"prompt": "b", "x": 1}'])
    s = check_dataset(p)
    assert s.count == 2
    assert len(s.errors) == 2 and ":2:" in s.errors[0] and ":3:" in s.errors[1]
    assert s.fields == {"prompt": 2, "x": 1}


def test_streams_large_file(tmp_path):
    p = tmp_path / "big.jsonl"
    with p.open("w") as f:
        for i in range(20000):
            f.write(json.dumps({"prompt": f"p{i}"}) + "\n")
    it = iter_examples(p)
    first = next(it)
    assert first.prompt == "p0"
    assert sum(1 for _ in it) == 19999
