"""A generative value model (GenRM-style, Zhang et al. 2024): an instruction-tuned LM is asked
whether the answer so far follows the prompt; its probability of "yes" is the value.

    gv = GenerativeValue("smollm2-135m-instruct")
    gv.score(["Answer in lowercase."], ["hello there"])  -> [0.61]

Zero-shot: nothing is trained. The question is rendered with the judge's own chat template; the
value is p(yes) / (p(yes) + p(no)) over the first answer token (both " yes"/"yes" spellings and
capitalised forms summed), in [0, 1]. `tokenizer` is exposed so the ranking code can cut
prefixes like any value model's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

QUESTION = (
    "Here is an instruction and the beginning of a response to it.\n\n"
    "Instruction:\n{prompt}\n\nResponse so far:\n{partial}\n\n"
    "Does the response so far follow every requirement of the instruction (format, case, "
    "words to use or avoid, length, punctuation)? Answer yes or no."
)


class GenerativeValue:
    """p(yes) of an instruction-tuned causal LM judging prompt + partial answer."""

    def __init__(self, model: str = "smollm2-135m-instruct", batch_size: int = 8):
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy

        from ..providers.hf.loading import plain_model_folder  # GGUF: the dequantized cache

        path = plain_model_folder(model)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        self.batch_size = batch_size
        self.yes = self._ids(("yes", " yes", "Yes", " Yes"))
        self.no = self._ids(("no", " no", "No", " No"))

    def _ids(self, words: Sequence[str]) -> list[int]:
        ids = set()
        for w in words:
            toks = self.tokenizer(w, add_special_tokens=False)["input_ids"]
            if len(toks) == 1:
                ids.add(toks[0])
        return sorted(ids)

    def render(self, prompt: str, partial: str) -> str:
        msgs = [{"role": "user", "content": QUESTION.format(prompt=prompt, partial=partial)}]
        return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)

    @torch.no_grad()
    def score(self, prompts: Sequence[str], partials: Sequence[str]) -> list[float]:
        out: list[float] = []
        texts = [self.render(p, r) for p, r in zip(prompts, partials, strict=True)]
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(
                texts[i : i + self.batch_size],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            )
            logits = self.lm(**enc).logits[:, -1, :].float()
            logp = torch.log_softmax(logits, dim=-1)
            yes = torch.logsumexp(logp[:, self.yes], dim=-1)
            no = torch.logsumexp(logp[:, self.no], dim=-1)
            out += torch.sigmoid(yes - no).tolist()
        return out


def load_generative_value(model: str, **kw: Any) -> GenerativeValue:
    return GenerativeValue(model, **kw)
