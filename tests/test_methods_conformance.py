"""Every trainable method honours the contract of the loop and of the registry (in the style of
timm's model conformance tests): one step on the tiny preset trains every parameter, and its
checkpoint, loaded through ``cellbench.registry.create``, embeds as the method itself does.

The methods are those the model cards name a trainer for, so a new card is covered at once.
"""

from __future__ import annotations

import pytest
import torch
from _train_fakes import FakeDataset, fixed_batch  # noqa: I001

from cellbench import registry
from cellbench.io import sha256_file
from cellbench.train.loop import build_method_options, train
from cellbench.train.methods import SAMPLING, build_method, method_defaults, trainable
from cellbench.train.presets import resolve
from cellbench.train.views import center_crop

TRAINED = sorted(name for name, card in registry.cards().items() if card.trainer)


@pytest.fixture(scope="module")
def dataset():
    return FakeDataset()


def _config(name: str, **over):
    return resolve("tiny", {**method_defaults(name), **over})


def test_the_cards_name_trainable_methods():
    assert len(TRAINED) >= 6  # CWA-MSN, Single-Well-MSN, CropMAE x2, ViT-WSL, InfoNCE
    assert set(TRAINED) <= set(trainable()), "a card names a trainer the loop cannot build"


@pytest.mark.parametrize("name", TRAINED)
def test_every_card_with_a_trainer_is_trainable_with_its_cards_sampling(name):
    card = registry.cards()[name]
    assert name in trainable()
    options = build_method_options(name, _config(name))
    sampling = card.recipe.get("sampling")
    if sampling is None:  # a supervised method (ViT-WSL): one well, held-out wells
        assert card.trainer == "wsl" and not options.cross_well
        assert options.holdout_fraction == _config(name).holdout_fraction
    else:
        assert options.cross_well is SAMPLING[sampling]
        assert options.holdout_fraction == 0.0


@pytest.mark.parametrize("name", TRAINED)
def test_one_step_gives_every_trainable_parameter_a_finite_nonzero_gradient(name, dataset):
    config = _config(name)
    torch.manual_seed(0)
    method = build_method(name, config, len(dataset.channels), dataset.n_pert).train()
    inputs = fixed_batch(dataset, cross_well=build_method_options(name, config).cross_well)
    loss, stats = method(inputs, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    ema = {id(p) for target, _ in method.ema_pairs() for p in target.parameters()}
    trained = [(n, p) for n, p in method.named_parameters() if id(p) not in ema]
    assert trained and all(p.requires_grad for _, p in trained)
    for pname, p in trained:
        assert p.grad is not None, f"{name}: {pname} gets no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name}: {pname} has a zero gradient"
    for target, _ in method.ema_pairs():  # the EMA target learns only by averaging
        assert all(p.grad is None and not p.requires_grad for p in target.parameters())
    values = method.log_values(stats)
    assert values and all(isinstance(v, float) for v in values.values())


@pytest.mark.parametrize("name", TRAINED)
def test_a_checkpoint_loads_through_the_registry_and_embeds_as_the_method(name, dataset, tmp_path):
    config = _config(name, max_steps=1, holdout_fraction=0.34 if name == "vit-wsl" else 0.0)
    result = train(name, dataset, config, seed=0, out_dir=tmp_path, progress=False, health=False)
    assert result.steps_done == 1 and result.model_path is not None
    encoder = registry.create(name, checkpoint=result.model_path)
    assert encoder.weights_sha256 == sha256_file(result.model_path)
    assert tuple(encoder.channels) == tuple(dataset.channels)

    sites = torch.as_tensor(dataset.read_sites(list(range(6))))
    images = center_crop(encoder.preprocess(sites), encoder.input_size)
    got = encoder.embed(images)
    method = result.method.eval()
    with torch.no_grad():
        own = method.embed_tokens(images)
    assert got.shape == (6, encoder.embed_dim) == own.shape
    torch.testing.assert_close(got, own.float(), rtol=0, atol=0)
