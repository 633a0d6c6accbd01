"""HTTP transport for OpenAI-compatible endpoints (aiohttp), with failures sorted into
TransientError (worth retrying) and PermanentError (not), each as one clear line.

The API key goes into the Authorization header only; every message is scrubbed of it (and of
anything that looks like an OpenAI key) before it leaves this module.
"""

from __future__ import annotations

import asyncio
import errno
import json
import re
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ...errors import PermanentError, TransientError
from .retry import is_transient_status, parse_retry_after

DUMMY_KEY = "sk-no-key-required"  # sent to servers that need none (local llama.cpp, vLLM)
_KEY_LIKE = re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-*.]{6,}")


_BODY_VALIDATION = re.compile(r"validation error.*'loc': \('body'", re.S)


def _is_request_validation_error(status: int, detail: str) -> bool:
    """A 500 that is the server refusing the request body (llama-cpp-python answers a pydantic
    validation error with 500): retrying cannot help, so it is permanent like a 400."""
    return status == 500 and bool(_BODY_VALIDATION.search(detail))


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


def _os_reason(e: BaseException) -> str:
    """'connection refused', 'connection reset', ... from a connection error."""
    os_err = getattr(e, "os_error", None) or e
    code = getattr(os_err, "errno", None)
    if isinstance(os_err, ConnectionRefusedError) or code == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(os_err, ConnectionResetError) or code == errno.ECONNRESET:
        return "connection reset"
    strerror = getattr(os_err, "strerror", None)
    return (strerror or str(os_err) or type(os_err).__name__).lower()


class HttpClient:
    """Requests to `base_url + path`, answered with parsed JSON (or text), else raises.

    One aiohttp session per event loop (sessions cannot cross loops). The provider's chunk
    requests (`post_json`) and the Batch API's files and batches (`request`) share it.
    """

    def __init__(self, base_url: str, api_key: str | None, timeout: float):
        self.base_url = base_url.rstrip("/")
        self._key = api_key or DUMMY_KEY
        self._secret = api_key  # scrubbed from messages
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def scrub(self, text: str) -> str:
        if self._secret:
            text = text.replace(self._secret, "***")
        return _KEY_LIKE.sub("***", text)

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            if self._session is not None and not self._session.closed:
                self._session.detach()  # its loop is gone; cannot await close()
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self._key}", "User-Agent": "iro-bb"},
                connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
            self._loop = loop
        return self._session

    async def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON body; the reply must be a JSON object."""
        return await self.request(
            "POST", path, data=json.dumps(body), headers={"Content-Type": "application/json"}
        )

    async def request(
        self, method: str, path: str, *, parse: str = "json", **kw: Any
    ) -> dict[str, Any] | str:
        """One HTTP request (no retries: see retry.py). parse="json" returns the JSON object of
        the reply, parse="text" its text. `kw` goes to aiohttp (data=, json=, headers=)."""
        url = self.base_url + path
        session = self._get_session()
        try:
            async with session.request(method, url, **kw) as resp:
                text = await resp.text(errors="replace")
                status, reason, headers = resp.status, resp.reason or "", resp.headers
        except asyncio.TimeoutError:
            raise TransientHTTPError(
                f"openai: no answer from {url} within {self.timeout:g}s (timeout)"
            ) from None
        except aiohttp.ClientConnectorError as e:
            raise TransientHTTPError(f"cannot reach {origin_of(url)}: {_os_reason(e)}") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as e:
            raise TransientHTTPError(
                f"openai: connection reset by {origin_of(url)} during {method} {path} "
                f"({type(e).__name__})"
            ) from None
        except aiohttp.ClientError as e:  # ClientOSError (ECONNRESET), other transport errors
            raise TransientHTTPError(
                self.scrub(f"openai: {_os_reason(e)} talking to {url}")
            ) from None
        if status >= 400:
            detail = self.scrub(error_detail(text))
            msg = f"openai: {status} {reason} from {url}: {detail}".rstrip(": ")
            if is_transient_status(status) and not _is_request_validation_error(status, detail):
                raise TransientHTTPError(msg, retry_after=parse_retry_after(headers), status=status)
            raise HTTPStatusError(msg, status=status, detail=detail)
        if parse == "text":
            return text
        try:
            data = json.loads(text)
        except ValueError:
            snippet = self.scrub(" ".join(text[:80].split()))
            raise TransientHTTPError(
                f"openai: malformed JSON from {url} (HTTP {status}): {snippet!r}", status=status
            ) from None
        if not isinstance(data, dict):
            raise TransientHTTPError(f"openai: malformed reply from {url}: not a JSON object")
        return data

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            if self._loop is asyncio.get_running_loop():
                await self._session.close()
            else:
                self._session.detach()
        self._session = None
