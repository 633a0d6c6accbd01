"""A two-tower value model: the prompt and the partial answer are read by separate towers and
meet in a small MLP.

    V(x, y<=i) = MLP([p(x), r(y<=i)])

p(x): the prompt tower, a decoder LM's mean hidden state over the prompt at layer `prompt_layer`
(computed once per prompt, so it can be deep: the last layer by default). r(y<=i): the answer
tower, the mean hidden state of the same LM's first `answer_layers` layers over the answer's tokens so far (0 = the token
embeddings alone: a cased bag of tokens). The answer tower never sees the prompt, so:
- every prefix of an answer comes from ONE causal pass over the answer (running means), and the
  answer features of a search step cost a shallow pass over the new chunk only;
- features of (prompt, answer) pairs that were never sampled together are free, so grader
  relabelling (iro/relabel.py) can pair every answer with many prompts for the cost of grading.
The MLP is the only trained part: seconds on cached features.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from .ranking import _pairs, centered_targets, pair_groups
from .tower_prefixes import PrefixReader

EVAL_EVERY = 100  # steps between validation checks of fit_head
MAX_TABLES = 5_000  # answers whose per-token features are kept (at most ~0.7 GB at d = 576)


@dataclass(frozen=True)
class TwoTowerConfig:
    """What the towers read and how the head is trained."""

    backbone: str = "smollm2-135m-instruct"  # a decoder LM (alias, folder or .gguf)
    prompt_layer: int | None = -1  # hidden layer of the prompt tower (-1: the last; None: the
    # middle one, n_layers // 2 + 1)
    answer_layers: int = 4  # layers of the answer tower (0: token embeddings only)
    joint: bool = False  # the answer tower reads the answer after the prompt (chat-formatted)
    pool: str = "mean"  # answer features: mean (running mean of token states) | last (last token)
    loss: str = "mse"  # mse | centered (reward minus its prompt's mean) | pairwise (centered +
    # Bradley-Terry on pairs of one prompt at one position)
    hidden: int = 256  # MLP width
    product: bool = False  # the MLP also reads p(x) * r(y) (element-wise: overfits, see README)
    select: str = "last"  # which weights are kept: the final ones (last: no stop slice, the head
    # trains on every training prompt), or the best validation pair accuracy (accuracy) or mean
    # squared error (mse) on a stop slice of the training prompts (README, the value-model lab)
    steps: int = 1000  # optimizer steps over the cached features (batches of 256, reshuffled)
    lr: float = 1e-3
    weight_decay: float = 1e-2
    dropout: float = 0.1
    seed: int = 0
    heads: int = 1  # heads trained on the same features with seeds seed, seed + 1, ...; the value
    # is their mean score (one head's seed moved held-out accuracy by 0.04 on IFEval: README)


class Towers:
    """The frozen feature extractors (shared by every head trained on them)."""

    def __init__(
        self,
        backbone: str,
        prompt_layer: int | None = -1,
        answer_layers: int = 4,
        joint: bool = False,
        pool: str = "mean",
    ):
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from transformers import AutoModel, AutoTokenizer  # heavy

        from ..providers.hf.loading import plain_model_folder  # GGUF: the dequantized cache

        path = plain_model_folder(backbone)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.lm = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
        n_layers = int(self.lm.config.num_hidden_layers)
        self.prompt_layer = n_layers // 2 + 1 if prompt_layer is None else prompt_layer
        self.answer_layers = answer_layers
        # the answer tower: the same weights, only the first `answer_layers` layers run
        self.answer_lm = copy.copy(self.lm)
        self.answer_lm._modules = dict(self.lm._modules)  # its own module table, shared weights
        self.answer_lm.layers = nn.ModuleList(list(self.lm.layers[:answer_layers]))
        self.dim = int(self.lm.config.hidden_size)
        if pool not in ("mean", "last"):
            raise ValueError(f"pool must be mean or last, not {pool!r}")
        self.joint, self.pool = joint, pool
        self._tables: dict[Any, tuple[list[int], torch.Tensor]] = {}
        self._prompt_kv: dict[str, Any] = {}  # joint: the answer tower's cache of each prompt
        self.prefixes = PrefixReader(self.answer_lm)  # a search's prefixes, read on from parents
        self.reuse_prefixes = True  # False: every searched prefix is read whole (benchmarks)

    @torch.no_grad()
    def prompts(self, texts: Sequence[str], batch: int = 16) -> torch.Tensor:
        """[n, d]: mean hidden state at prompt_layer over each prompt's tokens."""
        out = []
        for i in range(0, len(texts), batch):
            enc = self.tokenizer(list(texts[i : i + batch]), return_tensors="pt", padding=True)
            hs = self.lm(**enc, output_hidden_states=True).hidden_states[self.prompt_layer]
            m = enc["attention_mask"].unsqueeze(-1).float()
            out.append((hs * m).sum(1) / m.sum(1).clamp(min=1))
        return torch.cat(out) if out else torch.zeros(0, self.dim)

    def _prompt_ids(self, prompt: str) -> list[int]:
        """The prompt as the policy reads it (its chat template when it has one)."""
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
            )
            return tok(text, add_special_tokens=False)["input_ids"]
        return tok(prompt + "\n", add_special_tokens=False)["input_ids"]

    @torch.no_grad()
    def _answer_states(self, ids: list[int], prompt: str | None = None) -> torch.Tensor:
        """[len(ids), d]: per-token states after `answer_layers` layers (causal); joint: read
        after the prompt, whose cache is computed once per prompt."""
        x = torch.tensor([ids])
        if self.answer_layers == 0:
            return self.lm.get_input_embeddings()(x)[0]
        if not self.joint or prompt is None:
            return self.answer_lm(input_ids=x, use_cache=False).last_hidden_state[0]
        kv = self._prompt_kv.get(prompt)
        if kv is None:
            pids = torch.tensor([self._prompt_ids(prompt)])
            kv = (pids.shape[1], self.answer_lm(input_ids=pids, use_cache=True).cache)
            if len(self._prompt_kv) >= 256:
                self._prompt_kv.pop(next(iter(self._prompt_kv)))
            self._prompt_kv[prompt] = kv
        n, cache = kv
        mask = torch.ones(1, n + len(ids), dtype=torch.long)
        out = self.answer_lm(
            input_ids=x, attention_mask=mask, cache=copy.deepcopy(cache), use_cache=True
        )
        return out.last_hidden_state[0]

    def _table(self, ids: list[int], ends: list[int], states: torch.Tensor | None) -> tuple:
        if not ids or states is None:
            return ends, torch.zeros(0, self.dim)
        if self.pool == "last":
            return ends, states
        return ends, states.cumsum(0) / torch.arange(1, len(ids) + 1).unsqueeze(-1)

    def _remember(self, key: Any, table: tuple) -> None:
        if len(self._tables) >= MAX_TABLES:  # oldest first: a search's earlier steps
            self._tables.pop(next(iter(self._tables)))
        self._tables[key] = table

    def answer_table(
        self, text: str, prompt: str | None = None, extend: bool = False
    ) -> tuple[list[int], torch.Tensor]:
        """(token end offsets, [n_tokens, d] answer features after each token: the running mean
        of the token states, or the last state). extend: a search's prefix, read on from its
        parent's cache (see searched_tables)."""
        if extend and self.reads_on:
            return self.searched_tables([text])[0]
        key = (prompt, text) if self.joint else text
        hit = self._tables.get(key)
        if hit is not None:
            return hit
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, ends = enc["input_ids"], [int(e) for _, e in enc["offset_mapping"]]
        table = self._table(ids, ends, self._answer_states(ids, prompt) if ids else None)
        self._remember(key, table)
        return table

    @property
    def reads_on(self) -> bool:
        """Whether searched prefixes are read on from their parents (not for joint towers)."""
        full = all(
            t == "full_attention" for t in getattr(self.lm.config, "layer_types", None) or []
        )
        return self.reuse_prefixes and full and not self.joint and self.answer_layers > 0

    def searched_tables(self, texts: Sequence[str]) -> list[tuple[list[int], torch.Tensor]]:
        """answer_table of each of a search step's prefixes: those not read yet go through the
        answer tower together, each from its parent beam's cached states (tower_prefixes.py)."""
        found: dict[str, tuple] = {t: self._tables[t] for t in texts if t in self._tables}
        todo, enc = [], {}
        for t in dict.fromkeys(texts):
            if t not in found:
                e = self.tokenizer(t, add_special_tokens=False, return_offsets_mapping=True)
                enc[t] = (e["input_ids"], [int(x) for _, x in e["offset_mapping"]])
                if enc[t][0]:
                    todo.append((t, enc[t][0]))
        states = dict(zip([t for t, _ in todo], self.prefixes.states(todo), strict=True))
        for t, (ids, ends) in enc.items():
            found[t] = self._table(ids, ends, states.get(t))
            self._remember(t, found[t])
        return [found[t] for t in texts]

    def answer_at(self, text: str, cut: int, prompt: str | None = None) -> torch.Tensor:
        """The answer tower's features of text[:cut] (the empty prefix: zeros), read from one
        causal pass over the whole text (joint: after `prompt`)."""
        ends, run = self.answer_table(text, prompt)
        n = sum(1 for e in ends if e <= cut)
        return run[n - 1] if n else torch.zeros(self.dim)


