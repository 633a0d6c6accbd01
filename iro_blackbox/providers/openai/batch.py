"""OpenAI's Batch API for non-adaptive rollouts: whole responses sampled from the base policy
(iteration-1 rollouts, base / Best-of-N evaluation, plain generation). Half the price of live
requests, answered within the completion window (up to 24 h) instead of at once.

    report = await prefetch(provider, requests)            # requests: Extend with prefix ""
    chunks = await provider.extend(requests)               # now all replayed from the cache

How: the requests the `openai` provider would send are written as a JSONL file (one line per
request, `custom_id` = hash of the line), uploaded (`client.files.create`, purpose=batch: POST
/files), submitted (`client.batches.create`), polled (`client.batches.retrieve`) until done, and
the output file (`client.files.content`) is
parsed with the provider's own reply parser and written to the request cache under the provider's
own keys. Nothing else changes: the search then runs as usual and every request is a cache hit.

Resumable: the batch id is recorded in the store (request_cache, provider "openai-batch") under
the hash of its lines before polling starts, so a job that dies or is cancelled while waiting
finds and polls the same batch when it runs again instead of paying for a second one. A batch
that expires or is cancelled remotely has its partial output ingested and the rest goes into a
new batch; lines the API rejected stay uncached (the provider fetches them live later).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ...errors import Cancelled, ConfigError, PermanentError, TransientError
from ...utils import stable_hash
from ..base import Extend
from .retry import call_with_retries
from .transport import Transport

log = logging.getLogger("iro_blackbox.batch_api")

TERMINAL = ("completed", "failed", "expired", "cancelled")
RECORD_PROVIDER = "openai-batch"  # request_cache rows that remember submitted batches
BATCH_DISCOUNT = 0.5  # Batch API price relative to live requests
MAX_LINES = 50_000  # the API's limit of requests per batch
UNREACHED = ("batch_expired", "batch_cancelled")  # line error codes of a batch that stopped early


@dataclass
class BatchReport:
    """What one prefetch did."""

    requests: int = 0  # Extend requests given
    samples: int = 0  # samples they ask for
    already_cached: int = 0  # samples the cache had before
    lines: int = 0  # JSONL lines sent (over all batches)
    ingested: int = 0  # samples written to the cache from batch output
    failed_lines: int = 0  # lines the API answered with an error (left for live requests)
    expired_lines: int = 0  # lines an expired or cancelled batch never reached (sent again)
    batches: list[str] = field(default_factory=list)  # batch ids used (created or resumed)
    resumed: int = 0  # batches found in the store and polled again instead of created
    statuses: dict[str, str] = field(default_factory=dict)  # batch id -> final status
    errors: list[str] = field(default_factory=list)  # first few line errors
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# -- the SDK side: files + batches ------------------------------------------------------------
def _as_dict(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


class BatchClient:
    """The files and batches endpoints, through the provider's SDK client (`client.files`,
    `client.batches`: same key handling, error sorting and scrubbing), each call retried by the
    provider's retry policy."""

    def __init__(self, transport: Transport):
        self.transport = transport
        self.http_requests = 0

    async def _request(self, fn: Callable[[Any], Awaitable[Any]], method: str, path: str) -> Any:
        async def once() -> Any:
            self.http_requests += 1
            return await self.transport.call(fn, method, path)

        return await call_with_retries(once, self.transport.policy, self.transport.sleep)

    async def upload(self, content: bytes, filename: str = "iro-batch.jsonl") -> str:
        f = await self._request(
            lambda c: c.files.create(
                file=(filename, content, "application/jsonl"), purpose="batch"
            ),
            "POST",
            "/files",
        )
        if not isinstance(getattr(f, "id", None), str):
            raise TransientError("batch API: file upload answered without an id")
        return f.id

    async def create(
        self, input_file_id: str, endpoint: str, window: str, metadata: dict[str, str]
    ) -> dict[str, Any]:
        b = await self._request(
            lambda c: c.batches.create(
                input_file_id=input_file_id,
                endpoint=endpoint,
                completion_window=window,
                metadata=metadata,
            ),
            "POST",
            "/batches",
        )
        return _as_dict(b)

    async def retrieve(self, batch_id: str) -> dict[str, Any]:
        path = f"/batches/{batch_id}"
        return _as_dict(await self._request(lambda c: c.batches.retrieve(batch_id), "GET", path))

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        path = f"/batches/{batch_id}/cancel"
        return _as_dict(await self._request(lambda c: c.batches.cancel(batch_id), "POST", path))

    async def content(self, file_id: str) -> str:
        path = f"/files/{file_id}/content"
        content = await self._request(lambda c: c.files.content(file_id), "GET", path)
        return content.text


