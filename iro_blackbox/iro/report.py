"""A run's report: metrics.json, PNG plots and a self-contained HTML page showing them.

Plots:
  reward_by_iteration.png  held-out mean reward of the base policy (t=0) and of pi_t (± stderr),
                           pi_t with the grader's pick, and the Best-of-N line at equal N
  reward_vs_tokens.png     held-out reward against generated tokens per prompt: Best-of-n for
                           n = 1, 2, 4, ... N (from the same samples) versus IRO's pi_t
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

COLUMNS = [
    ("t", "t", "{}"),
    ("policy", "policy", "{}"),
    ("eval_mean_reward", "reward ± se", "{:+.3f}"),
    ("eval_gain", "gain vs t-1", "{:+.3f}"),
    ("eval_grader_reward", "grader pick", "{:+.3f}"),
    ("eval_answers_per_prompt", "answers", "{:.1f}"),
    ("win_rate_vs_base", "win rate vs base", "{:.2f}"),
    ("train_mean_reward", "rollout reward", "{:+.3f}"),
    ("tokens", "tokens", "{:,.0f}"),
    ("requests", "requests", "{:,.0f}"),
    ("cost_usd", "cost $", "{:.4f}"),
]

# columns shown as "value ± se": the metric holding each one's standard error
STDERR = {"eval_mean_reward": "eval_reward_stderr", "eval_gain": "eval_gain_stderr"}


def table_rows(iterations: list[dict[str, Any]]) -> list[list[str]]:
    """One row of display strings per iteration (t=0: the base policy)."""
    out = []
    for it in iterations:
        m = dict(it["metrics"] or {})
        m["t"] = it["t"]
        m["policy"] = "base" if it["t"] == 0 else f"pi_{it['t']} (IRO)"
        row = []
        for key, _, fmt in COLUMNS:
            v = m.get(key)
            cell = "" if v is None else fmt.format(v)
            se = m.get(STDERR[key]) if key in STDERR else None
            row.append(f"{cell} ± {se:.3f}" if cell and se is not None else cell)
        out.append(row)
    return out


def _plots(iterations: list[dict[str, Any]], summary: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib  # heavy: matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib

    paths = []
    its = [i for i in iterations if i["metrics"].get("eval_mean_reward") is not None]
    if not its:
        return paths
    base = next((i["metrics"] for i in iterations if i["t"] == 0), {})
    fig, ax = plt.subplots(figsize=(6, 4))
    ts = [i["t"] for i in its]
    ax.errorbar(
        ts,
        [i["metrics"]["eval_mean_reward"] for i in its],
        yerr=[i["metrics"].get("eval_reward_stderr") or 0.0 for i in its],
        fmt="o-",
        capsize=3,
        label="IRO pi_t, no grader (t=0: base; ± se)",
    )
    gp = [(i["t"], i["metrics"].get("eval_grader_reward")) for i in its if i["t"] > 0]
    gp = [(t, v) for t, v in gp if v is not None]
    if gp:
        ax.plot([t for t, _ in gp], [v for _, v in gp], "s--", label="pi_t + grader pick")
    if base.get("bon_mean_reward") is not None:
        ax.axhline(
            base["bon_mean_reward"], color="gray", ls=":", label=f"Best-of-{base.get('bon_n')}"
        )
    ax.set_xlabel("iteration t")
    ax.set_ylabel("held-out mean reward")
    ax.set_xticks(ts)
    ax.grid(alpha=0.3)
    ax.legend()
    paths.append(_save(plt, fig, out_dir / "reward_by_iteration.png"))

    curve = base.get("bon_curve") or []

    def points(key: str) -> list[tuple[float, float, int]]:
        return [
            (i["metrics"]["eval_tokens_per_prompt"], i["metrics"][key], i["t"])
            for i in its
            if i["t"] > 0
            and i["metrics"].get("eval_tokens_per_prompt")
            and i["metrics"].get(key) is not None
        ]

    iro = points("eval_mean_reward")
    series = [
        (iro, "D", "C1", 8, "IRO pi_t (value pick, no grader)"),
        (points("eval_grader_reward"), "s", "C2", 7, "IRO pi_t + grader pick"),
    ]
    if curve or iro:
        fig, ax = plt.subplots(figsize=(6, 4))
        _best_of_n(ax, curve, "Best-of-n (n = 1, 2, 4, ...)")
        for pts, marker, color, size, label in series:
            if pts:
                xs, ys = [x for x, _, _ in pts], [y for _, y, _ in pts]
                ax.plot(xs, ys, marker, color=color, ms=size, label=label)
        for x, y, t in iro:
            ax.annotate(f"t={t}", (x, y), fontsize=8, textcoords="offset points", xytext=(4, 4))
        _tokens_axes(ax)
        paths.append(_save(plt, fig, out_dir / "reward_vs_tokens.png"))
    paths.extend(_value_plots(iterations, out_dir, plt))
    return paths


def _best_of_n(ax: Any, curve: list[dict[str, Any]], label: str) -> None:
    """The base policy's Best-of-n curve (reward against tokens per prompt), each n marked."""
    if not curve:
        return
    ax.plot(
        [c["tokens_per_prompt"] for c in curve],
        [c["reward"] for c in curve],
        "o-",
        color="gray",
        label=label,
    )
    for c in curve:
        ax.annotate(
            f"n={c['n']}",
            (c["tokens_per_prompt"], c["reward"]),
            fontsize=7,
            textcoords="offset points",
            xytext=(3, -9),
        )