class Head(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float, product: bool = False):
        super().__init__()
        self.product = product
        self.net = nn.Sequential(
            nn.Linear((3 if product else 2) * dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )

    def forward(self, p: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        parts = [p, r, p * r] if self.product else [p, r]
        return self.net(torch.cat(parts, dim=-1)).squeeze(-1)


def fit_head(
    p: torch.Tensor,
    r: torch.Tensor,
    y: torch.Tensor,
    w: torch.Tensor | None,
    cfg: TwoTowerConfig,
    val: tuple[torch.Tensor, ...] | None = None,
    groups: torch.Tensor | None = None,
) -> tuple[Head, dict[str, Any]]:
    """Train the MLP on cached features (p, r rows aligned with targets y); features and targets
    standardised, the statistics kept with the head. `val` (p, r, y[, groups] of held-apart
    prompts): checked every EVAL_EVERY steps, the weights with the best validation pair accuracy
    over same-group pairs (cfg.select "accuracy", when val has groups and pairs) or the lowest
    validation MSE are kept (cfg.select "last": the final weights).
    cfg.loss == "pairwise" adds a Bradley-Terry term on pairs of rows of equal `groups` id
    (same prompt and position) whose targets differ, the MSE keeping values in reward units."""
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    stats = {
        "p_mean": p.mean(0), "p_std": p.std(0).clamp(min=1e-4),
        "r_mean": r.mean(0), "r_std": r.std(0).clamp(min=1e-4),
        "y_mean": float(y.mean()), "y_std": float(y.std().clamp(min=1e-4)),
    }  # fmt: skip
    pn = (p - stats["p_mean"]) / stats["p_std"]
    rn = (r - stats["r_mean"]) / stats["r_std"]
    yn = (y - stats["y_mean"]) / stats["y_std"]
    w = torch.ones_like(y) if w is None else w
    head = Head(p.shape[1], cfg.hidden, cfg.dropout, cfg.product)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n, bs = len(y), 256
    head.train()
    order, at = torch.randperm(n, generator=gen), 0
    step, best = 0, (float("inf"), None)
    pairs = None
    if cfg.loss == "pairwise":
        if groups is None:
            raise ValueError("a pairwise loss needs the rows' groups")
        pi, pj = _pairs(groups, y)
        pairs = (pi, pj) if pi.numel() else None
        porder, pat = torch.randperm(len(pi), generator=gen), 0
    vpairs = None
    if val is not None:
        pv = (val[0] - stats["p_mean"]) / stats["p_std"]
        rv = (val[1] - stats["r_mean"]) / stats["r_std"]
        yv = (val[2] - stats["y_mean"]) / stats["y_std"]
        if cfg.select == "accuracy" and len(val) > 3:
            vpairs = _pairs(val[3], val[2])
            vpairs = vpairs if vpairs[0].numel() else None
    for _ in range(cfg.steps):
        if at >= n:
            order, at = torch.randperm(n, generator=gen), 0
        idx = order[at : at + bs]
        at += bs
        loss = (w[idx] * (head(pn[idx], rn[idx]) - yn[idx]) ** 2).sum() / w[idx].sum().clamp(
            min=1e-8
        )
        if pairs is not None:
            if pat >= len(porder):
                porder, pat = torch.randperm(len(porder), generator=gen), 0
            k = porder[pat : pat + bs]
            pat += bs
            a, b = pairs[0][k], pairs[1][k]
            diff = head(pn[a], rn[a]) - head(pn[b], rn[b])
            loss = loss + nn.functional.softplus(-diff).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if val is not None and cfg.select != "last" and step % EVAL_EVERY == 0:
            head.eval()
            with torch.no_grad():
                pred = head(pv, rv)
                if vpairs is not None:  # lower is better: minus the pair accuracy
                    got = -float((pred[vpairs[0]] > pred[vpairs[1]]).float().mean())
                else:
                    got = float(((pred - yv) ** 2).mean())
            head.train()
            if got < best[0]:
                best = (got, copy.deepcopy(head.state_dict()))
    if best[1] is not None:
        head.load_state_dict(best[1])
    head.eval()
    return head, stats


class TwoTowerValue:
    """Towers + trained heads (their mean score): `score(prompts, partials)` in reward units.
    Every head was fit on the same standardised features, so they share `stats`."""

    def __init__(self, towers: Towers, heads: Sequence[Head], stats: dict[str, Any]):
        if not heads:
            raise ValueError("a two-tower value model needs at least one head")
        self.towers, self.heads, self.stats = towers, list(heads), stats
        self.tokenizer = towers.tokenizer
        self._prompt_cache: dict[str, torch.Tensor] = {}

    def _p(self, prompts: Sequence[str]) -> torch.Tensor:
        new = sorted({p for p in prompts if p not in self._prompt_cache})
        if new:
            for p, v in zip(new, self.towers.prompts(new), strict=True):
                self._prompt_cache[p] = v
        return torch.stack([self._prompt_cache[p] for p in prompts])

    @torch.no_grad()
    def score_features(self, p: torch.Tensor, r: torch.Tensor) -> list[float]:
        s = self.stats
        pn, rn = (p - s["p_mean"]) / s["p_std"], (r - s["r_mean"]) / s["r_std"]
        out = torch.stack([h(pn, rn) for h in self.heads]).mean(0)
        return (out * s["y_std"] + s["y_mean"]).tolist()

    def score_cuts(
        self, prompts: Sequence[str], answers: Sequence[str], cuts: Sequence[int]
    ) -> list[float]:
        """Values of answers[i][:cuts[i]]: one answer-tower pass per distinct answer."""
        if not prompts:
            return []
        p = self._p(prompts)
        r = torch.stack(
            [self.towers.answer_at(a, c, x) for x, a, c in zip(prompts, answers, cuts, strict=True)]
        )
        return self.score_features(p, r)

    def score(self, prompts: Sequence[str], partials: Sequence[str]) -> list[float]:
        if not prompts:
            return []
        p = self._p(prompts)
        if self.towers.reads_on:  # a search step's candidates, read on from their parents
            tables = self.towers.searched_tables(partials)
            r = torch.stack([run[-1] if len(run) else torch.zeros(self.towers.dim)
                             for _, run in tables])  # fmt: skip
        else:
            r = torch.stack(
                [
                    self.towers.answer_at(a, len(a), x)
                    for x, a in zip(prompts, partials, strict=True)
                ]
            )
        return self.score_features(p, r)


_SHARED: dict[tuple[str, int | None, int, bool, str], Towers] = {}
FORMAT = "iro-bb/two-tower-value"
# 1: one head under "head." (no version written); 2: `heads` heads under "heads.<i>."
FORMAT_VERSION = 2


def shared_towers(
    backbone: str,
    prompt_layer: int | None,
    answer_layers: int,
    joint: bool = False,
    pool: str = "mean",
) -> Towers:
    """One frozen Towers per (backbone, layers, reading) in this process: V_1..V_T share it."""
    key = (backbone, prompt_layer, answer_layers, joint, pool)
    if key not in _SHARED:
        _SHARED[key] = Towers(backbone, prompt_layer, answer_layers, joint, pool)
    return _SHARED[key]


def save_two_tower(model: TwoTowerValue, cfg: TwoTowerConfig, path: str | os.PathLike) -> None:
    """twotower.json (format, config) + head.safetensors (each head's MLP weights under
    `heads.<i>.`, and the feature statistics)."""
    import json
    from dataclasses import asdict
    from pathlib import Path

    from safetensors.torch import save_file

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"heads.{i}.{k}": v.contiguous()
        for i, head in enumerate(model.heads)
        for k, v in head.state_dict().items()
    }
    for k in ("p_mean", "p_std", "r_mean", "r_std"):
        tensors[f"stats.{k}"] = model.stats[k].contiguous()
    save_file(tensors, str(out / "head.safetensors"))
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "config": asdict(replace(cfg, heads=len(model.heads))),
            "y_mean": model.stats["y_mean"], "y_std": model.stats["y_std"]}  # fmt: skip
    (out / "twotower.json").write_text(json.dumps(meta, indent=2))


