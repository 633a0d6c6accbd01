"""The options that point a run's value models at another provider or model (`generate`, `eval`,
`serve`): align's provider options, with align's help texts (ProviderOptions'), each overriding
the run's stored one; which stored options still hold is iro/steer.py's rule."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..iro.config import AlignConfig

PANEL = "Steer another provider or model (default: the run's own)"


def _option(name: str, note: str = "") -> Any:
    flag = "--" + name.replace("_", "-")
    help_ = f"{AlignConfig.help_of(name)} {note}".strip()
    return typer.Option(flag, help=help_, rich_help_panel=PANEL, show_default=False)


SteerProviderOption = Annotated[
    str | None,
    _option(
        "provider",
        "Default: the run's. Another provider or model than the run's is steered by its value "
        "models (the same probe, refusals and budget checks as align).",
    ),
]
SteerModelOption = Annotated[str | None, _option("model", "Default: the run's.")]
BaseUrlOption = Annotated[
    str | None,
    _option(
        "base_url",
        "Default: the run's, for the run's provider; with another provider only the one given "
        "(none: OpenAI's API).",
    ),
]
TokenizerOption = Annotated[
    str | None, _option("tokenizer", "Another model never takes the run's tokenizer.")
]
ApiModeOption = Annotated[
    str | None, _option("api_mode", "Default: the run's; auto for another model.")
]
ApiKeyEnvOption = Annotated[
    str | None,
    _option(
        "api_key_env",
        "A key the run named for its own host is never sent to another host.",
    ),
]
ReprobeOption = Annotated[bool, _option("reprobe")]
PriceInputOption = Annotated[
    float | None, _option("price_input", "Another model is never priced at the run's prices.")
]
PriceOutputOption = Annotated[float | None, _option("price_output")]
VllmPythonOption = Annotated[str | None, _option("vllm_python")]
VllmDtypeOption = Annotated[str | None, _option("vllm_dtype", "Default: the run's.")]


def steer_overrides(**given: Any) -> dict[str, Any]:
    """The options given (None and an unset flag left out), as load_run's overrides."""
    return {k: v for k, v in given.items() if v is not None and v is not False}
