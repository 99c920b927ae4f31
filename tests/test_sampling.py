"""PairSampler: cross-well pairs are two different wells of one perturbation, single-well
pairs one well, batches a pure function of (seed, step), controls and held-out wells kept out."""

from __future__ import annotations

import numpy as np
import pytest

from cellbench.data import load_dataset
from cellbench.data.sampling import PairSampler, perturbation_labels
from cellbench.data.synthetic import generate_screen
from cellbench.errors import InputError


@pytest.fixture(scope="module")
def bray(tmp_path_factory):
    return load_dataset(
        "synthetic-bray",
        data_dir=generate_screen(
            "synthetic-bray", "tiny", 0, tmp_path_factory.mktemp("b") / "bray"
        ),
    )


def _site_of_image(ds, images):
    """Find which site each image is (exact match in the in-memory array)."""
    flat = ds.load_all().reshape(len(ds), -1)
    return np.array([np.flatnonzero((flat == im.reshape(-1)).all(1))[0] for im in images])


def test_cross_well_pairs(bray):
    s = PairSampler(bray, cross_well=True, batch_size=8, seed=0)
    labels = np.asarray(perturbation_labels(bray.wells), dtype=object)
    site_well = bray.sites["well_index"].to_numpy()
    for step in range(20):
        b = s.batch_at(step)
        assert b.anchor.dtype == np.uint8 and b.anchor.shape == (8, 5, 32, 32) == b.target.shape
        assert (b.anchor_well_index != b.target_well_index).all()
        names = [s.perturbation_names[i] for i in b.perturbation_index]
        assert list(labels[b.anchor_well_index]) == names == list(labels[b.target_well_index])
        assert len(set(b.perturbation_index.tolist())) == 8  # B distinct perturbations
        assert not bray.wells["is_control"].to_numpy()[b.anchor_well_index].any()
    # the images really come from the named wells
    b = s.batch_at(3)
    assert (site_well[_site_of_image(bray, b.anchor)] == b.anchor_well_index).all()
    assert (site_well[_site_of_image(bray, b.target)] == b.target_well_index).all()


def test_single_well_pairs_two_sites_of_one_well(bray):
    s = PairSampler(bray, cross_well=False, batch_size=6, seed=1)
    site_well = bray.sites["well_index"].to_numpy()
    b = s.batch_at(0)
    assert (b.anchor_well_index == b.target_well_index).all()
    a_site, t_site = _site_of_image(bray, b.anchor), _site_of_image(bray, b.target)
    assert (site_well[a_site] == b.anchor_well_index).all() and (
        site_well[t_site] == b.anchor_well_index
    ).all()
    assert (a_site != t_site).all()  # tiny Bray has 2 sites per well


def test_batch_at_is_a_pure_function_of_seed_and_step(bray):
    a = PairSampler(bray, cross_well=True, batch_size=8, seed=5)
    b = PairSampler(bray, cross_well=True, batch_size=8, seed=5)
    later = [b.batch_at(k) for k in (7, 2, 7)]
    for got, k in zip(later, (7, 2, 7), strict=True):
        ref = a.batch_at(k)
        np.testing.assert_array_equal(got.anchor, ref.anchor)
        np.testing.assert_array_equal(got.target_well_index, ref.target_well_index)
    c = PairSampler(bray, cross_well=True, batch_size=8, seed=6)
    assert not np.array_equal(c.batch_at(7).anchor_well_index, a.batch_at(7).anchor_well_index)
    assert not np.array_equal(a.batch_at(8).anchor_well_index, a.batch_at(7).anchor_well_index)


def test_controls_and_holdout(bray):
    with_ctrl = PairSampler(bray, cross_well=True, batch_size=4, seed=0, include_controls=True)
    without = PairSampler(bray, cross_well=True, batch_size=4, seed=0)
    assert "DMSO@0" in with_ctrl.perturbation_names and "DMSO@0" not in without.perturbation_names
    held = PairSampler(bray, cross_well=True, batch_size=4, seed=0, holdout_fraction=0.34)
    assert len(held.heldout_wells) > 0 and not set(held.heldout_wells) & set(held.train_wells)
    seen = set()
    for k in range(50):
        b = held.batch_at(k)
        seen |= set(b.anchor_well_index.tolist()) | set(b.target_well_index.tolist())
    assert not seen & set(held.heldout_wells.tolist())
    assert held.n_perturbations == without.n_perturbations  # every compound keeps 2 training wells


def test_rxrx3_single_site_wells_and_errors(tmp_path):
    ds = load_dataset(
        "synthetic-rxrx3-core",
        data_dir=generate_screen("synthetic-rxrx3-core", "tiny", 0, tmp_path / "r"),
    )
    s = PairSampler(ds, cross_well=False, batch_size=4, seed=0)
    b = s.batch_at(0)
    np.testing.assert_array_equal(b.anchor, b.target)  # one site per well: the same site twice
    cw = PairSampler(ds, cross_well=True, batch_size=16, seed=0)
    assert (cw.batch_at(0).anchor_well_index != cw.batch_at(0).target_well_index).all()
    with pytest.raises(InputError):
        PairSampler(ds, cross_well=True, batch_size=0, seed=0)
