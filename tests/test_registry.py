"""The encoder registry: names, lazy imports, plugins, close-name errors, typed model cards."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cellbench import registry
from cellbench.errors import CellbenchError, NotFoundError
from cellbench.train.methods import trainable

PAPER_MODELS = [
    "cwa-msn",
    "single-well-msn",
    "cropmae-cross",
    "cropmae-single",
    "vit-wsl",
    "openphenom",
    "vit-imagenet",
    "cellprofiler",
    "random",
    "oracle",
    "nuisance-only",
]
# every model cellbench can train must have a card (a trainable name without one could be
# trained but never scored or listed)
TRAINABLE = sorted(trainable())


def test_every_model_of_the_paper_is_registered():
    names = registry.list_models()
    for name in PAPER_MODELS + ["pixel-stats", "infonce-cross"]:
        assert name in names
    assert registry.list_models("cropmae*") == ["cropmae-cross", "cropmae-single"]


def test_listing_models_does_not_import_torch():
    code = (
        "import sys, cellbench.registry as r; names = r.list_models(); "
        "[r.metadata(n) for n in names]; print(len(names), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, torch_loaded = out.stdout.split()
    assert int(count) >= 13
    assert torch_loaded == "False"


def test_unknown_name_suggests_close_names():
    with pytest.raises(NotFoundError) as info:
        registry.create("cwa-msm")
    message = str(info.value)
    assert "'cwa-msn'" in message and "cellbench models" in message
    with pytest.raises(NotFoundError):
        registry.metadata("no-such-model-at-all")


@pytest.mark.parametrize("name", sorted(registry.cards()))
def test_card_metadata_is_complete(name):
    record = registry.metadata(name)
    missing = [k for k in registry.REQUIRED_METADATA if record.get(k) in (None, "")]
    assert not missing, f"{name} card lacks {missing}"
    assert ":" in record["factory"]
    assert record["counts_provenance"] in {"reported", "measured"}
    if name in TRAINABLE:
        assert record["trainer"], f"{name} must name the trainer that trains it"
        assert record["ours"] is True


def test_paper_counts_come_from_the_cards():
    # the paper's Table 1 and Figure 1 (section 5.1): training images and parameters
    assert registry.metadata("cwa-msn")["training_images"] == 198609
    assert registry.metadata("cwa-msn")["training_perturbations"] == 7401
    assert registry.metadata("vit-imagenet")["training_images"] == 1_000_000
    assert registry.metadata("openphenom")["training_images"] >= 10_000_000
    assert "non-commercial" in registry.metadata("openphenom")["weights_license"].lower()
    assert registry.metadata("cwa-msn")["input_channels"] == ["DNA", "ER", "RNA", "AGP", "Mito"]


def test_cards_are_shipped_inside_the_package():
    """The package's ``model_cards`` is the repository's ``models/`` (a link, so the two cannot
    drift apart) and the build ships it as package data, so an installed cellbench has its cards."""
    import tomllib

    package = Path(registry.__file__).parent
    shipped, repo = package / "model_cards", package.parent / "models"
    if not repo.is_dir():
        pytest.skip("not a source checkout")
    assert shipped.is_symlink() and shipped.resolve() == repo.resolve()
    pyproject = tomllib.loads((package.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert "model_cards/*.toml" in pyproject["tool"]["setuptools"]["package-data"]["cellbench"]
    assert registry.cards_dir() == shipped


def test_roles_come_from_the_cards():
    roles = {name: card.role for name, card in registry.cards().items()}
    assert set(roles.values()) <= set(registry.ROLES)
    assert registry.models_with_role("ceiling") == ("oracle",)
    assert registry.models_with_role("floor") == ("nuisance-only", "random")
    assert registry.models_with_role("reference") == ("pixel-stats",)
    assert registry.role("cwa-msn") == "model" and registry.role("not-a-card") == "model"
    # the paper's method is the one highlighted model; "ours" means trained by cellbench
    assert [n for n in registry.cards() if registry.is_highlighted(n)] == ["cwa-msn"]
    assert sorted(n for n in registry.list_models() if registry.metadata(n)["ours"]) == sorted(
        TRAINABLE
    )
    with pytest.raises(ValueError, match="unknown role"):
        registry.models_with_role("flor")


_GOOD_CARD = """
name = "toy"
display_name = "Toy"
family = "toy"
role = "model"
description = "a toy"
citation = "none"
factory = "cellbench.encoders.baselines:create_random"
[architecture]
embed_dim = 3
"""


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.replace('role = "model"', 'role = "model"\nours = true'), "unknown key.*ours"),
        (
            lambda c: c.replace("embed_dim = 3", "embed_dim = 3\nembedding_dim = 3"),
            r"unknown key.*embedding_dim.*\[architecture\]",
        ),
        (
            lambda c: c.replace('role = "model"', 'role = "baseline"'),
            "role 'baseline' is not one of",
        ),
        (lambda c: c.replace('role = "model"\n', ""), "missing key.*role"),
        (
            lambda c: c.replace('family = "toy"', 'family = "toy"\nhighlight = "yes"'),
            "highlight must be",
        ),
        (
            lambda c: c.replace("baselines:create_random", "baselines.create_random"),
            "factory must look like",
        ),
    ],
)
def test_card_with_unknown_or_bad_keys_is_a_clear_error(tmp_path, monkeypatch, edit, message):
    (tmp_path / "toy.toml").write_text(_GOOD_CARD)
    monkeypatch.setenv("CELLBENCH_MODELS_DIR", str(tmp_path))
    assert registry.cards()["toy"].architecture == {"embed_dim": 3}  # the good card loads
    (tmp_path / "toy.toml").write_text(edit(_GOOD_CARD))
    registry._read_cards.cache_clear()
    try:
        with pytest.raises(CellbenchError, match=message) as info:
            registry.list_models()
        assert "toy.toml" in str(info.value)
    finally:
        registry._read_cards.cache_clear()


def test_a_card_is_frozen():
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        registry.cards()["random"].role = "model"  # type: ignore[misc]


def test_register_lazy_string_and_decorator(tmp_path, monkeypatch):
    module = tmp_path / "my_toy_encoders.py"
    module.write_text(
        textwrap.dedent(
            """
            from cellbench.encoders.baselines import create_pixel_stats
            CALLS = []
            def create(checkpoint=None, **kwargs):
                CALLS.append(checkpoint)
                return create_pixel_stats(channels=("DNA",))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        registry.register("toy-lazy", "my_toy_encoders:create", metadata={"embed_dim": 11})
        assert "my_toy_encoders" not in sys.modules  # lazy until created
        encoder = registry.create("toy-lazy")
        assert encoder.name == "toy-lazy" and encoder.embed_dim == 11
        assert registry.metadata("toy-lazy")["embed_dim"] == 11

        with pytest.raises(CellbenchError, match="already registered"):
            registry.register("toy-lazy", "my_toy_encoders:create")
        with pytest.raises(CellbenchError, match="already registered"):
            registry.register("random", "my_toy_encoders:create")

        @registry.register_encoder("toy-decorated", family="toy")
        def _factory(checkpoint=None, **kwargs):
            from cellbench.encoders.baselines import create_pixel_stats

            return create_pixel_stats(channels=("DNA", "RNA"))

        assert "toy-decorated" in registry.list_models()
        assert registry.create("toy-decorated").embed_dim == 22
        assert registry.metadata("toy-decorated")["family"] == "toy"
    finally:
        registry.unregister("toy-lazy")
        registry.unregister("toy-decorated")
    assert "toy-lazy" not in registry.list_models()


