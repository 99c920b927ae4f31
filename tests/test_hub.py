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


def test_offline_is_huggingface_hubs_own_setting(monkeypatch):
    import huggingface_hub.constants as hc

    from cellbench.encoders.hub import offline

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    assert offline()
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    assert not offline()


def test_no_message_cites_the_removed_huggingface_cli():
    from pathlib import Path

    import cellbench

    root = Path(cellbench.__file__).parent
    cites = [
        str(p.relative_to(root)) for p in root.rglob("*.py") if "huggingface-cli" in p.read_text()
    ]
    assert not cites, (
        f"`huggingface-cli` is gone from huggingface_hub >= 1.0; use `hf download` in {cites}"
    )
