"""Request validation for the OpenAI-compatible endpoints (pydantic models), and OpenAI-style
error bodies.

A body is validated by `CompletionBody` / `ChatBody` with the server's Limits in the validation
context. Every problem becomes an `ApiError` with the HTTP status, a message naming the field and
the bad value, and `param`, rendered as {"error": {"message", "type", "param", "code"}} like
OpenAI's API, so the official client raises its usual BadRequestError / AuthenticationError /
NotFoundError. `null` means "not given" for every optional field, as in OpenAI's API; fields this
server does not know are ignored, as OpenAI ignores them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

ROLES = ("system", "developer", "user", "assistant")


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


# -- the models ---------------------------------------------------------------------------------
def _fail(message: str, param: str | None, code: str | None = None) -> PydanticCustomError:
    """A validation error carrying our message and the OpenAI `param` it is about."""
    return PydanticCustomError("iro", message, {"api_param": param, "api_code": code})


def _limits(info: ValidationInfo) -> Limits:
    return (info.context or {}).get("limits") or Limits()


def _between(name: str, v: int | None, lo: int, hi: int | None) -> int | None:
    if v is not None and (v < lo or (hi is not None and v > hi)):
        rng = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        raise _fail(f"'{name}' must be {rng}, got {v}", name)
    return v


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


class _Body(BaseModel):
    # strict: "10" is not an integer; extra fields are kept (unsupported() looks at them) and
    # otherwise ignored; validators run on defaults too (a missing `prompt` is an error)
    model_config = ConfigDict(extra="allow", strict=True, validate_default=True)


class StreamOptions(_Body):
    include_usage: StrictBool | None = None


class IroOptions(_Body):
    """The `iro` extension: the search's W, K and L for this request."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)
    w: StrictInt | None = None
    k: StrictInt | None = None
    l: StrictInt | None = None  # noqa: E741

    @field_validator("w", "k")
    @classmethod
    def _beams(cls, v: int | None, info: ValidationInfo) -> int | None:
        return _between(f"iro.{info.field_name}", v, 1, _limits(info).max_beams)

    @field_validator("l")
    @classmethod
    def _chunk(cls, v: int | None, info: ValidationInfo) -> int | None:
        return _between("iro.l", v, 1, _limits(info).max_tokens)

    @model_validator(mode="after")
    def _product(self, info: ValidationInfo) -> IroOptions:
        cap = _limits(info).max_beams
        if (self.w or 1) * (self.k or 1) > cap:
            raise _fail(f"'iro.w' * 'iro.k' must be at most {cap}", "iro")
        return self


class _Common(_Body):
    model: StrictStr | None = None
    max_tokens: StrictInt | None = None
    n: StrictInt | None = None
    seed: StrictInt | None = None
    temperature: StrictFloat | None = None  # strict floats take integers too, not booleans
    top_p: StrictFloat | None = None
    stop: Any = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    iro: IroOptions | None = None

    @field_validator("max_tokens")
    @classmethod
    def _max_tokens(cls, v: int | None, info: ValidationInfo) -> int | None:
        return _between("max_tokens", v, 1, _limits(info).max_tokens)

    @field_validator("n")
    @classmethod
    def _n(cls, v: int | None, info: ValidationInfo) -> int | None:
        return _between("n", v, 1, _limits(info).max_n)

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int | None) -> int | None:
        return _between("seed", v, 0, None)

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, v: float | None) -> float | None:
        if v is not None and not 0.0 <= v <= 2.0:
            raise _fail(f"'temperature' must be in [0, 2], got {v}", "temperature")
        return None if v is None else float(v)

    @field_validator("top_p")
    @classmethod
    def _top_p(cls, v: float | None) -> float | None:
        if v is not None and not 0.0 < v <= 1.0:
            raise _fail(f"'top_p' must be in (0, 1], got {v}", "top_p")
        return None if v is None else float(v)

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: Any, info: ValidationInfo) -> list[str]:
        if v is None:
            return []
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise _fail(f"'stop' must be a string or an array of strings, got {_tname(v)}", "stop")
        v = [s for s in v if s]  # OpenAI ignores empty stop strings
        cap = _limits(info).max_stop
        if len(v) > cap:
            raise _fail(f"'stop' takes at most {cap} strings, got {len(v)}", "stop")
        return v

    def unsupported(self, defaults: dict[str, Any]) -> None:
        """Fields whose non-default values this server cannot honour: a clear 400, not silence."""
        extra = self.model_extra or {}
        for name, ok in defaults.items():
            v = extra.get(name)
            if v is None or v == [] or v == {} or v == ok:
                continue
            if isinstance(ok, tuple) and v in ok and not isinstance(v, bool):
                continue
            raise bad(
                f"'{name}' is not supported by iro-bb serve", name, code="unsupported_parameter"
            )

    def request(self, kind: str, served: str, limits: Limits) -> GenRequest:
        if self.model and self.model != served:
            raise ApiError(
                404,
                f"The model '{self.model}' does not exist: this server serves '{served}'",
                param="model",
                code="model_not_found",
            )
        iro = self.iro or IroOptions()
        return GenRequest(
            kind=kind,  # type: ignore[arg-type]
            model=served,
            prompts=[],
            max_tokens=self.max_tokens or limits.default_max_tokens,
            n=self.n or 1,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            stop=list(self.stop),
            stream=bool(self.stream),
            include_usage=bool(self.stream_options and self.stream_options.include_usage),
            w=iro.w,
            k=iro.k,
            l=iro.l,
        )


