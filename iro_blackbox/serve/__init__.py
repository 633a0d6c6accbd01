"""`iro-bb serve`: the aligned policy behind OpenAI-compatible /v1/completions and
/v1/chat/completions (streaming too), with request batching, auth and limits."""

from .app import ServeConfig, ServerHandle, make_app, start_server
from .batcher import Batcher, GenParams
from .run import serve
from .schemas import ApiError, Limits

__all__ = [
    "ApiError",
    "Batcher",
    "GenParams",
    "Limits",
    "ServeConfig",
    "ServerHandle",
    "make_app",
    "serve",
    "start_server",
]
