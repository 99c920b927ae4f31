"""A leaderboard row is its resolved configuration: one checkpoint id per set of weights."""

from __future__ import annotations

import polars as pl
from _report_fakes import write_model

from cellbench import registry
from cellbench.pipeline import checkpoint_id, training_config_hash, untrained_checkpoint_id
from cellbench.report import tables
from cellbench.report.store import (
    is_preset_default,
    is_untrained,
    load_results,
    short_variant,
    variant_of,
)


def _id(model="cwa-msn", preset="quick", seed=0, prototypes=None, steps=None):
    return checkpoint_id(model, registry.metadata(model), preset, seed, prototypes, steps)


def test_steps_equal_to_the_preset_default_name_the_same_checkpoint():
    # the quick preset trains 600 steps: asking for 600 is asking for the same weights
    assert _id(steps=600) == _id()
    assert _id(steps=2400) != _id()
    assert _id(steps=0) == untrained_checkpoint_id("cwa-msn", "quick", 0)
    assert is_untrained(variant_of(_id(steps=0))) and not is_untrained(variant_of(_id()))
    assert is_untrained(variant_of(_id(steps=0))) and not is_untrained(variant_of(_id(steps=2400)))


def test_checkpoint_id_is_content_named_and_groups_seeds():
    a, b = _id(seed=0), _id(seed=1)
    assert a != b and variant_of(a) == variant_of(b)  # seeds of one config: one row
    assert training_config_hash("cwa-msn", "quick") in a
    assert short_variant(variant_of(a)) == "quick-steps600"
    assert is_preset_default("cwa-msn", variant_of(a)) and not is_preset_default(
        "cwa-msn", variant_of(_id(steps=2400))
    )
    # another prototype count is another checkpoint, and says so in its name
    assert "proto512" in _id(prototypes=512) and _id(prototypes=512) != a
    # a different model or training data (preset) never shares an id
    assert _id(model="single-well-msn") != a and _id(preset="tiny") != a
    # untrained-by-construction models keep their names
    assert _id(model="random", seed=3) == "seed3"
    assert _id(model="oracle") == "none"


def test_old_results_of_the_same_weights_are_one_row(tmp_path):
    """Stored before content naming: quick-seed0 and quick-steps600-seed0 are the same training
    config (stored as config.train), so the leaderboard shows them once; a real budget
    variant (2400 steps) stays its own row."""
    train = {"arch": "vit_small_patch16_224", "max_steps": 600, "warmup_steps": 60, "lr": 0.004}
    root = tmp_path / "results"
    write_model(root, "cwa-msn", [0.30, 0.32], variant="quick", config={"train": train})
    write_model(root, "cwa-msn", [0.30], variant="quick-steps600", config={"train": train})
    write_model(
        root,
        "cwa-msn",
        [0.40],
        variant="quick-steps2400",
        config={"train": {**train, "max_steps": 2400, "warmup_steps": 240}},
    )
    recs = load_results(root)
    assert {r["variant"] for r in recs} == {"quick", "quick-steps2400"}  # readable, merged
    df = tables.leaderboard_frame(recs).filter(pl.col("model") == "cwa-msn")
    assert sorted(df["variant"].to_list()) == ["quick", "quick-steps2400"]
    assert df.filter(pl.col("variant") == "quick")["n_seeds"].item() == 2
