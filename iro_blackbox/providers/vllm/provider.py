"""The `vllm` provider: the policy on vLLM's offline engine, token-exact, every beam in one call.

    p = VLLMProvider("smollm2-135m-instruct")            # GGUF aliases are dequantized once
    chunks = await p.extend([Extend(prompt, prefix, n=4, max_tokens=8)])

Prompts are rendered and tokenized here with the model's own tokenizer; the engine (engine.py, in
the Python that has vLLM, see process.py) only ever sees token ids, and each chunk carries a
TokenHandle with the exact ids of prompt + answer so far, so a search continues a beam from its
tokens, never from re-tokenized text. All extend() calls made in one event-loop tick (a search
extends its W beams of every prompt at once) go to the engine as one generate call, and calls that
arrive while the engine is busy go together into the next; vLLM batches them continuously and its
prefix cache computes each shared prompt and beam prefix once. Sample j of a request has its own
seed (params.seed, prompt, prefix, sample_index + j), so it does not depend on what it was batched
with. The engine starts on first use (or at prepare(), before a run's first request) and stops at
aclose().
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ConfigError, InputError
from ...params import SamplingParams, check_positive_int
from ..base import Chunk, Extend, Prompt, ProviderStats, TokenHandle, Usage
from ..chat_template import PromptEncoder, check_prompt, continuation_text, prompt_key
from ..local_requests import check_extend, sample_seeds
from .process import EngineProcess

MAX_SAMPLES_PER_CALL = 4096  # samples in one generate call at most (the rest go in the next)


@dataclass
class _Sample:
    request: int  # index of its Extend in the call
    j: int  # which of the request's n samples
    context: tuple[int, ...]  # prompt + answer-so-far token ids
    n_prompt: int
    pkey: str
    prefix: str
    params: SamplingParams
    max_tokens: int
    seed: int


def default_python() -> str:
    """The Python that runs vLLM: $IRO_VLLM_PYTHON, else this one."""
    return os.environ.get("IRO_VLLM_PYTHON") or sys.executable


class VLLMProvider:
    """A model on vLLM's offline engine behind the Provider protocol (registry name "vllm").

    model: alias, folder, .gguf file or hub id (GGUF models are dequantized once into iro-bb's
        cache, tokenizer included, since vLLM reads plain folders).
    python: the interpreter that has vLLM (default $IRO_VLLM_PYTHON, else this one).
    dtype: vLLM's dtype ("auto", "float32", "bfloat16", "float16").
    kv_cache_gb: CPU builds: KV cache memory (VLLM_CPU_KVCACHE_SPACE).
    gpu_memory_utilization: GPU builds: the share of GPU memory vLLM may take.
    tensor_parallel_size: GPUs one model is split over.
    max_model_len: context length (default: the model's).
    enforce_eager: no graph compilation (default: on CPU builds, where it costs minutes to start).
    chunked_prefill: let vLLM prefill a long prompt over several steps (default: off on CPU
        builds, where a seeded sample whose prompt is prefilled in pieces kills the engine with
        "CPU Generator does not use offset"; on with CUDA). Off, a step takes whole prompts only:
        seeds mean the same (sample j of a request is drawn from its own seeded generator).
    """

    name = "vllm"

    def __init__(
        self,
        model: str = "smollm2-135m-instruct",
        *,
        python: str | None = None,
        dtype: str = "auto",
        kv_cache_gb: int = 1,
        gpu_memory_utilization: float | None = None,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        enforce_eager: bool | None = None,
        chunked_prefill: bool | None = None,
        seed: int = 0,
        ready_timeout: float = 1800.0,
        log_dir: str | Path | None = None,
    ):
        from ...tokenizers import load_tokenizer
        from ..hf.loading import plain_model_folder  # heavy: torch, transformers

        check_positive_int("tensor_parallel_size", tensor_parallel_size)
        if dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ConfigError(
                f"vllm dtype must be auto, float32, bfloat16 or float16, got {dtype!r}"
            )
        self.python = python or default_python()
        self.tokenizer = load_tokenizer(model)  # ModelNotFoundError for an unknown model
        self.folder = plain_model_folder(model)
        self.model_name = Path(self.folder).name if model == self.folder else model
        self._enc = PromptEncoder(self.tokenizer)
        self._eos = {i for i in (self.tokenizer.eos_token_id,) if i is not None}
        cpu = not _has_cuda() if enforce_eager is None or chunked_prefill is None else False
        from ...gguf_cache import cache_dir

        log = Path(log_dir) if log_dir else cache_dir() / "vllm-logs"
        self.engine = EngineProcess(
            self.python,
            {
                "model": self.folder,
                "tokenizer": self.folder,
                "dtype": dtype,
                "seed": seed,
                "kv_cache_gb": kv_cache_gb,
                "gpu_memory_utilization": gpu_memory_utilization,
                "tensor_parallel_size": tensor_parallel_size,
                "max_model_len": max_model_len,
                "enforce_eager": cpu if enforce_eager is None else enforce_eager,
                "chunked_prefill": not cpu if chunked_prefill is None else chunked_prefill,
            },
            log / f"engine-{os.getpid()}-{secrets.token_hex(3)}.log",
            ready_timeout,
        )
        self.stats = ProviderStats()
        self._queues: dict[
            asyncio.AbstractEventLoop, list[tuple[list[_Sample], asyncio.Future]]
        ] = {}
        self._running: set[asyncio.AbstractEventLoop] = set()
        self.calls = 0  # generate calls sent to the engine (tests, benchmarks)

    @classmethod
    def from_options(cls, options: Any, store: Any = None) -> VLLMProvider:
        """The provider a run's ProviderOptions describe (no request cache: local compute)."""
        return cls(
            options.model,
            python=options.vllm_python,
            dtype=options.vllm_dtype,
            kv_cache_gb=options.vllm_kv_cache_gb,
            tensor_parallel_size=options.vllm_tensor_parallel,
        )

    # -- engine life ----------------------------------------------------------------------------
    async def prepare(self, needs_continuation: bool = True, chat_prompts: bool = True) -> str:
        """Start the engine before a run's first request: a model vLLM cannot load, or a Python
        without vLLM, fails here in one line."""
        info = await asyncio.to_thread(self._ensure_started)
        return (
            f"vllm {info.get('vllm')} engine ready: {self.model_name} (context "
            f"{info.get('max_model_len')} tokens, token-ID prompts, prefix caching on)"
        )

    def _ensure_started(self) -> dict[str, Any]:
        if not self.engine.alive:
            self.engine.start()
        return self.engine.info

    async def aclose(self) -> None:
        await asyncio.to_thread(self.engine.close)

    # -- small public helpers -------------------------------------------------------------------
    def count_prompt(self, prompt: Prompt) -> int:
        return len(self._enc.prompt_ids(prompt))

    def count_tokens(self, text: str) -> int:
        return len(self._enc.encode_text(text))

    def describe(self) -> dict[str, Any]:
        return {
            "provider": self.name,
            "model": self.model_name,
            "folder": self.folder,
            "vllm": self.engine.info.get("vllm"),
            "max_context": self.engine.info.get("max_model_len"),
            "engine": {
                k: v for k, v in self.engine.config.items() if k not in ("model", "tokenizer")
            },
            "capabilities": {
                "n": True,
                "seed": True,
                "logprobs": True,
                "score": True,
                "stop": True,
                "token_exact_continuation": True,
                "prefix_caching": True,
            },  # fmt: skip
        }

    # -- extend ---------------------------------------------------------------------------------
    async def extend(self, requests: list[Extend]) -> list[list[Chunk]]:
        if not isinstance(requests, list):
            raise InputError(f"extend takes a list of Extend, got {type(requests).__name__}")
        samples = [s for i, r in enumerate(requests) for s in self._samples(i, r)]
        results: list[list[Chunk | None]] = [[None] * r.n for r in requests]
        if not samples:
            return [list(r) for r in results]  # type: ignore[misc]
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        queue = self._queues.setdefault(loop, [])
        queue.append((samples, fut))
        if loop not in self._running:  # after every coroutine woken in this tick has queued
            self._running.add(loop)
            loop.call_soon(lambda: loop.create_task(self._dispatch(loop)))
        chunks = await fut
        for s, c in zip(samples, chunks, strict=True):
            results[s.request][s.j] = c
        return [list(r) for r in results]  # type: ignore[misc]

    async def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send everything queued on this loop to the engine, one generate call at a time."""
        try:
            queue = self._queues[loop]
            while queue:
                batch, size = [], 0
                while queue and (not batch or size + len(queue[0][0]) <= MAX_SAMPLES_PER_CALL):
                    item = queue.pop(0)
                    batch.append(item)
                    size += len(item[0])
                try:
                    chunks = await asyncio.to_thread(
                        self._generate, [s for b, _ in batch for s in b]
                    )
                except BaseException as e:  # every caller of the batch sees the failure
                    for _, f in batch:
                        if not f.done():
                            f.set_exception(e)
                    continue
                at = 0
                for samples, f in batch:
                    if not f.done():
                        f.set_result(chunks[at : at + len(samples)])
                    at += len(samples)
        finally:
            self._running.discard(loop)

    def _samples(self, i: int, req: Any) -> list[_Sample]:
        """Validate one request; its n samples (raises before anything is sent)."""
        n, max_tokens, start, params = check_extend(i, req)
        pkey = prompt_key(req.prompt)
        h = req.handle
        if isinstance(h, TokenHandle) and h.prompt_key == pkey and h.response_text == req.prefix:
            context, n_prompt = h.token_ids, h.n_prompt
        else:
            pids = self._enc.prompt_ids(req.prompt, pkey)
            context, n_prompt = pids + tuple(self._enc.encode_text(req.prefix)), len(pids)
        if not context:
            raise InputError("the prompt is empty: give it some text")
        limit = self.engine.info.get("max_model_len")
        if limit and len(context) + max_tokens > limit:
            raise ConfigError(
                f"max_tokens {max_tokens} + context {len(context)} tokens exceeds the model's "
                f"context of {limit} tokens"
            )
        return [
            _Sample(i, j, context, n_prompt, pkey, req.prefix, params, max_tokens, seed)
            for j, seed in enumerate(sample_seeds(req, params, n, start))
        ]

    def _generate(self, samples: list[_Sample]) -> list[Chunk]:
        """One engine call for every sample (runs in a worker thread)."""
        self._ensure_started()
        contexts: dict[tuple[int, ...], int] = {}
        for s in samples:
            contexts.setdefault(s.context, len(contexts))
        msg = {
            "op": "generate",
            "prompts": [list(c) for c in contexts],
            "samples": [
                {
                    "prompt": contexts[s.context],
                    "seed": s.seed % (2**63),
                    "temperature": s.params.temperature,
                    "top_p": s.params.top_p,
                    "top_k": s.params.top_k,
                    "max_tokens": s.max_tokens,
                    "stop": list(s.params.stop),
                    "logprobs": s.params.logprobs,
                }
                for s in samples
            ],
        }
        reply = self.engine.call(msg)
        self.calls += 1
        self.stats.requests += 1
        chunks = [self._chunk(s, o) for s, o in zip(samples, reply["outputs"], strict=True)]
        self.stats.prompt_tokens += sum(len(c) for c in contexts)
        self.stats.completion_tokens += sum(c.usage.completion_tokens for c in chunks)
        return chunks

    def _chunk(self, s: _Sample, out: dict[str, Any]) -> Chunk:
        raw = list(out["tokens"])
        tokens = raw[:-1] if raw and raw[-1] in self._eos else raw
        logprobs = out.get("logprobs")
        if logprobs is not None:
            logprobs = logprobs[: len(tokens)]
        handle = None
        if out.get("stop_string"):  # cut inside the text: vLLM's text, no token-exact handle
            text = out["text"]
        else:
            text = continuation_text(self.tokenizer, s.context, s.n_prompt, tokens)
            handle = TokenHandle(s.pkey, s.prefix + text, s.context + tuple(tokens), s.n_prompt)
        return Chunk(
            text=text,
            finish_reason="length" if out["finish"] == "length" else "stop",
            tokens=tokens,
            logprobs=logprobs if s.params.logprobs else None,
            usage=Usage(prompt_tokens=len(s.context), completion_tokens=len(raw)),
            handle=handle,
        )

    # -- score ----------------------------------------------------------------------------------
    async def score(self, prompt: Prompt, text: str) -> list[float]:
        """Token logprobs of `text` as the response to `prompt` (vLLM's prompt logprobs)."""
        check_prompt(prompt)
        if not isinstance(text, str):
            raise InputError(f"text must be a string, got {type(text).__name__}")
        tids = self._enc.encode_text(text)
        if not tids:
            return []
        pids = list(self._enc.prompt_ids(prompt))

        def call() -> list[float]:
            self._ensure_started()
            self.stats.requests += 1
            self.stats.prompt_tokens += len(pids) + len(tids)
            return self.engine.call({"op": "score", "prompt": pids, "target": tids})["logprobs"]

        return await asyncio.to_thread(call)


def _has_cuda() -> bool:
    try:
        import torch  # heavy: torch

        return torch.cuda.is_available()
    except ImportError:
        return False
