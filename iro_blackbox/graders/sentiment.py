"""`sentiment`: VADER's compound score of the response (-1 very negative .. +1 very positive).

    {"type": "sentiment", "name": "sentiment"}              # also the built-in named "sentiment"
    {"type": "sentiment", "input": "{{ sample.output_text }}", "normalize": true}   # 0..1

The demo's reward: cheap, deterministic, lexicon shipped inside the vaderSentiment package.
"""

from __future__ import annotations

import functools
from typing import Any

from .common import BaseGrader, GraderContext, read_common
from .spec import SpecReader
from .template import Template


@functools.lru_cache(maxsize=1)
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # heavy: reads its lexicon

    return SentimentIntensityAnalyzer()


def vader_compound(text: str) -> float:
    return float(_analyzer().polarity_scores(text)["compound"])


class SentimentGrader(BaseGrader):
    type_name = "sentiment"

    def __init__(self, *, input: Template, normalize: bool, **base: Any):
        super().__init__(templates=[input], **base)
        self.input = input
        self.normalize = normalize

    @classmethod
    def from_spec(cls, spec: dict[str, Any], ctx: GraderContext) -> SentimentGrader:
        r = SpecReader(spec, ctx.label(str(spec.get("name", spec.get("type")))))
        r.raw("type")
        name, error_score = read_common(r)
        inp = r.template("input", "{{ sample.output_text }}")
        normalize = r.boolean("normalize", False)
        norm = r.finish()
        return cls(
            input=inp,
            normalize=normalize,
            name=name,
            spec=norm,
            label=r.label,
            error_score=error_score,
        )

    def score_one(self, sample: dict[str, Any], item: dict[str, Any]) -> float:
        x = vader_compound(self.input.render(item, sample))
        return (x + 1.0) / 2.0 if self.normalize else x
