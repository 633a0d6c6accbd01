"""Fixtures for the local transformers provider (`hf`), reused by the search tests.

- `smollm2_hf`: HFProvider on the shipped SmolLM2-135M-Instruct, loaded once per session (slow).
- `tiny_lm_dir`: a tiny randomly initialised LlamaForCausalLM (2 layers, hidden 64) saved with the
  SmolLM2 tokenizer in a folder: a real model for pure-logic tests, loads in a second. Converting
  the tokenizer out of the GGUF takes 20-80 s here, so the folder is kept in pytest's cache dir
  between sessions (built in a temp folder and renamed into place; a temp folder when pytest runs
  with `-p no:cacheprovider`).
- `tiny_hf`: HFProvider on `tiny_lm_dir`, once per session.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smollm2_hf():
    from iro_blackbox.providers.hf import HFProvider

    return HFProvider("smollm2-135m-instruct", device="cpu")


TINY_LM_VERSION = "tiny-llama-2x64-v1"  # change when the recipe below changes


@pytest.fixture(scope="session")
def tiny_lm_dir(request, tmp_path_factory):
    cache = getattr(request.config, "cache", None)
    if cache is None:
        folder = tmp_path_factory.mktemp("tiny-lm")
        _build_tiny_lm(folder)
        return folder
    folder = Path(cache.mkdir("iro-bb")) / TINY_LM_VERSION
    if not (folder / "model.safetensors").is_file():
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".building-"))
        _build_tiny_lm(staging)
        try:
            os.rename(staging, folder)
        except OSError:  # another session finished first: use its folder
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def _build_tiny_lm(folder: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from iro_blackbox.tokenizers import load_tokenizer

    tok = load_tokenizer("smollm2-135m-instruct")
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        initializer_range=0.1,  # peaked enough that greedy choices are not near-ties
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    tok.save_pretrained(folder)
    LlamaForCausalLM(config).save_pretrained(folder)


@pytest.fixture(scope="session")
def tiny_hf(tiny_lm_dir):
    from iro_blackbox.providers.hf import HFProvider

    return HFProvider(str(tiny_lm_dir), device="cpu")
