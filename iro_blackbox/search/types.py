"""What a search takes (SearchParams) and what it gives back (SearchResult of Candidates)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..dataset import Example
from ..errors import ConfigError
from ..params import SamplingParams, check_positive_int
from ..utils import dataclass_from_dict

SELECTIONS = ("topw", "diverse", "softmax", "lineage")
FINALS = ("grader", "score", "auto")


@dataclass(frozen=True)
class SearchParams:
    """How to search. Errors name the parameter and the bad value.

    Published chunk-level beam search settings: W=4, K=4, L=16 (instructions) or L=8 (summaries),
    diversity-first selection. Equal compute with Best-of-N means n = W*K (the default n).
    """

    w: int = 4  # beams kept after every step (cbs)
    k: int = 4  # successors sampled per beam per step (cbs)
    # cbs: successors per beam at the first step only (None: k). With k=1 after a wide first
    # step (e.g. w=4, k_first=10, k=1) the search prunes early: W*k_first first chunks scored,
    # the best W finished without branching again
    k_first: int | None = None
    l: int = 16  # noqa: E741  # chunk length in tokens (cbs)
    max_tokens: int = 128  # response length cap in tokens (every method)
    n: int | None = None  # whole responses per prompt (sample, best_of_n); None means w*k
    # cbs selection: "topw" (best W by score), "diverse" (drop duplicate texts, then top W, pad with
    # the best duplicates; the published default), "softmax" (sample W unique candidates without
    # replacement, probability ∝ exp(S / selection_temperature)), "lineage" (the first step as
    # diverse, then every beam keeps the best of its own K successors: W chains that part at
    # the first chunk)
    selection: str = "diverse"
    selection_temperature: float = 1.0  # softmax selection only; 0 means top-W over unique texts
    sampling: SamplingParams = field(default_factory=SamplingParams)  # policy sampling (T=1)
    # the answer: "grader" (best reward; needs a grader), "score" (best value-model score S),
    # "auto" (grader when one is given, else score)
    final: str = "auto"
    grade_all: bool = True  # grade every returned candidate, not only the ones the pick needs
    concurrency: int = 8  # prompts searched at once (their provider rows share one call)

    def __post_init__(self) -> None:
        for name in ("w", "k", "l", "max_tokens", "concurrency"):
            check_positive_int(name, getattr(self, name))
        if self.k_first is not None:
            check_positive_int("k_first", self.k_first)
        if self.n is None:
            object.__setattr__(self, "n", self.w * self.k)
        check_positive_int("n", self.n)
        if self.selection not in SELECTIONS:
            raise ConfigError(
                f"selection must be one of {', '.join(SELECTIONS)}, got {self.selection!r}"
            )
        t = self.selection_temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= t <= 100.0:
            raise ConfigError(f"selection_temperature must be in [0, 100], got {t!r}")
        if isinstance(self.sampling, dict):
            object.__setattr__(self, "sampling", SamplingParams(**self.sampling))
        if not isinstance(self.sampling, SamplingParams):
            raise ConfigError(
                f"sampling must be SamplingParams or a dict, got {type(self.sampling).__name__}"
            )
        if self.final not in FINALS:
            raise ConfigError(f"final must be one of {', '.join(FINALS)}, got {self.final!r}")
        if not isinstance(self.grade_all, bool):
            raise ConfigError(f"grade_all must be true or false, got {self.grade_all!r}")

    @property
    def num_samples(self) -> int:
        """n as an int (always set after validation)."""
        assert self.n is not None
        return self.n

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["sampling"] = self.sampling.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchParams:
        """Build from a plain dict (unknown keys are an error that names them)."""
        d = dict(d) if isinstance(d, dict) else d
        if isinstance(d, dict) and isinstance(d.get("sampling"), dict):
            d["sampling"] = dataclass_from_dict(SamplingParams, d["sampling"], "sampling parameter")
        return dataclass_from_dict(cls, d, "search parameter")


@dataclass
class Candidate:
    """One whole response considered for a prompt."""

    text: str
    finish_reason: str  # "stop" (the model ended it) | "length" (max_tokens reached)
    score: float | None = None  # value-model score S = sum_t V_t/beta_t (None: not scored)
    reward: float | None = None  # grader score (None: not graded)
    grade_error: str | None = None  # set when the grader failed on it (reward is the fallback)
    completion_tokens: int = 0  # tokens of `text`
    selected: bool = False  # True for the answer (SearchResult.best)
    final: bool = True  # cbs: one of the W final beams; False for a finished, dropped candidate
    index: int = 0  # position in SearchResult.candidates
    chunks: list[str] = field(default_factory=list)  # cbs: the text chunk by chunk (for streaming)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchUsage:
    """What one prompt's search cost. Token counts are summed over EVERY generated chunk, kept or
    dropped, so methods compare at equal compute."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    provider_calls: int = 0  # provider.extend calls this prompt took part in (shared calls count)
    requests: int = 0  # Extend rows sent
    chunks: int = 0  # chunks received
    cached_chunks: int = 0  # chunks replayed from the request cache
    scored: int = 0  # prefixes scored by the value models
    graded: int = 0  # responses graded
    steps: int = 0  # cbs steps (1 for sample / best_of_n)
    generate_seconds: float = 0.0  # time spent waiting on the provider
    score_seconds: float = 0.0  # ... on the value models
    grade_seconds: float = 0.0  # ... on the grader

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    """The outcome for one prompt: the answer and every candidate considered.

    candidates: for sample / best_of_n the n samples; for cbs the W final beams (final=True)
    followed by every candidate that finished during the search but was dropped by selection
    (final=False). `best` is one of them (selected=True).
    """

    example: Example
    method: str
    best: Candidate
    candidates: list[Candidate]
    usage: SearchUsage = field(default_factory=SearchUsage)
    seconds: float = 0.0  # wall time from start to end of this prompt's search
    picked_by: str = "first"  # "grader" | "score" | "first" (sample: one draw of the policy)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.example.id,
            "method": self.method,
            "best": self.best.to_dict(),
            "candidates": [c.to_dict() for c in self.candidates],
            "usage": self.usage.to_dict(),
            "seconds": self.seconds,
            "picked_by": self.picked_by,
        }


def summarize(results: list[SearchResult]) -> dict[str, Any]:
    """Totals and means over many prompts' results (for progress lines, metrics and the
    equal-compute comparison). Rewards are means over the graded answers / candidates only.
    provider_calls is summed per prompt, so a call shared by several prompts counts once each."""

    def mean(xs: list[float]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    best = [r.best.reward for r in results if r.best.reward is not None]
    every = [c.reward for r in results for c in r.candidates if c.reward is not None]
    scores = [r.best.score for r in results if r.best.score is not None]
    total = SearchUsage()
    for r in results:
        for f in fields(SearchUsage):
            setattr(total, f.name, getattr(total, f.name) + getattr(r.usage, f.name))
    n = len(results)
    return {
        "prompts": n,
        "mean_reward": mean(best),
        "mean_reward_all": mean(every),
        "mean_score": mean(scores),
        "grade_errors": sum(1 for r in results for c in r.candidates if c.grade_error),
        "candidates": sum(len(r.candidates) for r in results),
        "completion_tokens_per_prompt": total.completion_tokens / n if n else 0.0,
        **total.to_dict(),
    }
