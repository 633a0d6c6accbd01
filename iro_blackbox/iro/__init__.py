"""IRO itself: the run's configuration (config.py), the pre-flight before its first request
(preflight.py), the loop of its steps (loop.py), the run's record (bookkeeping.py), what it
measures (metrics.py), the aligned policy (policy.py, generate.py), the comparison with baselines
(evaluate.py) and the report (report.py).

The names below load on first use: the loop and the policy bring torch (heavy), which reading a
config (the CLI's option list) does not need.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "AlignConfig": "config",
    "AlignLoop": "loop",
    "RunResult": "bookkeeping",
    "align": "loop",
    "align_async": "loop",
    "AlignedPolicy": "policy",
    "Generation": "policy",
    "load_run": "policy",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
