"""One sample of an hf `extend` call, from its context tokens to its finished chunk.

A call (`Job`) becomes one `Row` per sample. While a batch generates, `RowText.take` adds each
sampled token to its row and says when the row has finished (EOS, a stop string, max_tokens);
`RowText.chunk` then turns the row into the Chunk the caller gets, with a KV handle when the
chunk's text ends on a token boundary. `settle` resolves a call's future on the caller's loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ...params import SamplingParams
from ..base import Chunk, Usage
from ..chat_template import continuation_text
from .kv import KVBlock, KVHandle, RowSource


@dataclass(eq=False)
class Job:
    """One extend() call waiting for its rows."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    results: list[list[Chunk | None]]
    remaining: int


@dataclass(eq=False)
class Row:
    """One sample of one request, from context tokens to a finished chunk."""

    job: Job
    req: int  # request index in the job
    sample: int  # which of the request's n samples
    pkey: str
    prefix: str
    params: SamplingParams
    max_tokens: int
    seed: int
    context: tuple[int, ...]  # prompt + response-so-far token ids
    n_prompt: int
    handle: KVHandle | None  # a live-looking handle (its block may still be gone)
    # filled while generating
    source: RowSource | None = None
    pending: tuple[int, ...] = ()
    new: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    sampled: int = 0
    finish: str | None = None
    text: str | None = None  # set when a stop string cut it
    chunk: Chunk | None = None


class RowText:
    """The tokenizer side of a row: finishing rules and the chunk's text and handle."""

    def __init__(self, tokenizer: Any, eos: set[int] | frozenset[int], owner: int):
        self.tokenizer = tokenizer
        self.eos = eos
        self.owner = owner  # the provider whose KV blocks the handles point at

    def take(self, row: Row, token: int, logprob: float | None) -> bool:
        """Add a sampled token to a row; True when the row has finished."""
        row.sampled += 1
        if token in self.eos:
            row.finish = "stop"
            return True
        row.new.append(token)
        if logprob is not None:
            row.logprobs.append(logprob)
        if row.params.stop and self._hit_stop(row):
            row.finish = "stop"
            return True
        if len(row.new) >= row.max_tokens:
            row.finish = "length"
            return True
        return False

    def _hit_stop(self, row: Row) -> bool:
        """Look for a stop string ending in the newest tokens (cheap window first, then exact)."""
        stops = row.params.stop
        longest = max(len(s) for s in stops)
        tail = row.prefix[-(longest - 1) :] if longest > 1 else ""
        window = 4 * longest + 2
        piece = self._decode(row.new[-window:])
        hay = piece if len(row.new) > window else tail + piece
        if not any(s in hay for s in stops):
            return False
        text = self._new_text(row, row.new)
        hay = tail + text
        found = [hay.find(s) for s in stops if s in hay]
        if not found:
            return False
        row.text = text[: max(0, min(found) - len(tail))]
        return True

    def _decode(self, ids: list[int] | tuple[int, ...]) -> str:
        return self.tokenizer.decode(
            list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
        )

    def _new_text(self, row: Row, new: list[int]) -> str:
        """Text of `new` as it reads after the row's context (keeps a leading space)."""
        return continuation_text(self.tokenizer, row.context, row.n_prompt, new)

    def chunk(self, row: Row, block: KVBlock | None, r: int) -> Chunk:
        """The finished row as a Chunk; `r` is its row in the batch's KV block."""
        tokens, logprobs = row.new, row.logprobs
        aligned = True
        if row.text is None:
            text = self._new_text(row, tokens)
        else:  # cut by a stop string: tokens up to the cut when it falls on a token boundary
            text, aligned = row.text, False
            for j in range(len(tokens), -1, -1):
                t = self._new_text(row, tokens[:j])
                if t == text:
                    tokens, logprobs, aligned = tokens[:j], logprobs[:j], True
                    break
                if len(t) < len(text):
                    break
        handle = None
        if aligned:
            handle = KVHandle(
                owner=self.owner,
                block_id=block.id if block is not None else 0,
                row=r,
                prompt_key=row.pkey,
                response_text=row.prefix + text,
                token_ids=row.context + tuple(tokens),
                n_prompt=row.n_prompt,
            )
        return Chunk(
            text=text,
            finish_reason=row.finish or "length",
            tokens=list(tokens),
            logprobs=list(logprobs) if row.params.logprobs else None,
            usage=Usage(prompt_tokens=len(row.context), completion_tokens=row.sampled),
            handle=handle,
        )


def settle(job: Job, value: Any = None, exc: BaseException | None = None) -> None:
    """Resolve a call's future on its own loop (called from the worker thread)."""

    def done() -> None:
        if job.future.done():  # cancelled by the caller meanwhile
            return
        if exc is not None:
            job.future.set_exception(exc)
        else:
            job.future.set_result(value)

    try:
        job.loop.call_soon_threadsafe(done)
    except RuntimeError:  # the caller's loop is closed: nobody is waiting
        pass
