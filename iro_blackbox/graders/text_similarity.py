"""`text_similarity`: a similarity metric between a templated input and reference, in 0..1.

    {"type": "text_similarity", "name": "close", "input": "{{ sample.output_text }}",
     "reference": "{{ item.answer }}", "evaluation_metric": "rouge_l"}

Metrics: fuzzy_match (rapidfuzz normalised Indel similarity, fuzz.ratio / 100), bleu (sacrebleu
sentence BLEU / 100), gleu (nltk sentence GLEU on whitespace tokens), rouge_1..rouge_5 and rouge_l
(rouge-score F-measure). OpenAI's `meteor` and `cosine` need downloaded data or an embedding model
and are refused with a clear message. `pass_threshold` is accepted and reported as details.passed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .base import Grade
from .common import BaseGrader, GraderContext, read_common
from .spec import SpecReader
from .template import Template

ROUGE = ("rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l")
METRICS = ("fuzzy_match", "bleu", "gleu", *ROUGE)
UNSUPPORTED = {
    "meteor": "needs NLTK's WordNet data, which is not shipped",
    "cosine": "needs an embedding model; use a python grader with your own embeddings",
}


def _fuzzy(a: str, b: str) -> float:
    from rapidfuzz import fuzz  # loaded by the metric that needs it

    return fuzz.ratio(a, b) / 100.0


def _bleu(a: str, b: str) -> float:
    import sacrebleu  # heavy: sacrebleu, for bleu only

    return sacrebleu.sentence_bleu(a, [b]).score / 100.0


def _gleu(a: str, b: str) -> float:
    from nltk.translate.gleu_score import sentence_gleu  # heavy: nltk, for gleu only

    hyp, ref = a.split(), b.split()
    if not hyp or not ref:
        return 1.0 if hyp == ref else 0.0
    return float(sentence_gleu([ref], hyp))


@functools.lru_cache(maxsize=8)
def _rouge_scorer(kind: str) -> Any:
    from rouge_score import rouge_scorer  # heavy: rouge-score (nltk), for rouge only

    return rouge_scorer.RougeScorer([kind])


def _rouge(kind: str) -> Callable[[str, str], float]:
    key = "rougeL" if kind == "rouge_l" else f"rouge{kind[-1]}"

    def score(a: str, b: str) -> float:
        return float(_rouge_scorer(key).score(b, a)[key].fmeasure)

    return score


def metric_fn(metric: str) -> Callable[[str, str], float]:
    """The scoring function `(input, reference) -> 0..1` of a metric name."""
    if metric in ROUGE:
        return _rouge(metric)
    return {"fuzzy_match": _fuzzy, "bleu": _bleu, "gleu": _gleu}[metric]


class TextSimilarityGrader(BaseGrader):
    type_name = "text_similarity"

    def __init__(
        self,
        *,
        input: Template,
        reference: Template,
        metric: str,
        threshold: float | None,
        **base: Any,
    ):
        super().__init__(templates=[input, reference], **base)
        self.input = input
        self.reference = reference
        self.metric = metric
        self.threshold = threshold
        self._fn = metric_fn(metric)

    @classmethod
    def from_spec(cls, spec: dict[str, Any], ctx: GraderContext) -> TextSimilarityGrader:
        r = SpecReader(spec, ctx.label(str(spec.get("name", spec.get("type")))))
        r.raw("type")
        name, error_score = read_common(r)
        inp = r.template("input", "{{ sample.output_text }}")
        ref = r.template("reference")
        m = spec.get("evaluation_metric")
        if m in UNSUPPORTED:
            raise r.error(
                "evaluation_metric",
                f"metric '{m}' is not supported here: {UNSUPPORTED[m]}",
                f"choose {', '.join(METRICS)}",
            )
        metric = r.choice("evaluation_metric", METRICS, what="metric")
        threshold = r.number("pass_threshold", None)
        norm = r.finish()
        return cls(
            input=inp,
            reference=ref,
            metric=metric,
            threshold=threshold,
            name=name,
            spec=norm,
            label=r.label,
            error_score=error_score,
        )

    def score_one(self, sample: dict[str, Any], item: dict[str, Any]) -> Grade:
        a = self.input.render(item, sample)
        b = self.reference.render(item, sample)
        x = float(self._fn(a, b))
        details = {} if self.threshold is None else {"passed": x >= self.threshold}
        return Grade(score=x, details=details)
