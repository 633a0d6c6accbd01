"""Request validation for the OpenAI-compatible endpoints: typed pydantic models; their errors
become OpenAI-style error bodies (errors.py).

A body is validated by `CompletionBody` / `ChatBody`: typed fields (strict: "10" is not an
integer), `Literal` roles, `Field` ranges for what is fixed (temperature in [0, 2], seed >= 0, ...),
chat content as a string or a list of parts discriminated by their `type`; the caps a server sets
(largest max_tokens, n, W*K, prompts per request) come from its Limits in the validation context.
Every problem becomes an `ApiError` with the HTTP status, a message naming the field and the bad
value, and `param`, rendered as {"error": {"message", "type", "param", "code"}} like OpenAI's API,
so the official client raises its usual BadRequestError / AuthenticationError / NotFoundError.
`null` means "not given" for every optional field, as in OpenAI's API; fields this server does not
know are ignored, as OpenAI ignores them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .errors import ApiError, bad, first_error, tname

Role = Literal["system", "developer", "user", "assistant"]
ROLES: tuple[str, ...] = get_args(Role)


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


# -- validation helpers -------------------------------------------------------------------------
def _fail(message: str, param: str | None = None, code: str | None = None) -> PydanticCustomError:
    """A validation error carrying our message and, where it is not the field's own path, the
    OpenAI `param` it is about (None: the path of the field that failed)."""
    return PydanticCustomError("iro", message, {"api_param": param, "api_code": code})


def _limits(info: ValidationInfo) -> Limits:
    return (info.context or {}).get("limits") or Limits()


# the server-set cap of each bounded integer (its lower bound is the field's own `ge`)
_CAPS = {"max_tokens": "max_tokens", "max_completion_tokens": "max_tokens", "n": "max_n",
         "iro.w": "max_beams", "iro.k": "max_beams", "iro.l": "max_tokens"}  # fmt: skip


def _cap(name: str, v: int | None, info: ValidationInfo) -> int | None:
    hi = getattr(_limits(info), _CAPS[name])
    if v is not None and v > hi:
        raise _fail(f"'{name}' must be between 1 and {hi}, got {v}", name)
    return v


def _one_of(expect: str, missing: str | None = None) -> WrapValidator:
    """A union's failure as one error: "'<field>' must be <expect>, got <type>" (`missing`: the
    message for null / not given). Errors of our own from inside pass through unchanged."""

    def wrap(v: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        if v is None:
            if missing is not None:
                raise _fail(missing)
            return None
        try:
            return handler(v)
        except ValidationError as e:
            own = [x for x in e.errors(include_url=False) if x["type"] == "iro"]
            if own:
                ctx = own[0].get("ctx") or {}
                raise _fail(own[0]["msg"], ctx.get("api_param"), ctx.get("api_code")) from None
            raise _fail(f"'{info.field_name}' must be {expect}, got {tname(v)}") from None

    return WrapValidator(wrap)


# -- the models ---------------------------------------------------------------------------------
class _Body(BaseModel):
    # strict: "10" is not an integer; extra fields are kept (unsupported() looks at them) and
    # otherwise ignored; validators run on defaults too (a missing `prompt` is an error)
    model_config = ConfigDict(extra="allow", strict=True, validate_default=True)


class StreamOptions(_Body):
    include_usage: StrictBool | None = None


class IroOptions(_Body):
    """The `iro` extension: the search's W, K and L for this request."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)
    w: Annotated[StrictInt, Field(ge=1)] | None = None
    k: Annotated[StrictInt, Field(ge=1)] | None = None
    l: Annotated[StrictInt, Field(ge=1)] | None = None  # noqa: E741

    @field_validator("w", "k", "l")
    @classmethod
    def _caps(cls, v: int | None, info: ValidationInfo) -> int | None:
        return _cap(f"iro.{info.field_name}", v, info)

    @model_validator(mode="after")
    def _product(self, info: ValidationInfo) -> IroOptions:
        cap = _limits(info).max_beams
        if (self.w or 1) * (self.k or 1) > cap:
            raise _fail(f"'iro.w' * 'iro.k' must be at most {cap}", "iro")
        return self


class _Common(_Body):
    model: StrictStr | None = None
    max_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    n: Annotated[StrictInt, Field(ge=1)] | None = None
    seed: Annotated[StrictInt, Field(ge=0)] | None = None
    # strict floats take integers too, not booleans
    temperature: Annotated[StrictFloat, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[StrictFloat, Field(gt=0.0, le=1.0)] | None = None
    stop: Annotated[
        StrictStr | list[StrictStr] | None, _one_of("a string or an array of strings")
    ] = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    iro: IroOptions | None = None

    @field_validator("max_tokens", "n")
    @classmethod
    def _caps(cls, v: int | None, info: ValidationInfo) -> int | None:
        return _cap(info.field_name or "", v, info)

    @field_validator("temperature", "top_p")
    @classmethod
    def _float(cls, v: float | None) -> float | None:
        return None if v is None else float(v)

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None, info: ValidationInfo) -> list[str]:
        stops = [] if v is None else [v] if isinstance(v, str) else list(v)
        stops = [s for s in stops if s]  # OpenAI ignores empty stop strings
        cap = _limits(info).max_stop
        if len(stops) > cap:
            raise _fail(f"'stop' takes at most {cap} strings, got {len(stops)}", "stop")
        return stops

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
            stop=list(self.stop or []),
            stream=bool(self.stream),
            include_usage=bool(self.stream_options and self.stream_options.include_usage),
            w=iro.w,
            k=iro.k,
            l=iro.l,
        )


