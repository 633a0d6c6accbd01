"""Choosing the next token of every row of a batch, each from its own pre-drawn uniform."""

from __future__ import annotations

import torch


def sample_next(logits, temps, greedy, top_p, top_k, filtered, u) -> torch.Tensor:
    """Next token per row: argmax for greedy rows, else inverse-CDF sampling with uniform u[row]
    from softmax(logits / T), restricted to the top_k / top_p set where those are on.
    Each row's result depends only on its own logits and uniform (batch independent, up to the
    float noise of batched matmuls: a pick moves only when u falls within it of a boundary)."""
    rows = (~greedy).nonzero().squeeze(1)
    if rows.numel() == 0:
        return logits.argmax(-1)
    tok = (
        logits.argmax(-1)
        if rows.numel() < len(greedy)
        else torch.empty_like(greedy, dtype=torch.long)
    )
    V = logits.shape[1]
    plain = rows[~filtered[rows]]
    if plain.numel():
        x = logits[plain]  # a copy: safe to work on in place (one vocab-sized buffer a step)
        cdf = torch.softmax(x.div_(temps[plain, None]), dim=-1).cumsum_(-1)
        pick = torch.searchsorted(cdf, u[plain, None] * cdf[:, -1:], right=True)
        tok[plain] = pick[:, 0].clamp(max=V - 1)
    cut = rows[filtered[rows]]
    if cut.numel():
        # The top-k / top-p set is found in sorted order, but the draw walks the vocabulary in
        # id order, like the plain path: float noise of ~1e-6 between batch shapes then moves a
        # pick only when u falls on a boundary, instead of reordering near-tied tokens.
        probs = torch.softmax(logits[cut] / temps[cut, None], dim=-1)
        sorted_p, order = probs.sort(dim=-1, descending=True, stable=True)
        drop = (sorted_p.cumsum(-1) - sorted_p) >= top_p[cut, None]
        k = top_k[cut, None]
        drop |= (k > 0) & (torch.arange(V, device=logits.device)[None, :] >= k)
        keep = torch.zeros_like(drop).scatter_(1, order, ~drop)
        cdf = probs.masked_fill(~keep, 0.0).cumsum(-1)
        pick = torch.searchsorted(cdf, u[cut, None] * cdf[:, -1:], right=True)
        tok[cut] = pick[:, 0].clamp(max=V - 1)
    return tok
