"""`iro-bb serve`'s HTTP layer with a real policy on a tiny random model: the official openai client,
streaming, seeds, n, stop, `iro` fields, batching of concurrent requests, auth, limits, and
OpenAI-style 4xx errors after which the server keeps serving."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import openai
import pytest
from _fx_jobs import ServerThread

KEY = "sk-serve-test"
MODEL = "iro-test"


@pytest.fixture(scope="module")
def server(tiny_policy):
    with ServerThread(tiny_policy, api_key=KEY, max_body_bytes=20_000) as srv:
        yield srv


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=120)


def raw(server, method, path, body=None, headers=None, data=None):
    """(status, parsed JSON) of one HTTP request, bypassing the openai client."""

    async def go():
        h = {"Authorization": f"Bearer {KEY}", **(headers or {})}
        async with aiohttp.ClientSession() as s:
            url = server.base_url.removesuffix("/v1") + path
            payload = data if data is not None else (json.dumps(body) if body is not None else None)
            async with s.request(method, url, data=payload, headers=h) as r:
                return r.status, await r.json(content_type=None)

    return asyncio.run(go())


def test_models_and_health(server, client):
    assert [m.id for m in client.models.list().data] == [MODEL]
    status, body = raw(server, "GET", "/health", headers={"Authorization": ""})
    assert status == 200 and body["status"] == "ok"


def test_completion_and_chat_with_the_openai_client(client):
    r = client.completions.create(model=MODEL, prompt="The sky is", max_tokens=8, seed=1)
    assert r.object == "text_completion" and r.model == MODEL and len(r.choices) == 1
    c = r.choices[0]
    assert isinstance(c.text, str) and c.text and c.finish_reason in ("stop", "length")
    assert 0 < r.usage.completion_tokens <= 8
    chat = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi!"}], max_tokens=8, seed=1
    )
    assert chat.object == "chat.completion" and chat.choices[0].message.role == "assistant"
    assert isinstance(chat.choices[0].message.content, str)


def test_seed_reproduces_and_stream_matches(client):
    kw = dict(
        model=MODEL,
        messages=[{"role": "user", "content": "Tell me about tea."}],
        max_tokens=12,
        seed=42,
        extra_body={"iro": {"w": 2, "k": 2, "l": 4}},
    )
    a = client.chat.completions.create(**kw).choices[0].message.content
    b = client.chat.completions.create(**kw).choices[0].message.content
    assert a == b
    events = list(
        client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True})
    )
    pieces = [
        e.choices[0].delta.content for e in events if e.choices and e.choices[0].delta.content
    ]
    assert "".join(pieces) == a
    assert events[0].choices[0].delta.role == "assistant"
    finals = [
        e.choices[0].finish_reason for e in events if e.choices and e.choices[0].finish_reason
    ]
    assert len(finals) == 1 and finals[0] in ("stop", "length")
    assert events[-1].choices == [] and events[-1].usage.completion_tokens > 0
    stream = client.completions.create(
        model=MODEL, prompt="Tell me about tea.", max_tokens=12, seed=42, stream=True
    )
    text = "".join(e.choices[0].text for e in stream)
    plain = client.completions.create(
        model=MODEL, prompt="Tell me about tea.", max_tokens=12, seed=42
    )
    assert text == plain.choices[0].text


def test_n_choices_and_unseeded_variety(client):
    r = client.completions.create(
        model=MODEL, prompt="Once upon a time", max_tokens=10, n=3, seed=5
    )
    assert [c.index for c in r.choices] == [0, 1, 2]
    one = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=10, seed=5)
    assert r.choices[0].text == one.choices[0].text  # choice 0 uses the request's seed
    assert len({c.text for c in r.choices}) > 1  # the others use other seeds
    many = client.completions.create(model=MODEL, prompt=["A", "B"], max_tokens=6, n=2)
    assert len(many.choices) == 4
    unseeded = {
        client.completions.create(model=MODEL, prompt="Hello", max_tokens=10).choices[0].text
        for _ in range(3)
    }
    assert len(unseeded) > 1  # no seed: answers vary, as with OpenAI


def test_stop_is_honoured(client):
    kw = dict(
        model=MODEL,
        prompt="Write a long sentence:",
        max_tokens=24,
        seed=9,
        extra_body={"iro": {"w": 1, "k": 1, "l": 6}},
    )
    full = client.completions.create(**kw).choices[0].text
    words = full.split()
    assert len(words) >= 4, full
    stop = " " + words[2]
    cut = client.completions.create(**kw, stop=[stop]).choices[0]
    assert stop not in cut.text
    assert cut.text == full[: full.index(stop)]
    assert cut.finish_reason == "stop"


def test_concurrent_requests_are_batched(tiny_policy, client):
    """Six concurrent requests, a batch of at most six and a window far longer than the test:
    the batch goes out exactly when the sixth arrives (no timing involved), as one call."""
    prompts = [f"Item number {i} is" for i in range(6)]
    with ServerThread(tiny_policy, api_key=KEY, batch_window_ms=3_600_000, max_batch=6) as srv:
        one = openai.OpenAI(base_url=srv.base_url, api_key=KEY, max_retries=0, timeout=600)
        with ThreadPoolExecutor(6) as ex:
            outs = list(
                ex.map(
                    lambda p: one.completions.create(model=MODEL, prompt=p, max_tokens=8, seed=3),
                    prompts,
                )
            )
        stats = srv.batcher.stats
        assert all(o.choices[0].text is not None for o in outs)
        assert stats.prompts == 6 and stats.calls == 1 and stats.sizes == [6]
    # the same prompt alone gives the same answer (batching changes nothing but speed)
    alone = client.completions.create(model=MODEL, prompt=prompts[4], max_tokens=8, seed=3)
    assert alone.choices[0].text == outs[4].choices[0].text
    # the same prompts one at a time give the same answers (batching changes nothing but speed)
    alone = client.completions.create(model=MODEL, prompt=prompts[4], max_tokens=8, seed=3)
    assert alone.choices[0].text == outs[4].choices[0].text


BAD = [
    ({"prompt": "x", "max_tokens": "ten"}, "/v1/completions", "max_tokens", "must be an integer"),
    ({"prompt": "x", "max_tokens": 100000}, "/v1/completions", "max_tokens", "between 1 and 512"),
    ({"prompt": "x", "max_tokens": True}, "/v1/completions", "max_tokens", "must be an integer"),
    ({"prompt": "x", "temperature": "hot"}, "/v1/completions", "temperature", "must be a number"),
    ({"prompt": "x", "temperature": 7}, "/v1/completions", "temperature", "in [0, 2]"),
    ({"prompt": "x", "n": 0}, "/v1/completions", "n", "between 1 and"),
    ({"prompt": "x", "seed": -1}, "/v1/completions", "seed", ">="),
    ({"prompt": "x", "stop": 5}, "/v1/completions", "stop", "string or an array"),
    ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "/v1/completions", "stop", "at most 4"),
    ({"prompt": "x", "stream": "yes"}, "/v1/completions", "stream", "boolean"),
    ({"prompt": "x", "iro": {"w": 0}}, "/v1/completions", "iro.w", "between 1 and"),
    ({"prompt": "x", "iro": {"beams": 2}}, "/v1/completions", "iro", "takes w, k and l"),
    ({"prompt": "x", "iro": {"w": 16, "k": 16}}, "/v1/completions", "iro", "at most 64"),
    ({"prompt": [1, 2, 3]}, "/v1/completions", "prompt", "token-id prompts"),
    ({"prompt": {"text": "x"}}, "/v1/completions", "prompt", "must be a string"),
    ({"max_tokens": 4}, "/v1/completions", "prompt", "provide a 'prompt'"),
    ({"prompt": "x", "echo": True}, "/v1/completions", "echo", "not supported"),
    ({"messages": "hi"}, "/v1/chat/completions", "messages", "non-empty array"),
    ({"messages": []}, "/v1/chat/completions", "messages", "non-empty array"),
    ({}, "/v1/chat/completions", "messages", "provide 'messages'"),
    (
        {"messages": [{"role": "robot", "content": "x"}]},
        "/v1/chat/completions",
        "messages[0].role",
        "must be one of",
    ),
    (
        {"messages": [{"role": "user", "content": 3}]},
        "/v1/chat/completions",
        "messages[0].content",
        "must be a string",
    ),
    (
        {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]},
        "/v1/chat/completions",
        "messages",
        "last message",
    ),
    (
        {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]},
        "/v1/chat/completions",
        "tools",
        "not supported",
    ),
    ([1, 2], "/v1/chat/completions", None, "must be a JSON object"),
    # the typed models: Field ranges, Literal roles, content parts discriminated by `type`
    ({"prompt": "x", "top_p": 0}, "/v1/completions", "top_p", "must be in (0, 1], got 0"),
    ({"prompt": "x", "temperature": -0.5}, "/v1/completions", "temperature", "in [0, 2]"),
    ({"prompt": "x", "iro": {"l": 9999}}, "/v1/completions", "iro.l", "between 1 and 512"),
    ({"prompt": [[1, 2], [3]]}, "/v1/completions", "prompt", "token-id prompts"),
    ({"prompt": []}, "/v1/completions", "prompt", "non-empty array of strings"),
    ({"prompt": None}, "/v1/completions", "prompt", "provide a 'prompt'"),
    ({"prompt": "x", "stop": ["a", 1]}, "/v1/completions", "stop", "string or an array"),
    (
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
        "/v1/chat/completions",
        "messages[0].content",
        "messages[0].content[0]: only text parts are supported",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "x"}]}]},
        "/v1/chat/completions",
        "messages[0].content",
        "messages[0].content[1]: only text parts",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
        "/v1/chat/completions",
        "messages[0].content",
        "messages[0].content[0].text must be a string, got number",
    ),
    (
        {"messages": [{"role": "user", "content": "x"}, {"content": "y"}]},
        "/v1/chat/completions",
        "messages[1].role",
        "provide 'messages[1].role'",
    ),
    ({"messages": [3]}, "/v1/chat/completions", "messages[0]", "must be an object, got number"),
    (
        {"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 0},
        "/v1/chat/completions",
        "max_completion_tokens",
        "between 1 and 512, got 0",
    ),
    (
        {"messages": [{"role": "tool", "content": "x"}]},
        "/v1/chat/completions",
        "messages[0].role",
        "'system', 'developer', 'user' or 'assistant', got 'tool'",
    ),
]


@pytest.mark.parametrize(
    "body,path,param,needle", BAD, ids=[f"{b[1]}:{b[2]}:{i}" for i, b in enumerate(BAD)]
)
def test_bad_requests_get_openai_style_400(server, body, path, param, needle):
    if isinstance(body, dict):
        body = {"model": MODEL, **body}
    status, out = raw(server, "POST", path, body)
    assert status == 400, out
    err = out["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param
    assert needle in err["message"], err["message"]


def test_typed_requests_parse_to_one_request():
    """What the models accept: text parts joined, a single stop string, caps from the Limits."""
    from iro_blackbox.serve.schemas import Limits, parse_chat, parse_completion

    parts = [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "there"}]
    req = parse_chat(
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": parts}],
         "stop": "\n", "temperature": 1, "iro": {"w": 2, "k": 3}},
        MODEL, Limits(),
    )  # fmt: skip
    assert req.prompts == [[{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "Hello, there"}]]  # fmt: skip
    assert req.stop == ["\n"] and req.temperature == 1.0 and (req.w, req.k) == (2, 3)
    assert isinstance(req.temperature, float)
    small = Limits(max_tokens=16, max_n=2)
    req = parse_completion(
        {"prompt": ["a", "b"], "max_tokens": 16, "n": 2, "seed": 0}, MODEL, small
    )
    assert (req.prompts, req.max_tokens, req.n, req.seed) == (["a", "b"], 16, 2, 0)
    from iro_blackbox.serve import ApiError

    with pytest.raises(ApiError, match="'max_tokens' must be between 1 and 16, got 17"):
        parse_completion({"prompt": "a", "max_tokens": 17}, MODEL, small)


def test_malformed_auth_size_and_paths_then_still_serving(server, client):
    status, out = raw(server, "POST", "/v1/completions", data=b'{"model": "iro-test", "prompt": ')
    assert status == 400 and "not valid JSON" in out["error"]["message"]
    status, out = raw(server, "POST", "/v1/completions", data=b"\xff\xfe\x00")
    assert status == 400 and out["error"]["type"] == "invalid_request_error"
    status, out = raw(server, "POST", "/v1/completions", data=b"")
    assert status == 400 and "empty" in out["error"]["message"]
    status, out = raw(
        server, "POST", "/v1/completions", {"prompt": "x"}, headers={"Authorization": ""}
    )
    assert status == 401 and out["error"]["code"] == "invalid_api_key"
    status, out = raw(
        server,
        "POST",
        "/v1/completions",
        {"prompt": "x"},
        headers={"Authorization": "Bearer wrong"},
    )
    assert status == 401 and "incorrect API key" in out["error"]["message"]
    status, out = raw(server, "GET", "/v1/models", headers={"Authorization": "Basic " + KEY})
    assert status == 401
    big = json.dumps({"model": MODEL, "prompt": "x" * 30_000})
    status, out = raw(server, "POST", "/v1/completions", data=big.encode())
    assert status == 413 and "20000-byte limit" in out["error"]["message"]
    status, out = raw(server, "POST", "/v1/nothing", {"prompt": "x"})
    assert status == 404 and "unknown path" in out["error"]["message"]
    status, out = raw(server, "GET", "/v1/completions")
    assert status == 405 and "error" in out
    status, out = raw(server, "POST", "/v1/completions", {"model": "gpt-4o", "prompt": "x"})
    assert status == 404 and out["error"]["code"] == "model_not_found"
    # the official client maps these to its usual exceptions
    bad_key = openai.OpenAI(base_url=server.base_url, api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad_key.models.list()
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.completions.create(model=MODEL, prompt="x", max_tokens=10_000)
    # and the server still answers good requests
    r = client.completions.create(model=MODEL, prompt="Still there?", max_tokens=4, seed=2)
    assert r.choices[0].finish_reason in ("stop", "length")


def test_no_key_configured_means_open_and_loopback_default(tiny_policy):
    from iro_blackbox.serve import ServeConfig

    with ServerThread(tiny_policy) as srv:
        assert srv.base_url.startswith("http://127.0.0.1:")
        status, out = raw(srv, "GET", "/v1/models", headers={"Authorization": ""})
        assert status == 200 and out["data"][0]["id"] == MODEL
    assert ServeConfig(model_name="x").api_key is None


def test_serve_cli_bad_input(tmp_path, capsys):
    from iro_blackbox.cli.app import main

    db = str(tmp_path / "empty.db")
    for argv, needle in [
        (["serve", "--run", "nope", "--db", db], "no run named 'nope'"),
        (["serve", "--run", "nope", "--port", "0", "--db", db], "port must be in 1..65535"),
        (["serve", "--run", "nope", "--max-n", "0", "--db", db], "--max-n must be >= 1"),
    ]:
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and needle in err and "Traceback" not in err, (argv, err)


class Recording:
    """The real tiny policy, recording each agenerate call; `pieces` > 0 re-cuts each answer into
    that many chunks (to exercise multi-chunk SSE framing)."""

    def __init__(self, policy, pieces: int = 0):
        self.policy = policy
        self.pieces = pieces
        self.calls: list[tuple[list, int | None]] = []
        self.cfg = policy.cfg

    async def agenerate(self, prompts, **kw):
        self.calls.append((list(prompts), kw.get("seed")))
        gens = await self.policy.agenerate(prompts, **kw)
        if self.pieces:
            for g in gens:
                step = max(1, len(g.text) // self.pieces)
                g.chunks = [g.text[i : i + step] for i in range(0, len(g.text), step)]
        return gens


def test_batcher_groups_dedupes_and_splits(tiny_policy):
    from iro_blackbox.serve import Batcher, GenParams

    async def go():
        rec = Recording(tiny_policy)
        b = Batcher(rec, window=0.05, max_batch=2)
        params = GenParams(max_tokens=4, w=1, k=1, l=4)
        a, bb, c = "Alpha", "Beta", "Gamma"
        # unseeded copies of one prompt go to different calls (different seeds: they differ)
        await b.generate([a, a, bb], params, [None, None, None])
        assert sorted(len(p) for p, _ in rec.calls) == [1, 2]
        assert len({s for _, s in rec.calls}) == 2
        # identical seeded rows are computed once and shared
        rec.calls.clear()
        g = await b.generate([a, a], params, [5, 5])
        assert rec.calls == [([a], 5)] and g[0] is g[1]
        # concurrent requests inside the window share calls, at most max_batch prompts each
        rec.calls.clear()
        await asyncio.gather(*[b.generate([p], params, [None]) for p in (a, bb, c, "D", "E")])
        assert sorted(len(p) for p, _ in rec.calls) == [1, 2, 2]
        # serial mode: one prompt per call
        rec.calls.clear()
        s = Batcher(rec, serial=True)
        await asyncio.gather(*[s.generate([p], params, [None]) for p in (a, bb, c)])
        assert [len(p) for p, _ in rec.calls] == [1, 1, 1]

    asyncio.run(go())


def test_stream_sends_each_chunk_then_done(tiny_policy):
    with ServerThread(Recording(tiny_policy, pieces=3), api_key=KEY) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key=KEY, max_retries=0)
        kw = dict(model=MODEL, prompt="Count with me:", max_tokens=12, seed=4)
        whole = client.completions.create(**kw).choices[0].text
        events = list(client.completions.create(**kw, stream=True))
        texts = [e.choices[0].text for e in events]
        assert len([t for t in texts if t]) >= 3 and "".join(texts) == whole
        assert events[-1].choices[0].finish_reason in ("stop", "length")

        async def raw_stream():
            async with aiohttp.ClientSession() as s:
                body = {**kw, "stream": True}
                hdr = {"Authorization": f"Bearer {KEY}"}
                async with s.post(srv.base_url + "/completions", json=body, headers=hdr) as r:
                    return r.headers["Content-Type"], (await r.read()).decode()

        ctype, text = asyncio.run(raw_stream())
        assert ctype.startswith("text/event-stream")
        assert text.endswith("data: [DONE]\n\n") and text.count("data: ") == len(events) + 1


def test_trim_stop_keeps_chunk_boundaries():
    from iro_blackbox.serve.app import _trim_stop

    assert _trim_stop("ab cd ef", ["ab ", "cd ef"], [" ef"], "length") == (
        "ab cd",
        ["ab ", "cd"],
        "stop",
    )
    assert _trim_stop("ab cd", ["ab ", "cd"], ["zz"], "length") == (
        "ab cd",
        ["ab ", "cd"],
        "length",
    )
    assert _trim_stop("ab cd", ["ab ", "cd"], ["b", "d"], "length") == ("a", ["a"], "stop")


def test_default_max_tokens_is_the_runs_own_capped_by_the_limit():
    from types import SimpleNamespace

    from iro_blackbox.iro.config import AlignConfig
    from iro_blackbox.serve.run import default_limits

    cfg = AlignConfig.from_dict({"data": "x.jsonl", "max_tokens": 32, "l": 8})
    assert default_limits(SimpleNamespace(cfg=cfg), 512).default_max_tokens == 32
    assert default_limits(SimpleNamespace(cfg=cfg), 16).default_max_tokens == 16