def is_two_tower(path: str | os.PathLike) -> bool:
    from pathlib import Path

    return (Path(path) / "twotower.json").is_file()


def load_two_tower(path: str | os.PathLike) -> TwoTowerValue:
    import json
    from pathlib import Path

    from safetensors.torch import load_file

    from ..errors import InputError

    folder = Path(path)
    meta = json.loads((folder / "twotower.json").read_text())
    if meta.get("format") != FORMAT:
        raise InputError(f"{folder}: not a two-tower value model ({meta.get('format')!r})")
    version = meta.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(f"{folder}: twotower.json has no valid format_version ({version!r})")
    if version > FORMAT_VERSION:
        raise InputError(
            f"{folder}: two-tower format version {version} was saved by a newer iro-bb "
            f"(this one reads up to {FORMAT_VERSION}); upgrade iro-bb to load it"
        )
    unknown = sorted(set(meta.get("config", {})) - set(TwoTowerConfig.__dataclass_fields__))
    if unknown:
        raise InputError(
            f"{folder}: twotower.json has settings this iro-bb does not know: {unknown}"
        )
    # models saved before `product` existed read p * r too
    cfg = TwoTowerConfig(**{"product": True, **meta["config"]})
    towers = shared_towers(cfg.backbone, cfg.prompt_layer, cfg.answer_layers, cfg.joint, cfg.pool)
    tensors = load_file(str(folder / "head.safetensors"))
    # models saved before `heads` existed hold one head under "head."
    found = sorted({int(k.split(".")[1]) for k in tensors if k.startswith("heads.")}) or [None]
    heads = []
    for i in found:
        pre = "head." if i is None else f"heads.{i}."
        head = Head(towers.dim, cfg.hidden, cfg.dropout, cfg.product)
        head.load_state_dict({k[len(pre) :]: v for k, v in tensors.items() if k.startswith(pre)})
        heads.append(head.eval())
    stats: dict[str, Any] = {k[6:]: v for k, v in tensors.items() if k.startswith("stats.")}
    stats.update(y_mean=meta["y_mean"], y_std=meta["y_std"])
    return TwoTowerValue(towers, heads, stats)


