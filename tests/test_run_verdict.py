"""The run's verdict: against the untrained network of its own architecture, over seeds."""

from __future__ import annotations

import io

import numpy as np
import pytest
from _report_fakes import write_model
from scipy import stats

from cellbench import registry
from cellbench.pipeline import checkpoint_id
from cellbench.report.run_summary import paired_difference, verdict
from cellbench.report.store import load_results, variant_of
from cellbench.report.tables import long_results


def _variant(steps=None, model="cwa-msn"):
    return variant_of(checkpoint_id(model, registry.metadata(model), "quick", 0, None, steps))


@pytest.fixture()
def names():
    return {"trained": _variant(), "untrained": _variant(steps=0), "long": _variant(steps=2400)}


def _long(tmp_path, names, trained, untrained, *, random=(0.50, 0.52, 0.51), long_run=None):
    root = tmp_path / "results"
    tasks = ("gene_gene",)
    write_model(root, "cwa-msn", trained, variant=names["trained"], tasks=tasks)
    if untrained:
        write_model(root, "cwa-msn", untrained, variant=names["untrained"], tasks=tasks)
    if long_run:
        write_model(root, "cwa-msn", long_run, variant=names["long"], tasks=tasks)
    # the random ViT-S/16 is another architecture's floor: never the run's comparison
    write_model(root, "random", random, variant="default", tasks=tasks)
    return long_results(load_results(root))


def test_paired_interval_is_the_paired_t_interval():
    a, b = {0: 0.30, 1: 0.33, 2: 0.31, 5: 0.9}, {0: 0.12, 1: 0.13, 2: 0.10}
    diff, lo, hi, n = paired_difference(a, b)
    x, y = np.array([0.30, 0.33, 0.31]), np.array([0.12, 0.13, 0.10])
    want = stats.ttest_rel(x, y).confidence_interval(0.95)
    assert n == 3 and diff == pytest.approx((x - y).mean())
    assert (lo, hi) == (pytest.approx(want.low), pytest.approx(want.high))
    assert paired_difference({0: 0.3}, {0: 0.1})[1:] == (None, None, 1)


def test_above_only_when_the_interval_excludes_zero(tmp_path, names):
    long = _long(tmp_path, names, [0.30, 0.33, 0.31], [0.12, 0.13, 0.10])
    line = verdict(long, "cwa-msn", names["trained"], names["untrained"])
    assert "-> above." in line and "untrained ViT of its architecture" in line
    assert "over 3 paired seeds" in line and "0.117" in line  # the untrained mean, not random's .51
    assert "0.510" not in line


def test_a_small_difference_is_no_clear_difference(tmp_path, names):
    long = _long(tmp_path, names, [0.112, 0.100, 0.131], [0.110, 0.121, 0.104])
    line = verdict(long, "cwa-msn", names["trained"], names["untrained"])
    assert "-> no clear difference." in line and "above" not in line.split("->")[1].split(".")[0]


def test_below(tmp_path, names):
    long = _long(tmp_path, names, [0.10, 0.09, 0.11], [0.20, 0.21, 0.19])
    assert "-> below." in verdict(long, "cwa-msn", names["trained"], names["untrained"])


def test_one_seed_is_not_evidence(tmp_path, names):
    # +0.002 on one seed: the old verdict said "above"
    long = _long(tmp_path, names, [0.112], [0.110])
    line = verdict(long, "cwa-msn", names["trained"], names["untrained"])
    assert "-> one seed only, not evidence." in line and "-> above" not in line
    assert "+0.002" in line


def test_without_a_stored_untrained_run_it_compares_with_chance_and_says_how(tmp_path, names):
    long = _long(tmp_path, names, [0.30, 0.33, 0.31], None)
    line = verdict(long, "cwa-msn", names["trained"], names["untrained"])
    assert "chance (0.100 by construction)" in line and "-> above." in line
    assert "cellbench run --model cwa-msn --steps 0" in line


def test_the_runs_own_variant_is_compared(tmp_path, names):
    long = _long(
        tmp_path, names, [0.30, 0.33, 0.31], [0.12, 0.13, 0.10], long_run=[0.05, 0.06, 0.04]
    )
    assert "-> below." in verdict(long, "cwa-msn", names["long"], names["untrained"])
    assert verdict(long, "cwa-msn", None, names["untrained"]) is None  # ambiguous: no claim
    assert verdict(long, "random", "default") is None  # a floor gets no verdict


def test_run_summary_finds_the_untrained_run_of_the_same_preset(names):
    """What `cellbench run` prints, from a fake store in the results directory."""
    from rich.console import Console

    from cellbench.paths import results_dir
    from cellbench.pipeline import RunResult
    from cellbench.report.run_summary import print_run_summary
    from cellbench.results import ResultRecord

    root = results_dir()
    ds = "synthetic-verdict"
    write_model(root, "cwa-msn", [0.30, 0.33, 0.31], variant=names["trained"], dataset=ds)
    write_model(root, "cwa-msn", [0.12, 0.13, 0.10], variant=names["untrained"], dataset=ds)
    ckpt = checkpoint_id("cwa-msn", registry.metadata("cwa-msn"), "quick", 2, None)
    result = RunResult(
        "cwa-msn",
        ckpt,
        ds,
        records={
            "gene_gene": ResultRecord(
                model="cwa-msn",
                checkpoint=ckpt,
                dataset=ds,
                task="gene_gene",
                scores={},
                seed=2,
                config={"preset": "quick", "prototypes": None},
            )
        },
    )
    buf = io.StringIO()
    print_run_summary(result, [], console=Console(file=buf, width=200))
    out = buf.getvalue()
    assert "untrained CWA-MSN" in out and "| chance |" in out
    assert "-> above." in out and "over 3 paired seeds" in out


def test_an_untrained_run_is_named_as_the_floor_not_compared_with_itself(tmp_path, names):
    long = _long(tmp_path, names, [0.30, 0.33, 0.31], [0.20, 0.22, 0.21])
    line = verdict(long, "cwa-msn", names["untrained"], names["untrained"])
    assert "untrained network itself" in line and "0.210" in line and "difference" not in line
