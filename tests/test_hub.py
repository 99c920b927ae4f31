"""Released-weights resolution: explicit path or folder, then the HF cache; offline says how."""

import pytest

from cellbench.encoders.hub import hub_file
from cellbench.errors import NotFoundError


def test_explicit_file_and_folder(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    kw = dict(what="test weights", fix="get them")
    assert hub_file("org/none", "model.safetensors", checkpoint=weights, **kw) == weights
    assert hub_file("org/none", "model.safetensors", checkpoint=tmp_path, **kw) == weights
    with pytest.raises(NotFoundError, match="do not exist; get them"):
        hub_file("org/none", "model.safetensors", checkpoint=tmp_path / "nope", **kw)


def test_offline_message_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(NotFoundError, match="not in the Hugging Face cache; run hf download"):
        hub_file("org/absent", "w.bin", what="test weights", fix="run hf download org/absent")
