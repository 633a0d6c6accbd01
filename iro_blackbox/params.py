"""One validated sampling-parameters object, shared by every provider and search."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class SamplingParams:
    """How to sample tokens. Errors name the parameter and the bad value."""

    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 means no top-k cut
    stop: tuple[str, ...] = field(default_factory=tuple)
    seed: int | None = None  # base seed; sample i of a request uses (seed, sample_index + i)
    logprobs: bool = False  # ask for per-token logprobs where the provider exposes them

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        elif isinstance(self.stop, list):
            object.__setattr__(self, "stop", tuple(self.stop))
        if not isinstance(self.temperature, (int, float)) or not 0.0 <= self.temperature <= 10.0:
            raise ConfigError(f"temperature must be in [0, 10], got {self.temperature!r}")
        if not isinstance(self.top_p, (int, float)) or not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ConfigError(f"top_k must be an integer >= 0, got {self.top_k!r}")
        if not all(isinstance(s, str) and s for s in self.stop):
            raise ConfigError(f"stop must be a list of non-empty strings, got {self.stop!r}")
        if len(self.stop) > 4:
            raise ConfigError(f"stop takes at most 4 strings, got {len(self.stop)}")
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d

    def replace(self, **changes: Any) -> SamplingParams:
        return replace(self, **changes)


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """Validate an integer option; the error names it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value