TokenIds = Annotated[list[StrictInt], Field(min_length=1)]
PromptValue = Annotated[
    StrictStr | list[StrictStr] | TokenIds | list[TokenIds],
    _one_of("a string or a non-empty array of strings", missing="you must provide a 'prompt'"),
]


class CompletionBody(_Common):
    """POST /v1/completions."""

    prompt: PromptValue = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, p: Any, info: ValidationInfo) -> list[str]:
        prompts = [p] if isinstance(p, str) else list(p)
        if not prompts:
            raise _fail("'prompt' must be a string or a non-empty array of strings, got array")
        if not all(isinstance(x, str) for x in prompts):
            raise _fail("token-id prompts are not supported: send text")
        cap = _limits(info).max_prompts
        if len(prompts) > cap:
            raise _fail(f"'prompt' takes at most {cap} strings, got {len(prompts)}")
        return prompts

    @model_validator(mode="after")
    def _count(self, info: ValidationInfo) -> CompletionBody:
        cap = _limits(info).max_prompts
        if self.prompt is not None and len(self.prompt) * (self.n or 1) > cap:
            raise _fail(
                f"len(prompt) * n must be at most {cap}, got {len(self.prompt) * self.n}", "n"
            )
        return self


# -- chat content: a string, or parts discriminated by their `type` ------------------------------
class _Part(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class TextPart(_Part):
    type: Literal["text"]
    text: StrictStr


class ImagePart(_Part):
    type: Literal["image_url"]


class AudioPart(_Part):
    type: Literal["input_audio"]


class FilePart(_Part):
    type: Literal["file"]


ContentPart = Annotated[
    TextPart | ImagePart | AudioPart | FilePart,
    Discriminator("type"),  # an unknown or missing type: "only text parts are supported"
]


_PART: TypeAdapter[Any] = TypeAdapter(ContentPart)


def _content(v: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """A string, or a list of parts; errors say which part ("content[1].text must be a string")."""
    if not isinstance(v, (str, list)):
        raise _fail(f"content must be a string or an array of text parts, got {tname(v)}")
    if isinstance(v, list):
        for j, part in enumerate(v):
            try:
                _PART.validate_python(part, strict=True)
            except ValidationError as e:
                err = e.errors(include_url=False)[0]
                if err["loc"][-1:] == ("text",) and err["type"] == "string_type":
                    got = tname(err["input"])
                    raise _fail(f"content[{j}].text must be a string, got {got}") from None
                if err["loc"][-1:] == ("text",) and err["type"] == "missing":
                    raise _fail(f"content[{j}].text is required") from None
                raise _fail(f"content[{j}]: only text parts are supported") from None
    return handler(v)


class ChatMessage(_Body):
    role: Role
    content: Annotated[StrictStr | list[ContentPart], WrapValidator(_content)]
    tool_calls: Any = None
    function_call: Any = None

    @field_validator("content")
    @classmethod
    def _text(cls, content: str | list[Any]) -> str:
        if isinstance(content, str):
            return content
        for j, part in enumerate(content):
            if not isinstance(part, TextPart):
                raise _fail(f"content[{j}]: only text parts are supported")
        return "".join(part.text for part in content)

    @model_validator(mode="after")
    def _no_tools(self) -> ChatMessage:
        if self.tool_calls or self.function_call:
            raise _fail("tool calls are not supported by iro-bb serve")
        return self


class ChatBody(_Common):
    """POST /v1/chat/completions."""

    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: Annotated[StrictInt, Field(ge=1)] | None = None

    @field_validator("max_completion_tokens")
    @classmethod
    def _mct(cls, v: int | None, info: ValidationInfo) -> int | None:
        return _cap("max_completion_tokens", v, info)

    @field_validator("messages")
    @classmethod
    def _last(cls, msgs: list[ChatMessage]) -> list[ChatMessage]:
        if msgs[-1].role == "assistant":
            raise _fail(
                "the last message must not be an assistant message: continuing a partial answer "
                "is not supported"
            )
        return msgs

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


def _validate(model: type[_Common], body: Any, limits: Limits) -> _Common:
    if not isinstance(body, dict):
        raise bad(f"the request body must be a JSON object, got {tname(body)}")
    try:
        return model.model_validate(body, context={"limits": limits})
    except ValidationError as e:
        raise first_error(e, model, {p: getattr(limits, f) for p, f in _CAPS.items()}) from None


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
