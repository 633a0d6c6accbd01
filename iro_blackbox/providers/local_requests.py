"""What the local providers (hf, vllm) do with one Extend request before queueing it: check it,
and derive its samples' seeds."""

from __future__ import annotations

import secrets
from typing import Any

from ..errors import ConfigError, InputError
from ..params import SamplingParams, check_positive_int
from ..utils import derive_seed
from .base import Extend
from .chat_template import check_prompt


def check_extend(i: int, req: Any) -> tuple[int, int, int, SamplingParams]:
    """Validate requests[i]: returns (n, max_tokens, first sample index, sampling params)."""
    if not isinstance(req, Extend):
        raise InputError(f"requests[{i}] must be an Extend, got {type(req).__name__}")
    check_prompt(req.prompt)
    if not isinstance(req.prefix, str):
        raise ConfigError(f"prefix must be a string, got {type(req.prefix).__name__}")
    n = check_positive_int("n", req.n)
    max_tokens = check_positive_int("max_tokens", req.max_tokens)
    start = check_positive_int("sample_index", req.sample_index, minimum=0)
    params = req.params
    if isinstance(params, dict):
        try:
            params = SamplingParams(**params)
        except TypeError as e:
            raise ConfigError(f"params: {e}") from None
    if not isinstance(params, SamplingParams):
        raise ConfigError(f"params must be SamplingParams, got {type(params).__name__}")
    return n, max_tokens, start, params


def sample_seeds(req: Extend, params: SamplingParams, n: int, start: int) -> list[int]:
    """Each sample's generator seed: derived from (seed, prompt, prefix, sample index) so a
    seeded request gives the same text alone or in any batch; random without a seed."""
    if params.seed is None:
        return [secrets.randbits(63) for _ in range(n)]
    return [derive_seed(params.seed, req.prompt, req.prefix, start + j) for j in range(n)]
