"""Request validation for the OpenAI-compatible endpoints, and OpenAI-style error bodies.

Every problem becomes an `ApiError` with the HTTP status, a message naming the field and the bad
value, and `param`, rendered as {"error": {"message", "type", "param", "code"}} like OpenAI's API,
so the official client raises its usual BadRequestError / AuthenticationError / NotFoundError.
`null` means "not given" for every optional field, as in OpenAI's API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ROLES = ("system", "developer", "user", "assistant")
# OpenAI fields we accept and ignore (they do not change what the aligned policy can do)
IGNORED = frozenset(
    {
        "user",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "metadata",
        "store",
        "service_tier",
        "parallel_tool_calls",
        "modalities",
        "reasoning_effort",
        "prompt_cache_key",
        "safety_identifier",
    }
)


class ApiError(Exception):
    """An HTTP error with an OpenAI-style JSON body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        type: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.type = type or _default_type(status)
        self.code = code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def _default_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 404:
        return "not_found_error"
    if status == 413:
        return "request_too_large"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def bad(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (server options)."""

    max_tokens: int = 512  # largest max_tokens accepted
    default_max_tokens: int = 64  # when the request gives none
    max_n: int = 8  # choices per request
    max_prompts: int = 16  # prompts in one /v1/completions request
    max_beams: int = 64  # largest w * k of `iro`
    max_stop: int = 4


@dataclass
class GenRequest:
    """A validated completions or chat request."""

    kind: Literal["completion", "chat"]
    model: str
    prompts: list[str | list[dict[str, str]]]  # completions: one per prompt; chat: one message list
    max_tokens: int
    n: int = 1
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    w: int | None = None
    k: int | None = None
    l: int | None = None  # noqa: E741


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _tname(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _int(body: dict, name: str, lo: int, hi: int | None = None, param: str | None = None) -> Any:
    v = body.get(name)
    if v is None:
        return None
    p = param or name
    if not _is_int(v):
        raise bad(f"'{p}' must be an integer, got {_tname(v)} {v!r}", p)
    if v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        raise bad(f"'{p}' must be {rng}, got {v}", p)
    return v


def _num(body: dict, name: str, lo: float, hi: float, lo_open: bool = False) -> float | None:
    v = body.get(name)
    if v is None:
        return None
    if not _is_num(v):
        raise bad(f"'{name}' must be a number, got {_tname(v)} {v!r}", name)
    if v < lo or v > hi or (lo_open and v == lo):
        left = "(" if lo_open else "["
        raise bad(f"'{name}' must be in {left}{lo:g}, {hi:g}], got {v}", name)
    return float(v)


def _bool(body: dict, name: str) -> bool | None:
    v = body.get(name)
    if v is None:
        return None
    if not isinstance(v, bool):
        raise bad(f"'{name}' must be a boolean, got {_tname(v)} {v!r}", name)
    return v


def _stop(body: dict, limits: Limits) -> list[str]:
    v = body.get("stop")
    if v is None:
        return []
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise bad(f"'stop' must be a string or an array of strings, got {_tname(v)}", "stop")
    v = [s for s in v if s]  # OpenAI ignores empty stop strings
    if len(v) > limits.max_stop:
        raise bad(f"'stop' takes at most {limits.max_stop} strings, got {len(v)}", "stop")
    return v


def _unsupported(body: dict, names: dict[str, Any]) -> None:
    """Fields whose non-default values this server cannot honour: a clear 400, not silence."""
    for name, default_ok in names.items():
        v = body.get(name)
        if v is None or v == [] or v == {} or v == default_ok:
            continue
        if isinstance(default_ok, tuple) and v in default_ok and not isinstance(v, bool):
            continue
        raise bad(f"'{name}' is not supported by iro-bb serve", name, code="unsupported_parameter")


def _common(body: Any, kind: str, served: str, limits: Limits) -> GenRequest:
    if not isinstance(body, dict):
        raise bad(f"the request body must be a JSON object, got {_tname(body)}")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise bad(f"'model' must be a string, got {_tname(model)}", "model")
    if model and model != served:
        raise ApiError(
            404,
            f"The model '{model}' does not exist: this server serves '{served}'",
            param="model",
            code="model_not_found",
        )
    max_tokens = _int(body, "max_tokens", 1, limits.max_tokens)
    if kind == "chat":
        mct = _int(body, "max_completion_tokens", 1, limits.max_tokens)
        if max_tokens is None:
            max_tokens = mct
    n = _int(body, "n", 1, limits.max_n)
    seed = _int(body, "seed", 0)
    stream = _bool(body, "stream") or False
    include_usage = False
    so = body.get("stream_options")
    if so is not None:
        if not isinstance(so, dict):
            raise bad(f"'stream_options' must be an object, got {_tname(so)}", "stream_options")
        iu = so.get("include_usage")
        if iu is not None and not isinstance(iu, bool):
            raise bad("'stream_options.include_usage' must be a boolean", "stream_options")
        include_usage = bool(iu)
    iro = body.get("iro")
    w = k = ln = None
    if iro is not None:
        if not isinstance(iro, dict):
            raise bad(f"'iro' must be an object {{w, k, l}}, got {_tname(iro)}", "iro")
        unknown = sorted(set(iro) - {"w", "k", "l"})
        if unknown:
            raise bad(f"'iro' takes w, k and l, not {', '.join(unknown)}", "iro")
        w = _int(iro, "w", 1, limits.max_beams, param="iro.w")
        k = _int(iro, "k", 1, limits.max_beams, param="iro.k")
        ln = _int(iro, "l", 1, limits.max_tokens, param="iro.l")
        if (w or 1) * (k or 1) > limits.max_beams:
            raise bad(f"'iro.w' * 'iro.k' must be at most {limits.max_beams}", "iro")
    return GenRequest(
        kind=kind,  # type: ignore[arg-type]
        model=served,
        prompts=[],
        max_tokens=max_tokens or limits.default_max_tokens,
        n=n or 1,
        temperature=_num(body, "temperature", 0.0, 2.0),
        top_p=_num(body, "top_p", 0.0, 1.0, lo_open=True),
        seed=seed,
        stop=_stop(body, limits),
        stream=stream,
        include_usage=include_usage,
        w=w,
        k=k,
        l=ln,
    )


def parse_completion(body: Any, served: str, limits: Limits) -> GenRequest:
    """Validate a /v1/completions body."""
    req = _common(body, "completion", served, limits)
    if "prompt" not in body or body["prompt"] is None:
        raise bad("you must provide a 'prompt'", "prompt")
    p = body["prompt"]
    if isinstance(p, str):
        prompts: list[Any] = [p]
    elif isinstance(p, list) and p and all(isinstance(x, str) for x in p):
        prompts = list(p)
    elif isinstance(p, list) and p and all(_is_int(x) or isinstance(x, list) for x in p):
        raise bad("token-id prompts are not supported: send text", "prompt")
    else:
        raise bad(
            f"'prompt' must be a string or a non-empty array of strings, got {_tname(p)}",
            "prompt",
        )
    if len(prompts) > limits.max_prompts:
        raise bad(f"'prompt' takes at most {limits.max_prompts} strings, got {len(prompts)}")
    if len(prompts) * req.n > limits.max_prompts:
        raise bad(
            f"len(prompt) * n must be at most {limits.max_prompts}, got {len(prompts) * req.n}",
            "n",
        )
    _unsupported(body, {"echo": False, "suffix": "", "logprobs": (0,), "best_of": (1,)})
    req.prompts = prompts
    return req


def _content(content: Any, i: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise bad(
                    f"messages[{i}].content[{j}]: only text parts are supported",
                    f"messages[{i}].content",
                )
            text = part.get("text")
            if not isinstance(text, str):
                raise bad(
                    f"messages[{i}].content[{j}].text must be a string",
                    f"messages[{i}].content",
                )
            parts.append(text)
        return "".join(parts)
    raise bad(
        f"messages[{i}].content must be a string or an array of text parts, got {_tname(content)}",
        f"messages[{i}].content",
    )


def parse_chat(body: Any, served: str, limits: Limits) -> GenRequest:
    """Validate a /v1/chat/completions body."""
    req = _common(body, "chat", served, limits)
    msgs = body.get("messages")
    if msgs is None:
        raise bad("you must provide 'messages'", "messages")
    if not isinstance(msgs, list) or not msgs:
        raise bad(f"'messages' must be a non-empty array, got {_tname(msgs)}", "messages")
    out: list[dict[str, str]] = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise bad(f"messages[{i}] must be an object, got {_tname(m)}", f"messages[{i}]")
        role = m.get("role")
        if role not in ROLES:
            raise bad(
                f"messages[{i}].role must be one of {', '.join(ROLES)}, got {role!r}",
                f"messages[{i}].role",
            )
        if m.get("tool_calls") or m.get("function_call"):
            raise bad("tool calls are not supported by iro-bb serve", f"messages[{i}]")
        out.append({"role": role, "content": _content(m.get("content"), i)})
    if out[-1]["role"] == "assistant":
        raise bad(
            "the last message must not be an assistant message: continuing a partial answer is "
            "not supported",
            "messages",
        )
    if req.n > limits.max_prompts:
        raise bad(f"'n' must be at most {limits.max_prompts}", "n")
    _unsupported(
        body,
        {
            "logprobs": False,
            "top_logprobs": (0,),
            "tools": None,
            "functions": None,
            "tool_choice": "none",
            "function_call": "none",
            "audio": None,
            "prediction": None,
        },
    )
    rf = body.get("response_format")
    if rf is not None and not (isinstance(rf, dict) and rf.get("type") == "text"):
        raise bad("'response_format' other than text is not supported", "response_format")
    req.prompts = [out]
    return req