# -- planning: the lines the provider would have sent ------------------------------------------
@dataclass
class _Target:
    endpoint: str
    body: dict[str, Any]  # the provider's body (without n and seed): part of the cache key
    seed_base: int | None
    indices: list[int]  # sample indices this line's choices are stored under
    greedy: bool


@dataclass
class _Line:
    custom_id: str
    endpoint: str  # provider endpoint, e.g. "/completions"
    wire: dict[str, Any]  # the body sent
    targets: list[_Target] = field(default_factory=list)


def _check_provider(provider: Any) -> None:
    needed = (
        "plan",
        "cache_request",
        "parse_reply",
        "honours_n",
        "request_cache",
        "wire_seed",
        "account_batch",
        "transport",
    )
    if getattr(provider, "name", None) != "openai" or not all(hasattr(provider, n) for n in needed):
        raise ConfigError(
            f"the Batch API needs the openai provider, got {getattr(provider, 'name', provider)!r}"
        )
    if provider.request_cache is None:
        raise ConfigError("the Batch API needs a store: its results go into the request cache")
    if not provider.request_cache.enabled:
        raise ConfigError("the Batch API fills the request cache: do not combine it with no_cache")


async def plan_lines(provider: Any, requests: list[Extend], report: BatchReport) -> list[_Line]:
    """The JSONL lines that fetch every sample of `requests` the cache does not have yet."""
    _seed = provider.wire_seed
    plans = []
    for r in requests:
        if r.prefix or r.handle is not None:
            raise ConfigError(
                "the Batch API takes whole-response requests only (empty prefix): adaptive "
                "search steps depend on earlier answers and must run live"
            )
        endpoint, body = await provider.plan(r)
        idx = [r.sample_index + j for j in range(r.n)]
        keys = [stable_hash(provider.cache_request(endpoint, body, r.params.seed, i)) for i in idx]
        plans.append((r, endpoint, body, idx, keys))
        report.requests += 1
        report.samples += r.n
    hits = provider.request_cache.get_many([k for *_, keys in plans for k in keys])
    lines: dict[str, _Line] = {}

    def add(endpoint: str, wire: dict[str, Any], target: _Target) -> None:
        cid = "iro-" + stable_hash([provider.base_url, endpoint, wire])[:40]
        line = lines.setdefault(cid, _Line(cid, endpoint, wire))
        line.targets.append(target)

    for r, endpoint, body, idx, keys in plans:
        missing = [i for i, k in zip(idx, keys, strict=True) if k not in hits]
        report.already_cached += len(idx) - len(missing)
        if not missing:
            continue
        seed_base = r.params.seed
        if r.params.greedy:
            wire = dict(body)
            s = _seed(seed_base, missing[0])
            if s is not None:
                wire["seed"] = s
            add(endpoint, wire, _Target(endpoint, body, seed_base, missing, True))
        elif len(missing) > 1 and provider.honours_n(endpoint):
            wire = {**body, "n": len(missing)}
            s = _seed(seed_base, missing[0])
            if s is not None:
                wire["seed"] = s
            add(endpoint, wire, _Target(endpoint, body, seed_base, missing, False))
        else:
            for i in missing:
                wire = dict(body)
                s = _seed(seed_base, i)
                if s is not None:
                    wire["seed"] = s
                add(endpoint, wire, _Target(endpoint, body, seed_base, [i], False))
    return list(lines.values())


def _url_path(base_url: str, endpoint: str) -> str:
    """'/v1/chat/completions' for base https://api.openai.com/v1 and endpoint /chat/completions."""
    return urlsplit(base_url).path.rstrip("/") + endpoint


