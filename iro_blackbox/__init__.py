"""iro-bb: align a frozen language model with value-guided chunk-level search (IRO).

import iro_blackbox
run = iro_blackbox.align("mydata.jsonl", grader="sentiment", iterations=2)
policy = iro_blackbox.load_run(run.name)
print(policy.generate(["Tell me about Mondays."])[0].text)
"""

from __future__ import annotations

from typing import Any

from .errors import IroError

__version__ = "0.2.0"
__all__ = ["IroError", "RunResult", "__version__", "align", "load_run"]
_LAZY = ("RunResult", "align", "load_run")


def __getattr__(name: str) -> Any:
    """align, load_run and RunResult come from iro_blackbox.iro on first use: it loads torch
    (heavy), which `iro-bb --help` and the light commands never need."""
    if name in _LAZY:
        from . import iro  # heavy: torch

        return getattr(iro, name)
    raise AttributeError(f"module 'iro_blackbox' has no attribute {name!r}")