def _tokens_axes(ax: Any) -> None:
    """Generated tokens per prompt on a log x axis, held-out reward on y, grid and legend."""
    import matplotlib.ticker  # heavy: matplotlib

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("generated tokens per prompt (log)")
    ax.set_ylabel("held-out mean reward")
    ax.grid(alpha=0.3)
    ax.legend()


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


COMPUTE_FILE = "compute.json"  # the last `eval --budgets` of this run, drawn in its report
MIN_PAIRS_SHOWN = 20  # ranking accuracy is drawn at positions with at least this many pairs


def _value_metrics(iterations: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    return [
        (i["t"], i["metrics"]["value"])
        for i in iterations
        if i["t"] > 0 and isinstance(i["metrics"].get("value"), dict)
    ]


def _value_plots(iterations: list[dict[str, Any]], out_dir: Path, plt: Any) -> list[Path]:
    """Per V_t: the reliability curve (held-out prefixes, predicted vs actual) and the within-
    prompt pair ranking accuracy by prefix position."""
    vms = _value_metrics(iterations)
    paths = []
    cal = [(t, m["val_calibration"]) for t, m in vms if m.get("val_calibration")]
    if cal:
        fig, ax = plt.subplots(figsize=(6, 4))
        lo = min(min(b["pred"], b["actual"]) for _, c in cal for b in c)
        hi = max(max(b["pred"], b["actual"]) for _, c in cal for b in c)
        ax.plot([lo, hi], [lo, hi], ":", color="gray", label="perfect calibration")
        for t, c in cal:
            ax.plot([b["pred"] for b in c], [b["actual"] for b in c], "o-", label=f"V_{t}")
        units = next((m.get("targets") for _, m in vms if m.get("targets")), "reward")
        ax.set_xlabel(f"predicted ({units}; bins of held-out prefixes)")
        ax.set_ylabel("actual mean")
        ax.grid(alpha=0.3)
        ax.legend()
        paths.append(_save(plt, fig, out_dir / "value_calibration.png"))
    rank = [
        (t, (m.get("heldout") or {}).get("by_position") or m.get("val_ranking_by_position"))
        for t, m in vms
    ]
    rank = [(t, by) for t, by in rank if by]
    if rank:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.axhline(0.5, color="gray", ls=":", label="chance")
        for t, by in rank:
            # positions with few pairs (only the longest answers reach them) are noise
            pos = sorted((p for p in by if by[p]["pairs"] >= MIN_PAIRS_SHOWN), key=int)
            ax.plot(
                [int(p) for p in pos],
                [by[p]["accuracy"] for p in pos],
                "o-",
                label=f"V_{t} (all: {_fmt(_accuracy(dict(vms)[t]))})",
            )
        ax.set_xlabel(
            f"prefix position (chunks of the answer; >= {MIN_PAIRS_SHOWN} pairs; held-out "
            "prompts where measured)"
        )
        ax.set_ylabel("pair ranking accuracy, same prompt")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend()
        paths.append(_save(plt, fig, out_dir / "value_ranking.png"))
    return paths


def _accuracy(m: dict[str, Any]) -> float | None:
    held = m.get("heldout") or {}
    return (
        held.get("accuracy") if held.get("accuracy") is not None else m.get("val_pairwise_accuracy")
    )


def _gate_cell(gate: dict[str, Any] | None) -> str:
    if not gate:
        return "off"
    return "used" if gate.get("accepted") else "not used"


def _value_section(iterations: list[dict[str, Any]]) -> str:
    rows = []
    warnings = []
    for t, m in _value_metrics(iterations):
        held = m.get("heldout") or {}
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(c)}</td>"
                for c in (
                    f"V_{t}",
                    str(m.get("loss", "")),
                    _fmt(held.get("accuracy")),
                    _fmt(held.get("kendall_tau")),
                    str(held.get("pairs", "")),
                    _fmt(m.get("val_pairwise_accuracy")),
                    _fmt(m.get("val_mse_ratio")),
                    _fmt(m.get("val_pearson")),
                    _gate_cell(m.get("gate")),
                )
            )
            + "</tr>"
        )
        if m.get("warning"):
            warnings.append(f"<p><b>Warning</b>: {html.escape(m['warning'])}.</p>")
        gate = m.get("gate") or {}
        if gate:
            verdict = "steers" if gate.get("accepted") else "is NOT used (pi_t = pi_{t-1})"
            warnings.append(
                f"<p><b>Gate</b>: V_{t} {verdict}: {html.escape(str(gate.get('reason', '')))}.</p>"
            )
    if not rows:
        return ""
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "model",
            "objective",
            "held-out pair accuracy",
            "Kendall tau",
            "pairs",
            "validation pair accuracy",
            "validation MSE / constant",
            "Pearson r",
            "gate",
        )
    )
    return (
        "<h2>Value models</h2>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "<p>The search compares prefixes of the same prompt at the same step, so what counts is "
        "the pair accuracy: the share of such pairs with different rewards that V_t orders "
        "right (0.5 is chance). Held-out: every prefix of pi_{t-1}'s graded answers on the "
        "held-out prompts; validation: V_t's own validation split of its training rollouts. "
        "The MSE ratio (against predicting the training mean) also counts differences between "
        "prompts, which selection never uses.</p>" + "".join(warnings)
    )


