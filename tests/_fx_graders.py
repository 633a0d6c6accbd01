"""Fixtures for the graders tests: tiny randomly initialised reward models with the real MiniLM
tokenizer, and a scripted judge provider for replies a real model cannot give on demand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iro_blackbox.testing import FakeProvider


def save_tiny_reward_model(folder: Path, arch: str = "bert", seed: int = 0, num_labels: int = 1):
    """A tiny random sequence classifier with one logit and MiniLM's (real) tokenizer."""
    import torch
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
        LlamaConfig,
        LlamaForSequenceClassification,
    )

    from iro_blackbox.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("minilm-l6").path)
    torch.manual_seed(seed)
    if arch == "bert":
        cfg = BertConfig(
            vocab_size=tok.vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            num_labels=num_labels,
        )
        model = BertForSequenceClassification(cfg)
    else:
        cfg = LlamaConfig(
            vocab_size=tok.vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            num_labels=num_labels,
            pad_token_id=tok.pad_token_id,
        )
        model = LlamaForSequenceClassification(cfg)
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_reward_models(tmp_path_factory):
    """{"bert": folder, "llama": folder, "bert_seed1": folder, "two_labels": folder}."""
    root = tmp_path_factory.mktemp("reward-models")
    return {
        "bert": save_tiny_reward_model(root / "bert", "bert", seed=0),
        "llama": save_tiny_reward_model(root / "llama", "llama", seed=0),
        "bert_seed1": save_tiny_reward_model(root / "bert1", "bert", seed=1),
        "two_labels": save_tiny_reward_model(root / "two", "bert", seed=0, num_labels=2),
    }


class ScriptedJudge(FakeProvider):
    """The package's fake provider (iro_blackbox.testing) scripted to reply with the last line of
    the last message it is sent.

    For the judge's parsing, range and failure handling, which need exact replies ("7", "eleven",
    "42") that a real model does not give on demand. A prompt whose last line is "FAIL" gets a
    PermanentError, like a real server refusing one request; "DOWN" a TransientError, like a
    server still unreachable after retries. Records every request it gets (`calls`).
    """

    name = "scripted"

    def __init__(self, structured: bool = False):
        super().__init__("scripted-judge", script=self._reply)
        self.structured = structured  # honour response_format: reply {"result": N} for a number N

    def _reply(self, r, j):
        from iro_blackbox.errors import PermanentError, TransientError
        from iro_blackbox.providers.base import Chunk

        text = r.prompt if isinstance(r.prompt, str) else r.prompt[-1]["content"]
        last = text.splitlines()[-1] if text else ""
        if last == "FAIL":
            raise PermanentError("400: request refused")
        if last == "DOWN":
            raise TransientError("connection refused")
        if self.structured and r.response_format is not None:
            try:  # the number that ends the line ("Model answer: 1" -> 1)
                last = json.dumps({"result": float(last.split()[-1])})
            except (ValueError, IndexError):
                pass  # not a number: the reply stays as it is (a judge gone off script)
        return Chunk(text=last, finish_reason="stop")

    async def score(self, prompt, text):
        from iro_blackbox.errors import PermanentError

        raise PermanentError("scripted judge cannot score")


@pytest.fixture
def scripted_judge():
    return ScriptedJudge()
