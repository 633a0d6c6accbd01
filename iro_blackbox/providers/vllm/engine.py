"""The engine process of the `vllm` provider: vLLM's offline engine (`vllm.LLM`) behind a pipe.

process.py runs this file with the Python that has vLLM installed (it may be another virtualenv
than iro-bb's: vLLM pins its own torch and transformers), so it imports nothing of iro-bb. It
speaks JSON lines: the first line on stdin is the engine configuration, answered by {"ready": ...}
or {"error": ..., "kind": "missing" | "model"}; then one request per line, each answered by one
line with the same "id":

    {"id": 1, "op": "generate", "prompts": [[token ids], ...],
     "samples": [{"prompt": 0, "seed": 7, "temperature": 1.0, "top_p": 1.0, "top_k": 0,
                  "max_tokens": 8, "stop": [], "logprobs": false}, ...]}
    -> {"id": 1, "outputs": [{"tokens": [...], "text": "...", "finish": "stop" | "length",
                              "stop_string": false, "logprobs": [...] | null}, ...]}
    {"id": 2, "op": "score", "prompt": [ids], "target": [ids]} -> {"id": 2, "logprobs": [...]}
    {"op": "close"}

Every sample of a generate call is its own vLLM request with n=1 and its own seed (a sample does not
depend on what else is in the batch), and all of them go into one `LLM.generate` call: the engine
batches them continuously, and prefix caching computes the shared prompt (and beam prefix) once.
vLLM's own output goes to stderr (the caller keeps it in a log file), never into the protocol.
"""

import json
import os
import signal
import sys
import threading
import time


def _send(out, obj):
    out.write(json.dumps(obj) + "\n")
    out.flush()


def _one_line(e):
    """The gist of an exception on one line (pydantic's end with a link, not the reason)."""
    lines = [x.strip() for x in str(e).strip().splitlines() if x.strip()]
    lines = [x for x in lines if not x.startswith("For further information")] or [""]
    return f"{type(e).__name__}: {' '.join(lines[-2:]) if len(lines) > 1 else lines[0]}"[:500]


def _generate(llm, msg, SamplingParams, TokensPrompt):
    prompts, reqs, params = msg["prompts"], [], []
    for s in msg["samples"]:
        reqs.append(TokensPrompt(prompt_token_ids=prompts[s["prompt"]]))
        params.append(
            SamplingParams(
                n=1,
                temperature=s["temperature"],
                top_p=s["top_p"],
                top_k=s["top_k"] if s["top_k"] > 0 else 0,
                max_tokens=s["max_tokens"],
                seed=s["seed"],
                stop=s["stop"] or None,
                logprobs=0 if s["logprobs"] else None,
                skip_special_tokens=False,
            )
        )
    outs = llm.generate(reqs, params, use_tqdm=False) if reqs else []
    results = []
    for o in outs:
        c = o.outputs[0]
        lps = None
        if c.logprobs is not None:
            lps = [d[t].logprob for t, d in zip(c.token_ids, c.logprobs, strict=True)]
        results.append(
            {
                "tokens": list(c.token_ids),
                "text": c.text,
                "finish": "length" if c.finish_reason == "length" else "stop",
                "stop_string": isinstance(c.stop_reason, str),
                "logprobs": lps,
            }
        )
    return {"outputs": results}


def _score(llm, msg, SamplingParams, TokensPrompt):
    ids, target = msg["prompt"] + msg["target"], msg["target"]
    p = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
    out = llm.generate([TokensPrompt(prompt_token_ids=ids)], p, use_tqdm=False)[0]
    plp = out.prompt_logprobs[len(ids) - len(target) :]
    return {"logprobs": [d[t].logprob for t, d in zip(target, plp, strict=True)]}


def _die_with_parent(parent: int, every: float = 1.0) -> None:
    """Watch the process that started this engine; when it is gone (killed, crashed: it had no
    chance to close us), end this process group: vLLM's engine-core and worker processes hold
    gigabytes and would otherwise outlive it, busy with a batch nobody will read."""
    while True:
        time.sleep(every)
        if os.getppid() != parent:
            os.killpg(os.getpgrp(), signal.SIGKILL)


def main():
    if os.getpgrp() == os.getpid():  # started in its own group (process.py): the group is ours
        threading.Thread(target=_die_with_parent, args=(os.getppid(),), daemon=True).start()
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # vLLM and the engine processes it starts print to stderr only
    cfg = json.loads(sys.stdin.readline())
    if cfg.get("kv_cache_gb"):
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(int(cfg["kv_cache_gb"])))
    # a step of whole prompts on a busy CPU can take minutes: a slow step is not a dead worker
    os.environ.setdefault("VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS", "3600")
    try:
        import vllm
        from vllm import LLM, SamplingParams
        from vllm.inputs import TokensPrompt
    except Exception as e:  # noqa: BLE001 - reported to the caller as one line
        _send(out, {"error": f"cannot import vLLM in {sys.executable}: {_one_line(e)}",
                    "kind": "missing"})  # fmt: skip
        return 3
    kwargs = {
        "model": cfg["model"],
        "tokenizer": cfg.get("tokenizer") or cfg["model"],
        "dtype": cfg.get("dtype") or "auto",
        "seed": cfg.get("seed", 0),
        "enable_prefix_caching": True,
        # Off on CPU builds: a prompt prefilled in pieces has the token sampled after a partial
        # piece discarded, and for a seeded request vLLM then rewinds its generator's offset,
        # which a CPU torch.Generator does not have ("CPU Generator does not use offset": the
        # engine dies). Whole prompts in one step never discard a token, so seeds keep working.
        "enable_chunked_prefill": bool(cfg.get("chunked_prefill", True)),
        "enforce_eager": bool(cfg.get("enforce_eager")),
        "tensor_parallel_size": cfg.get("tensor_parallel_size", 1),
    }
    if not kwargs["enable_chunked_prefill"]:  # a step must hold the longest whole prompt
        kwargs["max_num_batched_tokens"] = max(8192, int(cfg.get("max_model_len") or 8192))
    if cfg.get("max_model_len"):
        kwargs["max_model_len"] = cfg["max_model_len"]
    if cfg.get("gpu_memory_utilization"):
        kwargs["gpu_memory_utilization"] = cfg["gpu_memory_utilization"]
    try:
        llm = LLM(**kwargs)
    except BaseException as e:  # noqa: BLE001 - SystemExit too: vLLM exits on some config errors
        _send(out, {"error": _one_line(e), "kind": "model"})
        return 4
    model_config = getattr(getattr(llm, "llm_engine", None), "model_config", None)
    _send(out, {"ready": True, "vllm": vllm.__version__,
                "max_model_len": getattr(model_config, "max_model_len", None)})  # fmt: skip
    ops = {"generate": _generate, "score": _score}
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("op") == "close":
            break
        try:
            result = ops[msg["op"]](llm, msg, SamplingParams, TokensPrompt)
            _send(out, {"id": msg.get("id"), **result})
        except Exception as e:  # noqa: BLE001 - one failed call, the engine keeps serving
            dead = type(e).__name__ == "EngineDeadError"  # vLLM's engine core is gone
            _send(out, {"id": msg.get("id"), "error": _one_line(e), "fatal": dead})
            if dead:
                return 5
    return 0


if __name__ == "__main__":  # vLLM's engine starts subprocesses: this guard is required
    sys.exit(main())
