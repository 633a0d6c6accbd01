"""The IRO loop through the `openai` provider against the REAL llama-cpp-python server (same model
behind an API), with a pass-through proxy of the test's own that records every HTTP request."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from _fx_llama import free_port

PROMPTS = [
    "Write one sentence about a rainy Monday.",
    "Write one sentence about a queue at the post office.",
    "Write one sentence about a delayed train.",
    "Write one sentence about doing the laundry.",
    "Write one sentence about a broken umbrella.",
]


class CountingProxy:
    """Forwards every request to the upstream server; records (method, path, body, start, end)."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.calls: list[dict] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _run(self) -> None:
        from aiohttp import ClientSession, web

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            rec = {
                "method": request.method,
                "path": request.path,
                "body": body,
                "start": time.time(),
                "end": None,
            }
            self.calls.append(rec)
            url = (
                self.upstream + request.path_qs[len("/v1") :]
                if request.path.startswith("/v1")
                else self.upstream + request.path_qs
            )
            async with ClientSession() as s:
                async with s.request(
                    request.method,
                    url,
                    data=body,
                    headers={
                        "content-type": request.headers.get("content-type", "application/json")
                    },
                ) as r:
                    data = await r.read()
                    resp = web.Response(body=data, status=r.status, content_type=r.content_type)
            rec["end"] = time.time()
            return resp

        async def start() -> None:
            app = web.Application(client_max_size=10 * 2**20)
            app.router.add_route("*", "/{tail:.*}", handle)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._ready.set()

        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def generation_calls(self) -> list[dict]:
        return [
            c for c in self.calls if c["method"] == "POST" and c["path"].endswith(("/completions",))
        ]

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.fixture
def proxy(llama_server):
    p = CountingProxy(llama_server.base_url)
    yield p
    p.close()


@pytest.fixture
def data(tmp_path):
    train = tmp_path / "train.jsonl"
    evals = tmp_path / "eval.jsonl"
    train.write_text(
        "".join(json.dumps({"id": f"t{i}", "prompt": p}) + "\n" for i, p in enumerate(PROMPTS[:3]))
    )
    evals.write_text(
        "".join(json.dumps({"id": f"e{i}", "prompt": p}) + "\n" for i, p in enumerate(PROMPTS[3:]))
    )
    return train, evals


def api_options(base_url: str) -> dict:
    return dict(
        provider="openai",
        base_url=base_url,
        model="smollm2-135m-instruct",
        tokenizer="smollm2-135m-instruct",
        iterations=1,
        w=2,
        k=2,
        l=8,
        max_tokens=16,
        value_epochs=1,
        seed=5,
        concurrency=4,
    )


@pytest.mark.slow
def test_align_through_openai_provider_replays_from_cache(proxy, data, tmp_path):
    from iro_blackbox import align

    train, evals = data
    db = str(tmp_path / "api.db")
    opts = api_options(proxy.base_url)
    res = align(
        train,
        eval=str(evals),
        db=db,
        run_name="api-1",
        out=str(tmp_path / "o1"),
        progress=False,
        **opts,
    )
    assert [i["stage"] for i in res.iterations] == ["done", "done"]
    assert res.metrics["iro_mean_reward"] is not None
    first = len(proxy.generation_calls())
    assert first > 0
    # llama.cpp ignores n: every one of the W*K samples was its own request, none repeated
    bodies = [c["body"] for c in proxy.generation_calls()]
    assert len(set(bodies)) == len(bodies)

    # the same options under another run name: every response replays from the request cache
    proxy.calls.clear()
    res2 = align(
        train,
        eval=str(evals),
        db=db,
        run_name="api-2",
        out=str(tmp_path / "o2"),
        progress=False,
        **opts,
    )
    assert proxy.generation_calls() == []
    assert (
        res2.iterations[0]["metrics"]["eval_mean_reward"]
        == res.iterations[0]["metrics"]["eval_mean_reward"]
    )

    # the API key never reaches the store
    raw = open(db, "rb").read()
    assert b"sk-" not in raw


def _rows(db: str, sql: str) -> list:
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


@pytest.mark.slow
def test_sigkill_mid_iteration_then_resume(proxy, data, tmp_path):
    train, evals = data
    db = str(tmp_path / "kill.db")
    o = api_options(proxy.base_url)
    cmd = [
        sys.executable,
        "-m",
        "iro_blackbox.cli.app",
        "align",
        str(train),
        "--eval",
        str(evals),
        "--provider",
        "openai",
        "--base-url",
        o["base_url"],
        "--model",
        o["model"],
        "--tokenizer",
        o["tokenizer"],
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
        "--value-epochs",
        "1",
        "--seed",
        "5",
        "--concurrency",
        "2",
        "--run-name",
        "killme",
        "--out",
        str(tmp_path / "kout"),
        "--db",
        db,
        "-q",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    # kill once some training rollouts of iteration 1 are stored (mid-iteration)
    while time.time() < deadline:
        n = _rows(db, "SELECT count(*) FROM rollouts WHERE t=1 AND phase='train'")
        if n and n[0][0] >= 4:
            break
        assert p.poll() is None, p.stderr.read().decode()
        time.sleep(0.05)
    else:
        p.kill()
        pytest.fail("align never reached iteration 1")
    killed_at = time.time()
    p.send_signal(signal.SIGKILL)
    p.wait()
    stored_before = _rows(db, "SELECT count(*) FROM rollouts")[0][0]
    assert _rows(db, "SELECT stage FROM iterations WHERE t=1") != [("done",)]
    calls_before = list(proxy.generation_calls())

    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert "report:" in r.stdout
    # nothing duplicated, nothing lost
    dup = _rows(
        db,
        "SELECT t, phase, method, example_id, idx, count(*) c FROM rollouts "
        "GROUP BY 1,2,3,4,5 HAVING c > 1",
    )
    assert dup == []
    assert _rows(db, "SELECT count(*) FROM rollouts WHERE t=1 AND phase='train'")[0][0] == 3 * 4
    assert _rows(db, "SELECT count(*) FROM rollouts")[0][0] > stored_before
    assert _rows(db, "SELECT stage FROM iterations ORDER BY t") == [("done",), ("done",)]
    # finished requests were not repeated: a body sent again after the kill must have been in
    # flight (or finishing) when the process died, never one answered well before
    after = proxy.generation_calls()[len(calls_before) :]
    answered = {
        c["body"] for c in calls_before if c["end"] is not None and c["end"] < killed_at - 1.0
    }
    repeated = [c for c in after if c["body"] in answered]
    assert repeated == []