def _record_key(provider: Any, endpoint: str, lines: list[_Line], attempt: int) -> dict[str, Any]:
    return {
        "kind": "batch-api",
        "v": 1,
        "base_url": provider.base_url,
        "model": provider.model_name,
        "endpoint": endpoint,
        "lines": stable_hash(sorted(ln.custom_id for ln in lines)),
        "attempt": attempt,
    }


# -- ingesting the output ----------------------------------------------------------------------
def ingest(provider: Any, lines: list[_Line], output: str, report: BatchReport) -> set[str]:
    """Write every successful line's samples to the request cache. Returns the custom ids
    settled: answered, or refused for good (left for live requests). A line an expired or
    cancelled batch never reached is not settled: it goes into the next batch."""
    by_id = {ln.custom_id: ln for ln in lines}
    items: list[tuple[str, dict, dict]] = []
    done: set[str] = set()
    for raw in output.splitlines():
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except ValueError:
            report.failed_lines += 1
            _note(report, "batch output: a line that is not JSON")
            continue
        line = by_id.get(rec.get("custom_id")) if isinstance(rec, dict) else None
        if line is None:
            continue
        resp = rec.get("response") or {}
        err = rec.get("error")
        body = resp.get("body") if isinstance(resp, dict) else None
        if isinstance(err, dict) and err.get("code") in UNREACHED:
            report.expired_lines += 1
            continue
        if (
            err
            or not isinstance(resp, dict)
            or resp.get("status_code") != 200
            or not isinstance(body, dict)
        ):
            report.failed_lines += 1
            detail = err or (body or {}).get("error") or resp.get("status_code")
            _note(report, f"{line.custom_id}: {json.dumps(detail)[:200]}")
            done.add(line.custom_id)
            continue
        url = provider.base_url + line.endpoint
        try:
            samples = provider.parse_reply(line.endpoint, line.targets[0].body, body, url)
        except TransientError as e:
            report.failed_lines += 1
            _note(report, f"{line.custom_id}: {e}")
            done.add(line.custom_id)
            continue
        usage = body.get("usage") or {}
        pt = int(usage.get("prompt_tokens") or sum(s["usage"]["prompt_tokens"] for s in samples))
        ct = int(
            usage.get("completion_tokens") or sum(s["usage"]["completion_tokens"] for s in samples)
        )
        report.prompt_tokens += pt
        report.completion_tokens += ct
        report.cost_usd += provider.account_batch(pt, ct, BATCH_DISCOUNT)
        for t in line.targets:
            if t.greedy:  # one answer, stored under every index (as the provider does)
                pairs = [(i, samples[0]) for i in t.indices]
            else:  # a server may return fewer choices than n: the rest stay uncached
                pairs = list(zip(t.indices, samples, strict=False))
            for i, s in pairs:
                req = provider.cache_request(t.endpoint, t.body, t.seed_base, i)
                items.append((stable_hash(req), req, s))
                report.ingested += 1
        done.add(line.custom_id)
    provider.request_cache.put_many(provider.name, items)
    return done


def _note(report: BatchReport, msg: str) -> None:
    if len(report.errors) < 10:
        report.errors.append(msg)


def _errors_of(batch: dict[str, Any]) -> str:
    errs = (batch.get("errors") or {}).get("data") or []
    msgs = [f"{e.get('code')}: {e.get('message')}" for e in errs if isinstance(e, dict)]
    return "; ".join(msgs[:3]) or "no details"