def write_report(
    name: str,
    config: dict[str, Any],
    iterations: list[dict[str, Any]],
    summary: dict[str, Any],
    out_dir: Path,
    spent: dict[str, Any] | None = None,
) -> Path:
    """Write metrics.json, the plots and report.html into out_dir; return the HTML path.
    `spent`: what the run paid its provider (every attempt)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spent = spent or {}
    (out_dir / "metrics.json").write_text(
        json.dumps(
            {"run": name, "summary": summary, "spent": spent, "iterations": iterations},
            indent=2,
            default=str,
        )
    )
    plots = _plots(iterations, summary, out_dir)
    compute = out_dir / COMPUTE_FILE  # written by `iro-bb eval --budgets` (attach_compute)
    if compute.is_file():
        plots.append(
            plot_compute(json.loads(compute.read_text()), out_dir / "reward_at_budgets.png")
        )
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
        for row in table_rows(iterations)
    )
    imgs = "".join(
        f'<figure><img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        f"<figcaption>{html.escape(p.stem.replace('_', ' '))}</figcaption></figure>"
        for p in plots
    )
    summ = "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(_fmt(v))}</li>" for k, v in summary.items()
    )
    cfg = html.escape(json.dumps(config, indent=2))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>iro-bb run {html.escape(name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 960px; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th {{ background: #f3f3f3; }}
figure {{ display: inline-block; margin: 0.5rem; }}
img {{ max-width: 440px; }}
pre {{ background: #f7f7f7; padding: 1rem; overflow-x: auto; }}
</style></head><body>
<h1>iro-bb run <code>{html.escape(name)}</code></h1>
<h2>Summary</h2><ul>{summ}</ul>
<p>Paid to the provider over every attempt: {html.escape(_spent(spent))}.</p>
<h2>Iterations (held-out prompts)</h2>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<p>"reward": the policy's own answer, with no grader at decode time: for t = 0 the base policy
(mean over its N samples), for t &ge; 1 chunk-level beam search guided by V_1..V_t, answer picked
by the value score (what <code>iro-bb generate</code> and <code>serve</code> return). "grader pick":
the best of the policy's complete answers by the grader ("answers" per prompt): for t = 0 that is
Best-of-N over N = W&times;K samples. "± se": the standard error over prompts; "gain vs t-1": the
change from the previous policy (t = 1: from the base policy's mean), paired by prompt.</p>
{_value_section(iterations)}
<h2>Plots</h2>{imgs}
<h2>Configuration</h2><pre>{cfg}</pre>
</body></html>
"""
    p = out_dir / "report.html"
    p.write_text(page, encoding="utf-8")
    return p


def _spent(spent: dict[str, Any]) -> str:
    if not spent.get("requests"):
        return "nothing (a local model, or every answer replayed from the cache)"
    return (
        f"${float(spent.get('cost_usd', 0)):.4f} for {int(spent['requests']):,} requests, "
        f"{int(spent.get('input_tokens', 0)):,} input and {int(spent.get('output_tokens', 0)):,} "
        "output tokens"
    )


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def plot_compute(result: dict[str, Any], path: str | Path) -> Path:
    """The equal-compute picture: held-out reward against generated tokens per prompt, the base
    policy's Best-of-n curve beside IRO at each search size W*K (no grader at decode time)."""
    import matplotlib  # heavy: matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib

    fig, ax = plt.subplots(figsize=(6, 4))
    _best_of_n(ax, result.get("bon_curve") or [], "Best-of-n by the grader")
    iro = result.get("iro_budgets") or []
    if iro:
        ax.errorbar(
            [c["tokens_per_prompt"] for c in iro],
            [c["reward"] for c in iro],
            yerr=[c["stderr"] or 0.0 for c in iro],
            fmt="D-",
            color="C1",
            capsize=3,
            label="IRO, no grader (± se)",
        )
        for c in iro:
            ax.annotate(f"W*K={c['budget']}", (c["tokens_per_prompt"], c["reward"]), fontsize=7)
    ax.set_title(f"{result['run']} on {Path(result['data']).name}")
    _tokens_axes(ax)
    return _save(plt, fig, Path(path))