class CompletionBody(_Common):
    """POST /v1/completions."""

    prompt: Any = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, p: Any, info: ValidationInfo) -> list[str]:
        if p is None:
            raise _fail("you must provide a 'prompt'", "prompt")
        if isinstance(p, str):
            prompts = [p]
        elif isinstance(p, list) and p and all(isinstance(x, str) for x in p):
            prompts = list(p)
        elif isinstance(p, list) and p and all(_is_int(x) or isinstance(x, list) for x in p):
            raise _fail("token-id prompts are not supported: send text", "prompt")
        else:
            raise _fail(
                f"'prompt' must be a string or a non-empty array of strings, got {_tname(p)}",
                "prompt",
            )
        cap = _limits(info).max_prompts
        if len(prompts) > cap:
            raise _fail(f"'prompt' takes at most {cap} strings, got {len(prompts)}", "prompt")
        return prompts

    @model_validator(mode="after")
    def _count(self, info: ValidationInfo) -> CompletionBody:
        cap = _limits(info).max_prompts
        if self.prompt is not None and len(self.prompt) * (self.n or 1) > cap:
            raise _fail(
                f"len(prompt) * n must be at most {cap}, got {len(self.prompt) * self.n}", "n"
            )
        return self


class ChatMessage(_Body):
    role: Any = None
    content: Any = None
    tool_calls: Any = None
    function_call: Any = None

    @field_validator("role")
    @classmethod
    def _role(cls, v: Any) -> str:
        if v not in ROLES:
            raise _fail(f"role must be one of {', '.join(ROLES)}, got {v!r}", "role")
        return v

    @field_validator("content")
    @classmethod
    def _content(cls, content: Any) -> str:
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            parts = []
            for j, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") != "text":
                    raise _fail(f"content[{j}]: only text parts are supported", "content")
                if not isinstance(part.get("text"), str):
                    raise _fail(f"content[{j}].text must be a string", "content")
                parts.append(part["text"])
            return "".join(parts)
        raise _fail(
            f"content must be a string or an array of text parts, got {_tname(content)}", "content"
        )

    @model_validator(mode="after")
    def _no_tools(self) -> ChatMessage:
        if self.tool_calls or self.function_call:
            raise _fail("tool calls are not supported by iro-bb serve", None)
        return self


