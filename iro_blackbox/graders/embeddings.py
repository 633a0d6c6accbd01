"""Sentence embeddings for text_similarity's `cosine`: the shipped all-MiniLM-L6-v2 (mean pooling
over the last hidden states, L2-normalised, as sentence-transformers does for that model).

    emb = SentenceEmbedder.get("minilm-l6")        # loaded once per process and model
    emb.cosine("a cat sat", "the cat was sitting") # -> float in [-1, 1]
"""

from __future__ import annotations

import functools
import threading
from typing import Any


class SentenceEmbedder:
    def __init__(self, model: str):
        import torch  # heavy: torch and transformers, for the cosine metric only
        from transformers import AutoModel, AutoTokenizer

        from ..models import resolve_model

        r = resolve_model(model)
        self.name = r.name
        self._torch = torch
        self._tok = AutoTokenizer.from_pretrained(r.tokenizer_path or r.path)
        self._model = AutoModel.from_pretrained(r.path).eval()
        self._lock = threading.Lock()

    @staticmethod
    @functools.lru_cache(maxsize=4)
    def get(model: str) -> SentenceEmbedder:
        return SentenceEmbedder(model)

    def embed(self, texts: list[str]) -> Any:
        torch = self._torch
        with self._lock, torch.inference_mode():
            enc = self._tok(
                texts, padding=True, truncation=True, max_length=256, return_tensors="pt"
            )
            hidden = self._model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    def cosine(self, a: str, b: str) -> float:
        e = self.embed([a, b])
        return float((e[0] * e[1]).sum())
