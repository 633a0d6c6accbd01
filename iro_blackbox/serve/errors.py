"""OpenAI-style error bodies for `iro-bb serve`, and how a pydantic validation error of a request
model (schemas.py) becomes one: the first problem, with a message naming the field and the bad
value, and the OpenAI `param` (e.g. "messages[0].role")."""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel, ValidationError


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
_MISSING = {"prompt": "you must provide a 'prompt'", "messages": "you must provide 'messages'"}
_ARRAYS = {"messages": "a non-empty array"}  # arrays that must not be empty
_RANGES = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _param(loc: tuple[Any, ...]) -> str | None:
    """("iro", "w") -> "iro.w"; ("messages", 0, "role") -> "messages[0].role"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def _field(model: type[BaseModel], loc: tuple[Any, ...]) -> Any:
    """The FieldInfo at `loc` (names of fields, nested models followed), or None."""
    info = None
    for part in loc:
        if not isinstance(part, str) or model is None:
            return None
        info = model.model_fields.get(part)
        if info is None:
            return None
        nested = [a for a in (info.annotation, *get_args(info.annotation)) if isinstance(a, type)]
        model = next((a for a in nested if issubclass(a, BaseModel)), None)  # type: ignore[assignment]
    return info


def _bounds(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, Any, bool]:
    """(lower, upper, integer?) of a ranged field: bounds as ("ge"|"gt", value) pairs or None."""
    info = _field(model, loc)
    lo = hi = None
    integer = True
    for arg in get_args(info.annotation) if info is not None else ():
        for meta in getattr(arg, "__metadata__", ()):
            for m in getattr(meta, "metadata", [meta]):
                for key in ("ge", "gt"):
                    if getattr(m, key, None) is not None:
                        lo = (key, getattr(m, key))
                for key in ("le", "lt"):
                    if getattr(m, key, None) is not None:
                        hi = (key, getattr(m, key))
        integer = integer and get_args(arg)[:1] != (float,)
    return lo, hi, integer


def _range_text(model: type[BaseModel], loc: tuple[Any, ...], caps: dict[str, int]) -> str:
    """How a ranged field's bounds read: "between 1 and 512", ">= 0", "in (0, 1]"; `caps`: the
    upper bounds a server sets, by param."""
    lo, hi, integer = _bounds(model, loc)
    param = _param(loc)
    if hi is None and param in caps:
        hi = ("le", caps[param])
    num = (lambda x: f"{x:g}") if not integer else str  # noqa: E731
    if lo is not None and hi is None:
        return f"{'>=' if lo[0] == 'ge' else '>'} {num(lo[1])}"
    if lo is None and hi is not None:
        return f"{'<=' if hi[0] == 'le' else '<'} {num(hi[1])}"
    if integer and lo is not None and hi is not None and lo[0] == "ge" and hi[0] == "le":
        return f"between {lo[1]} and {hi[1]}"
    left = "[" if lo is None or lo[0] == "ge" else "("
    right = "]" if hi is None or hi[0] == "le" else ")"
    return f"in {left}{num(lo[1]) if lo else ''}, {num(hi[1]) if hi else ''}{right}"


def first_error(e: ValidationError, model: type[BaseModel], caps: dict[str, int]) -> ApiError:
    """The first problem of a validation error of `model` as an ApiError (400). Our own errors
    (type "iro", see schemas._fail) keep their message; `caps`: upper bounds by param."""
    err = e.errors(include_url=False)[0]
    ctx = err.get("ctx") or {}
    loc = tuple(err["loc"])
    param = _param(loc)
    v = err.get("input")
    if err["type"] == "iro":
        where = ctx.get("api_param") or param
        msg = err["msg"]
        if len(loc) > 2 and loc[0] == "messages":  # "content ..." of messages[i]
            msg = f"{_param(loc[:2])}.{msg}"
        return bad(msg, where, ctx.get("api_code"))
    if param in _MISSING and (err["type"] == "missing" or v is None):
        return bad(_MISSING[param], param)
    if err["type"] == "missing":
        return bad(f"you must provide '{param}'", param)
    if param in _ARRAYS and err["type"] in ("list_type", "too_short"):
        return bad(f"'{param}' must be {_ARRAYS[param]}, got {tname(v)}", param)
    if err["type"] == "literal_error":
        return bad(f"{param} must be one of {ctx.get('expected')}, got {v!r}", param)
    if err["type"] in _RANGES and param is not None:
        return bad(f"'{param}' must be {_range_text(model, loc, caps)}, got {v}", param)
    if err["type"] in _TYPES:
        return bad(f"'{param}' must be {_TYPES[err['type']]}, got {tname(v)} {v!r}", param)
    if err["type"] == "extra_forbidden":  # only `iro` forbids extra keys
        head = param.split(".")[0] if param else None
        return bad(f"'iro' takes w, k and l, not {str(loc[-1])}", head)
    return bad(f"'{param}': {err['msg']}", param)


def tname(v: Any) -> str:
    """The JSON type of a value, as messages name it."""
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
