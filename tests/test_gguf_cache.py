"""The disk cache of what transformers builds out of a GGUF file (gguf_cache.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iro_blackbox.gguf_cache import cached_build, entry_path


class Thing:
    def __init__(self, value: int):
        self.value = value

    def save_pretrained(self, folder: Path) -> None:
        (Path(folder) / "thing.json").write_text(json.dumps({"value": self.value}))

    @classmethod
    def load(cls, folder: Path) -> Thing:
        return cls(json.loads((Path(folder) / "thing.json").read_text())["value"])


def test_built_once_then_loaded(tmp_path):
    built = []

    def build():
        built.append(1)
        return Thing(7)

    entry = tmp_path / "cache" / "things" / "k"
    a = cached_build(entry, "thing.json", Thing.load, build)
    b = cached_build(entry, "thing.json", Thing.load, build)
    assert a.value == b.value == 7 and built == [1]
    assert not [p for p in entry.parent.iterdir() if p.name.startswith(".tmp-")]


def test_damaged_entry_is_rebuilt(tmp_path):
    entry = tmp_path / "k"
    entry.mkdir()
    (entry / "thing.json").write_text("{not json")

    def load(folder):
        try:
            return Thing.load(folder)
        except json.JSONDecodeError as e:
            raise ValueError(str(e)) from None

    assert cached_build(entry, "thing.json", load, lambda: Thing(3)).value == 3
    assert Thing.load(entry).value == 3  # the rebuilt entry replaced the damaged one


def test_unwritable_cache_still_works(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    assert cached_build(blocker / "k", "thing.json", Thing.load, lambda: Thing(2)).value == 2


def test_entry_key_follows_the_file_and_extra_parts(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"x" * 10)
    a = entry_path("models", str(tmp_path), "m.gguf", "torch.float32")
    assert a == entry_path("models", str(tmp_path), "m.gguf", "torch.float32")
    assert a != entry_path("models", str(tmp_path), "m.gguf", "torch.bfloat16")
    f.write_bytes(b"x" * 11)  # the file changed: a new entry
    assert a != entry_path("models", str(tmp_path), "m.gguf", "torch.float32")


@pytest.mark.slow
def test_smollm2_gguf_model_cached_on_disk_is_the_same_model(tmp_path, monkeypatch):
    import torch

    from iro_blackbox.providers.hf.loading import load_model as _load

    monkeypatch.setenv("IRO_CACHE_DIR", str(tmp_path))
    first, tok, _ = _load("smollm2-135m-instruct", "cpu", torch.float32)  # from the GGUF
    (entry,) = (tmp_path / "models").iterdir()
    assert (entry / "model.safetensors").is_file() and (entry / "config.json").is_file()
    second, _, _ = _load("smollm2-135m-instruct", "cpu", torch.float32)  # from the cache
    assert "quantization_config" not in json.loads((entry / "config.json").read_text())
    ids = tok("A rainy Monday morning", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(first(ids).logits, second(ids).logits)
