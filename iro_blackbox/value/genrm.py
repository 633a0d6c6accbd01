"""A generative value model (GenRM-style, Zhang et al. 2024): an instruction-tuned LM is asked
whether the answer so far follows the prompt; its probability of "yes" is the value.

    gv = GenerativeValue("smollm2-135m-instruct")
    gv.score(["Answer in lowercase."], ["hello there"])  -> [0.61]

Fine-tuned (`fit`): the same question, the judge's top layers trained so that p(yes) is the
answer's final reward rescaled to [0, 1] (binary cross-entropy on soft targets, as GenRM
fine-tunes its verifier on correctness labels); the layers below stay frozen, so a step costs
one forward pass and a backward pass through the top layers only.

Zero-shot: nothing is trained. The question is rendered with the judge's own chat template; the
value is p(yes) / (p(yes) + p(no)) over the first answer token (both " yes"/"yes" spellings and
capitalised forms summed), in [0, 1]. `tokenizer` is exposed so the ranking code can cut
prefixes like any value model's.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import InputError

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

    def _logit(self, texts: Sequence[str]) -> torch.Tensor:
        """log p(yes) - log p(no) at the answer's first token, one per text."""
        enc = self.tokenizer(
            list(texts), return_tensors="pt", padding=True, add_special_tokens=False
        )
        logits = self.lm(**enc, use_cache=False, logits_to_keep=1).logits[:, -1, :].float()
        logp = torch.log_softmax(logits, dim=-1)
        return torch.logsumexp(logp[:, self.yes], dim=-1) - torch.logsumexp(
            logp[:, self.no], dim=-1
        )

    def fit(
        self,
        examples: Sequence[Any],
        *,
        top_layers: int = 2,
        epochs: int = 1,
        lr: float = 5e-5,
        max_examples: int = 2000,
        seed: int = 0,
    ) -> dict[str, Any]:
        """Fine-tune the judge on value examples (prompt, partial, target): its top `top_layers`
        blocks and final norm, binary cross-entropy of p(yes) against the target rescaled to
        [0, 1] by the training targets' range. At most `max_examples` (a seeded draw)."""
        from .tuning import unfreeze_top

        rows = list(examples)
        if not rows:
            raise InputError("no examples to fine-tune the judge on")
        rng = random.Random(seed)
        if len(rows) > max_examples:
            rows = rng.sample(rows, max_examples)
        lo, hi = min(e.target for e in rows), max(e.target for e in rows)
        span = (hi - lo) or 1.0
        self.lm.requires_grad_(False)
        unfreeze_top(self.lm, top_layers)
        params = [p for p in self.lm.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        losses: list[float] = []
        gen = torch.Generator().manual_seed(seed)
        self.lm.train()
        try:
            for _ in range(epochs):
                order = torch.randperm(len(rows), generator=gen).tolist()
                for i in range(0, len(rows), self.batch_size):
                    part = [rows[j] for j in order[i : i + self.batch_size]]
                    texts = [self.render(e.prompt, e.partial) for e in part]
                    y = torch.tensor([(e.target - lo) / span for e in part])
                    w = torch.tensor([float(getattr(e, "weight", 1.0)) for e in part])
                    bce = torch.nn.functional.binary_cross_entropy_with_logits(
                        self._logit(texts), y, reduction="none"
                    )
                    loss = (w * bce).sum() / w.sum().clamp(min=1e-8)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    losses.append(loss.item())
        finally:
            self.lm.eval().requires_grad_(False)
        tail = losses[-max(1, len(losses) // 10) :]
        return {"train_examples": len(rows), "trained_parameters": sum(p.numel() for p in params),
                "final_loss": sum(tail) / len(tail)}  # fmt: skip

    @torch.no_grad()
    def score(self, prompts: Sequence[str], partials: Sequence[str]) -> list[float]:
        out: list[float] = []
        texts = [self.render(p, r) for p, r in zip(prompts, partials, strict=True)]
        for i in range(0, len(texts), self.batch_size):
            out += torch.sigmoid(self._logit(texts[i : i + self.batch_size])).tolist()
        return out


def load_generative_value(model: str, **kw: Any) -> GenerativeValue:
    return GenerativeValue(model, **kw)
