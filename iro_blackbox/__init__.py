"""iro-bb: align a frozen language model with value-guided chunk-level search (IRO).

import iro_blackbox
run = iro_blackbox.align("mydata.jsonl", grader="sentiment", iterations=2)
policy = iro_blackbox.load_run(run.name)
print(policy.generate(["Tell me about Mondays."])[0].text)
"""

from __future__ import annotations

__version__ = "0.1.0"

from .align import RunResult, align, load_run  # noqa: E402  (torch loads lazily, on first use)
from .errors import IroError  # noqa: E402

__all__ = ["IroError", "RunResult", "__version__", "align", "load_run"]