# -- the driver ----------------------------------------------------------------------------------
async def prefetch(
    provider: Any,
    requests: list[Extend],
    *,
    poll_interval: float = 30.0,
    completion_window: str = "24h",
    cancel_check: Callable[[], bool] | None = None,
    on_status: Callable[[dict[str, Any]], None] | None = None,
    client: BatchClient | None = None,
    sleep: Callable[[float], Awaitable[Any]] | None = None,
) -> BatchReport:
    """Fill the request cache with every sample of `requests` through the Batch API.

    provider: the `openai` provider (with a store) that will replay the answers; its seam (all
    public): plan, cache_request, parse_reply, honours_n, wire_seed, request_cache,
    account_batch, transport (the SDK client and retry policy), base_url, model_name, name.
    cancel_check: polled between status checks; True raises Cancelled (the remote batch keeps
    running and is picked up again by the next prefetch of the same requests).
    on_status: called with {"stage", "batch", "status", "done", "total", "failed"} as it polls.
    """
    _check_provider(provider)
    sleep = sleep or asyncio.sleep
    report = BatchReport()
    client = client or BatchClient(provider.transport)
    lines = await plan_lines(provider, requests, report)
    by_endpoint: dict[str, list[_Line]] = {}
    for ln in lines:
        by_endpoint.setdefault(ln.endpoint, []).append(ln)
    for endpoint, group in by_endpoint.items():
        for i in range(0, len(group), MAX_LINES):
            await _run_group(
                provider,
                client,
                endpoint,
                group[i : i + MAX_LINES],
                report,
                poll_interval,
                completion_window,
                cancel_check,
                on_status,
                sleep,
            )
    return report


async def _run_group(
    provider: Any,
    client: BatchClient,
    endpoint: str,
    lines: list[_Line],
    report: BatchReport,
    poll_interval: float,
    window: str,
    cancel_check: Callable[[], bool] | None,
    on_status: Callable[[dict[str, Any]], None] | None,
    sleep: Callable[[float], Awaitable[Any]],
) -> None:
    cache = provider.request_cache
    attempt = 0
    while lines:
        rkey_req = _record_key(provider, endpoint, lines, attempt)
        rkey = stable_hash(rkey_req)
        rec = cache.get(rkey)
        if rec is not None:
            batch = await client.retrieve(rec["batch_id"])
            report.resumed += 1
            log.info("resuming batch %s (%s)", rec["batch_id"], batch.get("status"))
        else:
            content = "".join(
                json.dumps(
                    {
                        "custom_id": ln.custom_id,
                        "method": "POST",
                        "url": _url_path(provider.base_url, endpoint),
                        "body": ln.wire,
                    },
                    ensure_ascii=False,
                )
                + "\n"
                for ln in lines
            ).encode()
            file_id = await client.upload(content)
            batch = await client.create(
                file_id,
                _url_path(provider.base_url, endpoint),
                window,
                {"source": "iro-bb", "lines": str(len(lines))},
            )
            if not isinstance(batch.get("id"), str):
                raise TransientError("batch API: batch creation answered without an id")
            cache.put(
                rkey,
                RECORD_PROVIDER,
                rkey_req,
                {"batch_id": batch["id"], "input_file_id": file_id, "lines": len(lines)},
            )
            report.lines += len(lines)
        bid = batch["id"]
        report.batches.append(bid)
        while batch.get("status") not in TERMINAL:
            _emit(on_status, batch, len(lines))
            if cancel_check is not None and cancel_check():
                raise Cancelled(f"stopped waiting for batch {bid} (it keeps running remotely)")
            await sleep(poll_interval)
            batch = await client.retrieve(bid)
        _emit(on_status, batch, len(lines))
        status = batch["status"]
        report.statuses[bid] = status
        if status == "failed":
            raise PermanentError(f"batch API: batch {bid} failed: {_errors_of(batch)}")
        settled: set[str] = set()
        if batch.get("output_file_id"):
            out = await client.content(batch["output_file_id"])
            settled |= ingest(provider, lines, out, report)
        if batch.get("error_file_id"):
            before = report.failed_lines
            settled |= ingest(provider, lines, await client.content(batch["error_file_id"]), report)
            if report.failed_lines > before:
                log.warning("batch %s: %d lines failed", bid, report.failed_lines - before)
        if status == "completed":
            return  # failed lines stay uncached: the provider asks for them live
        # expired or cancelled remotely: only the lines it never answered go into the next batch
        lines = [ln for ln in lines if ln.custom_id not in settled]
        attempt += 1


def _emit(on_status: Callable[[dict[str, Any]], None] | None, batch: dict, total: int) -> None:
    if on_status is None:
        return
    counts = batch.get("request_counts") or {}
    on_status(
        {
            "stage": f"batch API: {batch.get('status')}",
            "batch": batch.get("id"),
            "status": batch.get("status"),
            "done": int(counts.get("completed") or 0),
            "total": int(counts.get("total") or total),
            "failed": int(counts.get("failed") or 0),
        }
    )
