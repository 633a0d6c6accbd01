"""User configuration file and API keys.

The config file is JSON: $IRO_CONFIG, else ~/.config/iro-bb/config.json (honours XDG_CONFIG_HOME):

    {"api_key": "sk-...",                                   # default key for any endpoint
     "api_keys": {"https://api.deepseek.com/v1": "sk-..."}}  # per base URL (wins over api_key)

An API key is looked up in this order: the explicit argument, env OPENAI_API_KEY, the per-base-URL
entry of the config file, its "api_key". Keys are secrets: callers must never store or print them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import ConfigError


def config_path() -> Path:
    """Where the user config file lives (it need not exist)."""
    if os.environ.get("IRO_CONFIG"):
        return Path(os.environ["IRO_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "iro-bb" / "config.json"


def load_user_config() -> dict[str, Any]:
    """The parsed config file, or {} when there is none."""
    path = config_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        # never echo the file content: it holds secrets
        raise ConfigError(f"config file {path} is not valid JSON ({type(e).__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    return data


def _norm_url(url: str) -> str:
    return url.rstrip("/")


def api_key_for(base_url: str | None, explicit: str | None = None) -> str | None:
    """The API key to use for `base_url` (None when none is configured)."""
    if explicit:
        return explicit
    env = os.environ.get("OPENAI_API_KEY")
    if env:
        return env
    cfg = load_user_config()
    per_url = cfg.get("api_keys") or {}
    if base_url and isinstance(per_url, dict):
        for url, key in per_url.items():
            if isinstance(key, str) and _norm_url(url) == _norm_url(base_url):
                return key
    key = cfg.get("api_key")
    return key if isinstance(key, str) and key else None
