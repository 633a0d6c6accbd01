"""A run's value models steering another provider or model (weak-to-strong: align on a cheap
model, decode with an expensive one).

    opts, steering = decode_options(row.config, {"provider": "openai", "base_url": URL,
                                                 "model": "big-model"}, row.name)

The value models read plain text ("prompt + partial answer"), so V_1..V_T of a run can score the
prefixes of any model. `load_run(run, provider=..., model=..., base_url=...)` builds the run's
policy over that model; these rules say which of the run's stored provider options still hold:

- An option given by the caller always wins (the CLI's --provider, --model, --base-url, ...).
- Not steering (provider and model as the run's): every stored option holds, as before
  (a --base-url alone moves the same policy to another address of the same server).
- Steering (another provider or model), a stored option holds only where it still means the
  same thing:
  - the endpoint (base URL) stays the run's only for the same provider (openai: another model
    on the same server); else it is the one given (openai: none means OpenAI's API);
  - host options (api_key_env, rpm, tpm) only at the same provider and base URL: a key the
    run named for its own host never goes to another host (credentials.py: for the endpoint
    named on the command line, its per-URL entry in the config file or OPENAI_API_KEY);
  - endpoint options (price_input/price_output, api_mode, batch_api) only at the same
    provider, base URL and model: another model is priced and probed on its own;
  - the tokenizer only for the same model.
What the run learned (value models, beta, W, K, L, max_tokens, sampling) never changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import InputError
from .config import NOT_RESULTS, AlignConfig

# Options that point the run's policy at another model: given to load_run beside NOT_RESULTS.
STEERING = frozenset(
    {"provider", "model", "tokenizer", "api_mode", "vllm_dtype", "vllm_tensor_parallel"}
)
HOST_BOUND = ("api_key_env", "rpm", "tpm")
ENDPOINT_BOUND = ("price_input", "price_output", "api_mode", "batch_api")
MODEL_BOUND = ("tokenizer",)


@dataclass(frozen=True)
class Steering:
    """Where a steered policy decodes (never a key: keys stay in the environment)."""

    provider: str
    model: str
    base_url: str | None = None
    tokenizer: str | None = None
    api_mode: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        """e.g. "openai:gpt-4o-mini at https://api.openai.com/v1"."""
        at = f" at {self.base_url}" if self.provider == "openai" and self.base_url else ""
        return f"{self.provider}:{self.model}{at}"


def decode_options(
    stored: dict[str, Any], given: dict[str, Any], run: str = "the run"
) -> tuple[dict[str, Any], Steering | None]:
    """The run's flat options (`stored`) with the `given` provider options applied by the rules
    of the module docstring, and the Steering (None: the run's own provider and model). A given
    option that would change what the run learned is an InputError naming what may be given."""
    given = {k: v for k, v in given.items() if v is not None}
    allowed = NOT_RESULTS | STEERING
    bad = sorted(k for k in given if k not in allowed)
    if bad:
        raise InputError(
            f"{run}: option {', '.join(bad)} cannot be overridden (it changes what the run "
            f"learned; these can: {', '.join(sorted(allowed))})"
        )
    was = AlignConfig.from_dict(
        dict(stored)
    ).provider  # the stored options, as the config reads them
    d = {**stored, **given}
    provider = d.get("provider", was.provider)
    model = d.get("model", was.model)
    if provider == was.provider and model == was.model:
        return d, _steering(d, stored)
    if "base_url" not in given and provider != was.provider:
        d["base_url"] = None  # another provider: only the endpoint given
    same_host = provider == was.provider and d.get("base_url") == was.base_url
    same_endpoint = same_host and model == was.model
    for names, keep in (
        (HOST_BOUND, same_host),
        (ENDPOINT_BOUND, same_endpoint),
        (MODEL_BOUND, model == was.model),
    ):
        for k in names:
            if k not in given and not keep:
                d[k] = AlignConfig.default_of(k)
    return d, _steering(d, stored)


def _steering(d: dict[str, Any], stored: dict[str, Any]) -> Steering | None:
    """The Steering of options `d`, or None when they decode with the run's provider and model
    (tokenizer and continuation mode as the run's too)."""
    now = AlignConfig.from_dict(d).provider
    was = AlignConfig.from_dict(dict(stored)).provider
    target = ("provider", "model", "tokenizer", "api_mode")
    if all(getattr(now, k) == getattr(was, k) for k in target):
        return None
    return Steering(now.provider, now.model, now.base_url, now.tokenizer, now.api_mode)