def features(
    towers: Towers, examples: Sequence[Any], rollouts: Sequence[Any]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(p, r, y, w) of ValueExamples whose `rollout` indexes `rollouts`."""
    prompts = sorted({e.prompt for e in examples})
    pvec = dict(zip(prompts, towers.prompts(prompts), strict=True))
    p = torch.stack([pvec[e.prompt] for e in examples])
    r = torch.stack(
        [towers.answer_at(rollouts[e.rollout].response, len(e.partial), e.prompt) for e in examples]
    )
    y = torch.tensor([e.target for e in examples], dtype=torch.float32)
    w = torch.tensor([e.weight for e in examples], dtype=torch.float32)
    return p, r, y, w


def train_two_tower(
    examples: Sequence[Any],
    rollouts: Sequence[Any],
    train_idx: Sequence[int],
    cfg: TwoTowerConfig,
    val_idx: Sequence[int] = (),
) -> TwoTowerValue:
    """Fit cfg.heads heads (seeds cfg.seed, cfg.seed + 1, ...) on examples[train_idx], each
    keeping the weights cfg.select picks on examples[val_idx]; features are read once for all.
    centered / pairwise losses regress on each target minus its prompt's mean reward."""
    if cfg.loss not in ("mse", "centered", "pairwise"):
        raise ValueError(f"two-tower loss must be mse, centered or pairwise, not {cfg.loss!r}")
    if cfg.select not in ("accuracy", "mse", "last"):
        raise ValueError(f"two-tower select must be accuracy, mse or last, not {cfg.select!r}")
    if cfg.heads < 1:
        raise ValueError(f"two-tower heads must be at least 1, not {cfg.heads}")
    examples = list(examples)
    if cfg.loss != "mse":
        centered = centered_targets(examples)
        examples = [e._replace(target=c) for e, c in zip(examples, centered, strict=True)]
    towers = shared_towers(cfg.backbone, cfg.prompt_layer, cfg.answer_layers, cfg.joint, cfg.pool)
    fit = [examples[i] for i in train_idx]
    p, r, y, w = features(towers, fit, rollouts)
    val = None
    if val_idx:
        stop = [examples[i] for i in val_idx]
        pv, rv, yv, _ = features(towers, stop, rollouts)
        val = (pv, rv, yv, torch.tensor(pair_groups(stop), dtype=torch.long))
    groups = torch.tensor(pair_groups(fit), dtype=torch.long)
    heads, stats = [], {}
    for m in range(cfg.heads):
        head, stats = fit_head(p, r, y, w, replace(cfg, seed=cfg.seed + m), val, groups)
        heads.append(head)
    return TwoTowerValue(towers, heads, stats)
