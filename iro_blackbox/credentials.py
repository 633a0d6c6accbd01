"""User configuration file and API keys.

The config file is JSON: $IRO_CONFIG, else ~/.config/iro-bb/config.json (honours XDG_CONFIG_HOME):

    {"api_key": "sk-...",                                   # like OPENAI_API_KEY (see below)
     "api_keys": {"https://api.deepseek.com/v1": "sk-..."}}  # per base URL

A key is scoped to its host. The key for a base URL is, in this order: the explicit argument; the
environment variable named by `key_env` (`--api-key-env NAME`, a judge spec's `api_key_env`); the
config file's entry for that base URL; then env OPENAI_API_KEY, else the config file's "api_key",
but only for OpenAI's own API (api.openai.com) or an endpoint the user named (`named`: the
--base-url of a command), never for a host a grader's or judge's spec names. Keys are secrets:
callers must never store or print them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


OPENAI_HOSTS = frozenset({"api.openai.com"})


def is_openai(base_url: str | None) -> bool:
    """True for OpenAI's own API (no base URL means OpenAI's)."""
    if not base_url:
        return True
    return (urlsplit(base_url).hostname or "").lower() in OPENAI_HOSTS


def api_key_for(
    base_url: str | None,
    explicit: str | None = None,
    *,
    key_env: str | None = None,
    named: bool = True,
) -> str | None:
    """The API key to send to `base_url` (None when none is configured for it).

    `key_env`: the environment variable that holds the key for this endpoint (ConfigError when
    it is not set). `named`: the user named this endpoint (a command's --base-url, a run they
    configured), so OPENAI_API_KEY and the config file's default "api_key" may go to it; False
    (a grader's or judge's endpoint): they go only to OpenAI's own API."""
    if explicit:
        return explicit
    if key_env:
        value = os.environ.get(key_env)
        if not value:
            raise ConfigError(f"api_key_env: environment variable '{key_env}' is not set")
        return value
    cfg = load_user_config()
    per_url = cfg.get("api_keys") or {}
    if base_url and isinstance(per_url, dict):
        for url, key in per_url.items():
            if isinstance(key, str) and key and _norm_url(url) == _norm_url(base_url):
                return key
    if not (named or is_openai(base_url)):
        return None
    env = os.environ.get("OPENAI_API_KEY")
    if env:
        return env
    key = cfg.get("api_key")
    return key if isinstance(key, str) and key else None
