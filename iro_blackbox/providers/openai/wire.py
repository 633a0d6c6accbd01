"""The wire format of each dialect: the request body an Extend becomes in a mode (modes.py), and
the cacheable samples a reply body holds.

A body here is the provider's own description of a request (a plain dict, part of every cache
key); transport.py turns it into an SDK call, the fields the SDK does not name going through
`extra_body`. `n` and `seed` are added per request by the sampler (sampler.py), never here.
"""

from __future__ import annotations

from typing import Any

from ...errors import TransientError
from ...params import SamplingParams
from ...utils import derive_seed
from ..base import Extend, TokenHandle
from ..chat_template import prompt_key
from .modes import CHAT, COMPLETIONS, Mode
from .pricing import Prices
from .tokens import TokenCounter

# OpenAI models whose chat endpoint takes max_completion_tokens instead of max_tokens
MAX_COMPLETION_TOKENS_MODELS = ("o1", "o3", "o4", "gpt-5")


def wire_seed(base: int | None, sample_index: int) -> int | None:
    """The seed sent for sample `sample_index` (31 bits: some servers take int32 only)."""
    return None if base is None else derive_seed(base, sample_index) % (2**31)


def split_evenly(total: int, parts: int) -> list[int]:
    """`total` split into `parts` integers that sum to it (remainder to the first ones)."""
    q, r = divmod(total, parts)
    return [q + (1 if i < r else 0) for i in range(parts)]


def context_ids(req: Extend, tokens: TokenCounter) -> tuple[int, ...]:
    """token-ids mode: the exact ids of prompt + answer so far (the handle's, else encoded)."""
    h = req.handle
    pkey = prompt_key(req.prompt)
    if isinstance(h, TokenHandle) and h.prompt_key == pkey and h.response_text == req.prefix:
        return h.token_ids
    return tokens.prompt_ids(req.prompt) + tuple(tokens.encode(req.prefix))


def build_body(
    mode: Mode, req: Extend, model: str, tokens: TokenCounter, temperature: bool = True
) -> tuple[str, dict[str, Any]]:
    """(endpoint, request body without n and seed) of `req` in `mode`. `temperature`: False
    where the endpoint refuses the parameter (the probe found out)."""
    p: SamplingParams = req.params
    body: dict[str, Any] = {"model": model}
    if mode.name == "token-ids":
        body["prompt"] = list(context_ids(req, tokens))
        body["return_token_ids"] = True  # vLLM: the generated ids, for token-exact handles
    elif mode.name == "completions":
        body["prompt"] = tokens.render(req.prompt) + req.prefix
    else:
        body["messages"] = mode.messages(req.prompt, req.prefix)
        body.update(mode.extra(req.prefix))
    endpoint = mode.endpoint
    if req.response_format is not None and endpoint == CHAT and not req.prefix:
        body["response_format"] = req.response_format
    if endpoint == CHAT and model.lower().startswith(MAX_COMPLETION_TOKENS_MODELS):
        body["max_completion_tokens"] = req.max_tokens  # OpenAI reasoning models
    else:
        body["max_tokens"] = req.max_tokens
    if temperature:
        body["temperature"] = float(p.temperature)
        if p.top_p < 1.0:
            body["top_p"] = float(p.top_p)
    if p.top_k > 0:
        body["top_k"] = p.top_k
    if p.stop:
        body["stop"] = list(p.stop)
    if p.logprobs:
        if endpoint == COMPLETIONS:
            body["logprobs"] = 1
        else:  # llama-cpp-python returns chat logprobs only with top_logprobs
            body["logprobs"], body["top_logprobs"] = True, 1
    return endpoint, body


def _choice_sample(endpoint: str, c: Any, url: str) -> dict[str, Any]:
    """One choice as a sample dict (no usage yet)."""
    if not isinstance(c, dict):
        raise TransientError(f"openai: malformed reply from {url}: bad choice")
    lps: list[float] | None = None
    ids = None
    if endpoint == COMPLETIONS:
        text = c.get("text")
        lp = c.get("logprobs") or {}
        if isinstance(lp, dict) and lp.get("token_logprobs") is not None:
            lps = [float(x) if x is not None else 0.0 for x in lp["token_logprobs"]]
        tids = c.get("token_ids")
        if isinstance(tids, list) and all(isinstance(t, int) for t in tids):
            ids = tids
    else:
        msg = c.get("message") or {}
        text = msg.get("content") if isinstance(msg, dict) else None
        text = "" if text is None and isinstance(msg, dict) else text
        lp = c.get("logprobs") or {}
        if isinstance(lp, dict) and lp.get("content") is not None:
            lps = [float(t.get("logprob", 0.0)) for t in lp["content"]]
    if not isinstance(text, str):
        raise TransientError(f"openai: malformed reply from {url}: choice without text")
    sample: dict[str, Any] = {
        "text": text,
        "finish_reason": "length" if c.get("finish_reason") == "length" else "stop",
        "server_finish_reason": c.get("finish_reason"),
        "logprobs": lps,
    }
    if ids is not None:
        sample["token_ids"] = ids
    return sample


def _exact_tokens(s: dict[str, Any]) -> int | None:
    if s.get("token_ids") is not None:
        return len(s["token_ids"])
    return len(s["logprobs"]) if s["logprobs"] is not None else None


def parse_reply(
    endpoint: str,
    body: dict[str, Any],
    data: dict[str, Any],
    url: str,
    tokens: TokenCounter,
    prices: Prices,
) -> list[dict]:
    """Cacheable sample dicts from a reply: text, finish_reason, logprobs, token ids, usage and
    cost. TransientError when the reply is malformed (worth asking again)."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise TransientError(f"openai: malformed reply from {url}: no choices")
    choices = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
    out = [_choice_sample(endpoint, c, url) for c in choices]
    # usage: the server's, split over the choices (sums stay exact); else counted locally
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if pt is None:
        pt = tokens.estimate_input(body)
    per_choice_ct: list[int]
    if ct is None:
        per_choice_ct = []
        for s in out:
            exact = _exact_tokens(s)
            per_choice_ct.append(exact if exact is not None else tokens.count(s["text"]) or 0)
    else:
        per_choice_ct = split_evenly(int(ct), len(out))
        exact_all = [_exact_tokens(s) for s in out]
        if None not in exact_all and sum(exact_all) == int(ct):  # type: ignore[arg-type]
            per_choice_ct = exact_all  # type: ignore[assignment]
    per_choice_pt = split_evenly(int(pt), len(out))
    for s, p_, c_ in zip(out, per_choice_pt, per_choice_ct, strict=True):
        s["usage"] = {"prompt_tokens": p_, "completion_tokens": c_}
        s["cost_usd"] = prices.cost(p_, c_)
    return out