class ChatBody(_Common):
    """POST /v1/chat/completions."""

    messages: Any = None
    max_completion_tokens: StrictInt | None = None

    @field_validator("max_completion_tokens")
    @classmethod
    def _mct(cls, v: int | None, info: ValidationInfo) -> int | None:
        return _between("max_completion_tokens", v, 1, _limits(info).max_tokens)

    @field_validator("messages")
    @classmethod
    def _messages(cls, msgs: Any, info: ValidationInfo) -> list[ChatMessage]:
        if msgs is None:
            raise _fail("you must provide 'messages'", "messages")
        if not isinstance(msgs, list) or not msgs:
            raise _fail(f"'messages' must be a non-empty array, got {_tname(msgs)}", "messages")
        out = []
        for i, m in enumerate(msgs):
            if not isinstance(m, dict):
                raise _fail(f"messages[{i}] must be an object, got {_tname(m)}", f"messages[{i}]")
            try:
                out.append(ChatMessage.model_validate(m, context=info.context))
            except ValidationError as e:
                err = _first(e)
                raise _fail(
                    f"messages[{i}].{err.message}" if err.param else err.message,
                    f"messages[{i}].{err.param}" if err.param else f"messages[{i}]",
                ) from None
        if out[-1].role == "assistant":
            raise _fail(
                "the last message must not be an assistant message: continuing a partial answer "
                "is not supported",
                "messages",
            )
        return out

    @model_validator(mode="after")
    def _rest(self, info: ValidationInfo) -> ChatBody:
        if self.max_tokens is None:
            self.max_tokens = self.max_completion_tokens
        cap = _limits(info).max_prompts
        if (self.n or 1) > cap:
            raise _fail(f"'n' must be at most {cap}", "n")
        rf = (self.model_extra or {}).get("response_format")
        if rf is not None and not (isinstance(rf, dict) and rf.get("type") == "text"):
            raise _fail("'response_format' other than text is not supported", "response_format")
        return self


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# -- pydantic errors -> OpenAI-style errors ------------------------------------------------------
_TYPES = {  # pydantic error type -> what the field must be
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "string_type": "a string",
    "model_type": "an object",
    "dict_type": "an object",
}


def _param(loc: tuple[Any, ...]) -> str | None:
    """("iro", "w") -> "iro.w"; ("messages", 0, "role") -> "messages[0].role"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def _first(e: ValidationError) -> ApiError:
    """The first problem of a validation error as an ApiError (400)."""
    err = e.errors(include_url=False)[0]
    ctx = err.get("ctx") or {}
    if err["type"] == "iro":
        return bad(err["msg"], ctx.get("api_param"), ctx.get("api_code"))
    param = _param(tuple(err["loc"]))
    v = err.get("input")
    if err["type"] in _TYPES:
        return bad(f"'{param}' must be {_TYPES[err['type']]}, got {_tname(v)} {v!r}", param)
    if err["type"] == "extra_forbidden":  # only `iro` forbids extra keys
        head = param.split(".")[0] if param else None
        return bad(f"'iro' takes w, k and l, not {str(err['loc'][-1])}", head)
    return bad(f"'{param}': {err['msg']}", param)


def _validate(model: type[_Common], body: Any, limits: Limits) -> _Common:
    if not isinstance(body, dict):
        raise bad(f"the request body must be a JSON object, got {_tname(body)}")
    try:
        return model.model_validate(body, context={"limits": limits})
    except ValidationError as e:
        raise _first(e) from None


def parse_completion(body: Any, served: str, limits: Limits) -> GenRequest:
    """Validate a /v1/completions body."""
    b = _validate(CompletionBody, body, limits)
    b.unsupported({"echo": False, "suffix": "", "logprobs": (0,), "best_of": (1,)})
    req = b.request("completion", served, limits)
    req.prompts = list(b.prompt)  # type: ignore[attr-defined]
    return req


def parse_chat(body: Any, served: str, limits: Limits) -> GenRequest:
    """Validate a /v1/chat/completions body."""
    b = _validate(ChatBody, body, limits)
    b.unsupported(
        {
            "logprobs": False,
            "top_logprobs": (0,),
            "tools": None,
            "functions": None,
            "tool_choice": "none",
            "function_call": "none",
            "audio": None,
            "prediction": None,
        }
    )
    req = b.request("chat", served, limits)
    req.prompts = [[{"role": m.role, "content": m.content} for m in b.messages]]  # type: ignore[attr-defined]
    return req