def test_broken_factory_says_what_to_install():
    registry.register("toy-broken", "no_such_module_xyz:create")
    try:
        with pytest.raises(NotFoundError, match="install"):
            registry.create("toy-broken")
    finally:
        registry.unregister("toy-broken")


def test_entry_point_plugin_is_found(tmp_path, monkeypatch):
    (tmp_path / "toy_plugin_pkg.py").write_text(
        "from cellbench.encoders.baselines import create_pixel_stats\n"
        "def make(checkpoint=None, **kw):\n"
        "    return create_pixel_stats(channels=('DNA', 'ER', 'RNA'))\n"
        "make.cellbench_metadata = {'family': 'toy', 'embed_dim': 33}\n"
    )
    dist = tmp_path / "toy_plugin_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[cellbench.encoders]\ntoy-plugin = toy_plugin_pkg:make\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "toy-plugin" in registry.list_models()
    encoder = registry.create("toy-plugin")
    assert encoder.channels == ("DNA", "ER", "RNA") and encoder.embed_dim == 33
    assert registry.metadata("toy-plugin")["family"] == "toy"
    assert registry.metadata("toy-plugin")["embed_dim"] == 33


def test_bad_card_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "oops.toml").write_text('name = "other"\n')
    monkeypatch.setenv("CELLBENCH_MODELS_DIR", str(tmp_path))
    with pytest.raises(CellbenchError, match="rename the file"):
        registry.list_models()
    (tmp_path / "oops.toml").write_text("name = \n")
    registry._read_cards.cache_clear()
    with pytest.raises(CellbenchError, match="not valid TOML"):
        registry.list_models()


def test_cli_models_table_lists_every_model():
    from typer.testing import CliRunner

    from cellbench.cli import app

    result = CliRunner().invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in registry.list_models():
        assert name in result.output
    shown = CliRunner().invoke(app, ["models", "--show", "openphenom"])
    assert shown.exit_code == 0 and "Non-commercial" in shown.output
    bad = CliRunner().invoke(app, ["models", "--show", "openfenom"])
    assert bad.exit_code == 2 and "openphenom" in bad.output


def test_adding_an_encoder_doc_example_runs(tmp_path, monkeypatch):
    """The factory in docs/adding-an-encoder.md works as written."""
    import re

    doc = (Path(registry.__file__).parent.parent / "docs" / "adding-an-encoder.md").read_text()
    code = re.findall(r"```python\n(.*?)```", doc, re.S)[0]
    pkg = tmp_path / "doc_pkg_example"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "encoders.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.register("doc-vit", "doc_pkg_example.encoders:create", metadata={"embed_dim": 384})
    try:
        import torch

        encoder = registry.create("doc-vit", channels=("DNA", "RNA"))
        out = encoder.embed(torch.randn(1, 2, 32, 32))
        assert out.shape == (1, 384) and encoder.channels == ("DNA", "RNA")
    finally:
        registry.unregister("doc-vit")
