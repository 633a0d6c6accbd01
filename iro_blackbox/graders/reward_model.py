"""`score_model` with a local reward model: a transformers sequence classifier with one logit.

    {"type": "score_model", "name": "rm", "reward_model": "path/or/hub-id",
     "input": [{"role": "user", "content": "{{ item.prompt }}"},
               {"role": "assistant", "content": "{{ sample.output_text }}"}],
     "batch_size": 16, "max_length": 512, "device": "auto", "activation": "none"}

`input` is a template string (scored as plain text) or chat messages (rendered with the tokenizer's
chat template when it has one, else as "role: content" lines). Texts are sorted by length and
scored in padded batches; the score is the single logit (or its sigmoid). The model loads on first
use, in a worker thread; the config (one label) is checked when the spec loads.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelNotFoundError
from ..models import ResolvedModel, pick_device, pick_dtype, resolve_model
from .base import Grade
from .common import BaseGrader, GraderContext, read_common
from .spec import SpecReader
from .template import MessagesTemplate, Template, TemplateError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def weights_fingerprint(folder: str) -> dict[str, str]:
    """Cheap content fingerprint of a model folder's weight files (size + head/tail sha256)."""
    out: dict[str, str] = {}
    p = Path(folder)
    if not p.is_dir():
        return out  # a hub id: its name is the identity
    for f in sorted(p.iterdir()):
        if f.suffix in WEIGHT_SUFFIXES and f.is_file():
            size = f.stat().st_size
            h = hashlib.sha256()
            with f.open("rb") as fh:
                h.update(fh.read(1 << 20))
                if size > 2 << 20:
                    fh.seek(-(1 << 20), 2)
                    h.update(fh.read(1 << 20))
            out[f.name] = f"{size}:{h.hexdigest()}"
    return out


class RewardModelGrader(BaseGrader):
    type_name = "score_model"

    def __init__(
        self,
        *,
        model: ResolvedModel,
        prompt: Template | MessagesTemplate,
        batch_size: int,
        max_length: int,
        device: str,
        activation: str,
        **base: Any,
    ):
        templates = prompt.templates if isinstance(prompt, MessagesTemplate) else [prompt]
        super().__init__(templates=templates, **base)
        self.model_ref = model
        self.prompt = prompt
        self.batch_size = batch_size
        self.max_length = max_length
        self.device_spec = device
        self.activation = activation
        self._model: Any = None
        self._tokenizer: Any = None
        self._device = "cpu"
        self._lock = threading.Lock()

    @classmethod
    def from_spec(cls, spec: dict[str, Any], ctx: GraderContext) -> RewardModelGrader:
        r = SpecReader(spec, ctx.label(str(spec.get("name", spec.get("type")))))
        r.raw("type")
        name, error_score = read_common(r)
        ref = r.text("reward_model")
        if "model" in spec:
            raise r.error("model", "give either 'model' (an LLM judge) or 'reward_model', not both")
        try:
            model = resolve_model(ref)
        except ModelNotFoundError as e:
            raise r.error("reward_model", f"model not found: {e}") from None
        if model.gguf_file:
            raise r.error("reward_model", "a GGUF file is a generator, not a reward model")
        _check_config(model, r)
        raw_input = spec.get("input", "{{ sample.output_text }}")
        prompt: Template | MessagesTemplate
        if isinstance(raw_input, str):
            prompt = r.template("input", "{{ sample.output_text }}")
        else:
            prompt = r.messages("input")
        batch_size = r.integer("batch_size", 16, lo=1)
        max_length = r.integer("max_length", 512, lo=8)
        device = r.text("device", "auto")
        activation = r.choice("activation", ["none", "sigmoid"], "none", what="activation")
        norm = r.finish()
        return cls(
            model=model,
            prompt=prompt,
            batch_size=batch_size,
            max_length=max_length,
            device=device,
            activation=activation,
            name=name,
            spec=norm,
            label=r.label,
            error_score=error_score,
            # the weights themselves (so the hash is the same on every machine), else the hub id
            hash_extra=weights_fingerprint(model.path) or {"model": model.path},
            hash_exclude=("batch_size", "device", "reward_model"),
        )

    # model -------------------------------------------------------------------------------------
    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import (  # heavy: transformers
            AutoModelForSequenceClassification,
            AutoTokenizer,
        )

        path = self.model_ref.path
        self._device = pick_device(self.device_spec)
        try:
            tok = AutoTokenizer.from_pretrained(path)
            model = AutoModelForSequenceClassification.from_pretrained(
                path, dtype=pick_dtype(self._device)
            )
        except (OSError, ValueError) as e:
            raise ConfigError(f"{self.label}: cannot load reward model '{path}': {e}") from None
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token or tok.unk_token
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tok.pad_token_id
        self._tokenizer = tok
        self._model = model.to(self._device).eval()

    def _text(self, item: dict[str, Any], sample: dict[str, Any]) -> str:
        if isinstance(self.prompt, Template):
            return self.prompt.render(item, sample)
        messages = self.prompt.render(item, sample)
        if getattr(self._tokenizer, "chat_template", None):
            return self._tokenizer.apply_chat_template(messages, tokenize=False)
        return "\n".join(f"{m['role']}: {m['content']}" for m in messages)

    def score_texts(self, texts: list[str]) -> list[float]:
        """Blocking: one logit per text, in batches of similar length."""
        import torch  # heavy: torch

        with self._lock:
            self._load()
            tok, model = self._tokenizer, self._model
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            scores = [0.0] * len(texts)
            with torch.inference_mode():
                for b in range(0, len(order), self.batch_size):
                    idx = order[b : b + self.batch_size]
                    enc = tok(
                        [texts[i] for i in idx],
                        padding=True,
                        truncation=True,
                        max_length=self.max_length,
                        return_tensors="pt",
                    ).to(self._device)
                    logits = model(**enc).logits[:, 0].float()  # [batch]
                    if self.activation == "sigmoid":
                        logits = torch.sigmoid(logits)
                    for i, v in zip(idx, logits.tolist(), strict=True):
                        scores[i] = v
        return scores

    async def _grade(
        self, samples: list[dict[str, Any]], items: list[dict[str, Any]]
    ) -> list[Grade]:
        await asyncio.to_thread(self._load_locked)
        out: list[Grade | None] = [None] * len(samples)
        texts, where = [], []
        for i, (s, it) in enumerate(zip(samples, items, strict=True)):
            try:
                texts.append(self._text(it, s))
                where.append(i)
            except TemplateError as e:
                out[i] = self.failed(str(e))
        if texts:
            scores = await asyncio.to_thread(self.score_texts, texts)
            for i, x in zip(where, scores, strict=True):
                out[i] = Grade(score=x) if math.isfinite(x) else self.failed(f"score {x}")
        return [g for g in out if g is not None]

    def _load_locked(self) -> None:
        with self._lock:
            self._load()

    def close(self) -> None:
        with self._lock:
            self._model = None
            self._tokenizer = None


def _check_config(model: ResolvedModel, r: SpecReader) -> None:
    from transformers import AutoConfig  # heavy: transformers

    try:
        config = AutoConfig.from_pretrained(model.path)
    except (OSError, ValueError) as e:
        raise r.error("reward_model", f"cannot read the model config: {e}") from None
    if config.num_labels != 1:
        raise r.error(
            "reward_model",
            f"a reward model has one output (num_labels=1), this one has {config.num_labels}",
        )
