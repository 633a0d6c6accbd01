"""What went wrong with a request, sorted: TransientError (worth retrying: 429, 408, 409, 5xx,
timeouts, resets, a 200 whose body is not the JSON it should be) or PermanentError (400, 401,
403, 404, 422, ...), each as one clear line.

The `openai` SDK raises its own exceptions (APIStatusError, APITimeoutError, APIConnectionError,
APIResponseValidationError) and, for a 200 whose body is malformed JSON, a plain JSONDecodeError
it does not retry; `sort_failure` turns any of them into ours. The API key never appears in a
message: every message is scrubbed of it (and of anything that looks like an OpenAI key).
"""

from __future__ import annotations

import errno
import json
import re
from typing import Any
from urllib.parse import urlsplit

import openai

from ...errors import PermanentError, TransientError
from .retry import is_transient_status, parse_retry_after

_KEY_LIKE = re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-*.]{6,}")
_BODY_VALIDATION = re.compile(r"validation error.*'loc': \('body'", re.S)


class HTTPStatusError(PermanentError):
    """A permanent HTTP error (400, 401, 403, 404, 422, ...); `status` holds the code."""

    def __init__(self, message: str, status: int, detail: str = ""):
        super().__init__(message)
        self.status = status
        self.detail = detail


class TransientHTTPError(TransientError):
    """A transient failure; `status` is the HTTP code, or None for network-level failures."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(message, retry_after=retry_after)
        self.status = status


class Scrubber:
    """Removes the API key (and anything key-like) from text that may be shown or logged."""

    def __init__(self, secret: str | None):
        self._secret = secret

    def __call__(self, text: str) -> str:
        if self._secret:
            text = text.replace(self._secret, "***")
        return _KEY_LIKE.sub("***", text)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def error_detail(text: str) -> str:
    """The human part of an error body: error.message, error, detail, message, else the text."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    msg: Any = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            msg = err.get("message") or err.get("type")
        elif isinstance(err, str):
            msg = err
        msg = msg or data.get("detail") or data.get("message")
    if msg is None:
        msg = text
    if not isinstance(msg, str):
        msg = json.dumps(msg, ensure_ascii=False)
    msg = " ".join(msg.split())
    return msg[:300] + ("..." if len(msg) > 300 else "")


def _is_request_validation_error(status: int, detail: str) -> bool:
    """A 500 that is the server refusing the request body (llama-cpp-python answers a pydantic
    validation error with 500): retrying cannot help, so it is permanent like a 400."""
    return status == 500 and bool(_BODY_VALIDATION.search(detail))


def _chain(e: BaseException) -> list[BaseException]:
    """The exception and its causes / contexts, outermost first."""
    out: list[BaseException] = []
    cur: BaseException | None = e
    while cur is not None and cur not in out and len(out) < 12:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _os_reason(e: BaseException) -> str:
    """'connection refused', 'connection reset', ... from a connection error's causes."""
    for x in _chain(e):
        code = getattr(x, "errno", None)
        if isinstance(x, ConnectionRefusedError) or code == errno.ECONNREFUSED:
            return "connection refused"
        if isinstance(x, ConnectionResetError) or code == errno.ECONNRESET:
            return "connection reset"
    for x in _chain(e):
        if isinstance(x, OSError) and (x.strerror or str(x)):
            return (x.strerror or str(x)).lower()
    inner = _chain(e)[-1]
    return (str(inner) or type(inner).__name__).lower()


def _is_connect_failure(e: BaseException) -> bool:
    """The connection was never made (as opposed to lost after the request went out)."""
    return any("ConnectError" in type(x).__name__ for x in _chain(e)) or any(
        isinstance(x, ConnectionRefusedError) for x in _chain(e)
    )


def status_error(
    status: int, reason: str, text: str, headers: Any, url: str, scrub: Scrubber
) -> PermanentError | TransientError:
    """An HTTP error reply as our error: transient statuses carry the server's Retry-After."""
    detail = scrub(error_detail(text))
    msg = f"openai: {status} {reason} from {url}: {detail}".rstrip(": ")
    if is_transient_status(status) and not _is_request_validation_error(status, detail):
        return TransientHTTPError(msg, retry_after=parse_retry_after(headers), status=status)
    return HTTPStatusError(msg, status=status, detail=detail)


def malformed(url: str, status: int, text: str, scrub: Scrubber) -> TransientHTTPError:
    snippet = scrub(" ".join(text[:80].split()))
    return TransientHTTPError(
        f"openai: malformed JSON from {url} (HTTP {status}): {snippet!r}", status=status
    )


def sort_failure(
    e: BaseException, method: str, url: str, timeout: float, scrub: Scrubber
) -> BaseException:
    """Our error for an exception raised by an SDK call to `url` (others come back unchanged)."""
    path = urlsplit(url).path
    if isinstance(e, openai.APIStatusError):
        r = e.response
        return status_error(e.status_code, r.reason_phrase or "", r.text, r.headers, url, scrub)
    if isinstance(e, openai.APITimeoutError):
        return TransientHTTPError(f"openai: no answer from {url} within {timeout:g}s (timeout)")
    if isinstance(e, openai.APIConnectionError):
        if _is_connect_failure(e):
            return TransientHTTPError(f"cannot reach {origin_of(url)}: {_os_reason(e)}")
        inner = _chain(e)[1] if len(_chain(e)) > 1 else e
        return TransientHTTPError(
            scrub(
                f"openai: connection reset by {origin_of(url)} during {method} {path} "
                f"({type(inner).__name__})"
            )
        )
    if isinstance(e, openai.APIResponseValidationError):
        body = e.body if isinstance(e.body, str) else json.dumps(e.body, default=str)
        return malformed(url, e.status_code, body, scrub)
    if isinstance(e, json.JSONDecodeError):  # the SDK does not retry a 200 with broken JSON
        return malformed(url, 200, e.doc, scrub)
    return e
