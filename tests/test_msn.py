"""MSN: the loss against a hand-computed case, Sinkhorn, EMA, schedules, masking, views."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cellbench.methods.msn import msn_loss, sharpen, sinkhorn
from cellbench.train import schedules
from cellbench.train.backbone import build_backbone, random_keep, tokens
from cellbench.train.ema import ema_update, make_target
from cellbench.train.presets import PRESETS, resolve
from cellbench.train.views import random_crops, random_flips, standardize


# ----------------------------------------------------------------- numpy oracle, by hand
def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _sinkhorn_by_hand(p, iters):
    """SwAV/MSN Sinkhorn-Knopp written out: Q = P^T, total mass 1, then alternately
    prototype rows -> 1/K and sample columns -> 1/B; return B * Q^T."""
    q = p.T.copy()
    k, b = q.shape
    q /= q.sum()
    for _ in range(iters):
        q /= q.sum(axis=1, keepdims=True)
        q /= k
        q /= q.sum(axis=0, keepdims=True)
        q /= b
    return (q * b).T


def test_sharpen_literal_case():
    p = torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64)
    # p^(1/0.5) = p^2 = [0.25, 0.09, 0.04], sum 0.38
    expected = np.array([[0.25, 0.09, 0.04]]) / 0.38
    np.testing.assert_allclose(sharpen(p, 0.5).numpy(), expected, rtol=1e-12)


def test_sinkhorn_one_iteration_literal_case():
    # P = [[0.6, 0.4], [0.2, 0.8]] (B=2, K=2).  Q = P^T / sum(P) = [[0.3, 0.1], [0.2, 0.4]].
    # rows -> 1/2: [[0.375, 0.125], [0.1666.., 0.3333..]]
    # columns -> 1/2: col sums 0.541666.., 0.458333.. -> [[0.34615, 0.13636], [0.15385, 0.36364]]
    # times B=2, transposed: [[0.69231, 0.30769], [0.27273, 0.72727]]
    p = torch.tensor([[0.6, 0.4], [0.2, 0.8]], dtype=torch.float64)
    out = sinkhorn(p, iters=1).numpy()
    expected = np.array(
        [
            [0.375 / 0.5416666666666666, 0.1666666666666666 / 0.5416666666666666],
            [0.125 / 0.4583333333333333, 0.3333333333333333 / 0.4583333333333333],
        ]
    )
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)


def test_sinkhorn_balances_prototypes():
    rng = np.random.default_rng(0)
    p = _softmax(rng.normal(size=(8, 4)) * 3)
    out = sinkhorn(torch.tensor(p), iters=50).numpy()
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-9)  # each sample is a distribution
    np.testing.assert_allclose(out.sum(axis=0), 8 / 4, atol=1e-6)  # prototypes equally used
    np.testing.assert_allclose(out, _sinkhorn_by_hand(p, 50), rtol=1e-9)


def test_msn_loss_matches_hand_computation():
    rng = np.random.default_rng(1)
    b, v, d, k = 3, 2, 4, 5
    tau, temp, iters = 0.1, 0.25, 3
    anchor = rng.normal(size=(v * b, d))
    target = rng.normal(size=(b, d))
    protos = rng.uniform(-1 / 16, 1 / 16, size=(k, d))

    # by hand
    probs = _softmax(_unit(anchor) @ _unit(protos).T / tau)
    t = _softmax(_unit(target) @ _unit(protos).T / tau)
    t = t ** (1 / temp)
    t /= t.sum(axis=1, keepdims=True)
    t = _sinkhorn_by_hand(t, iters)
    t_rep = np.concatenate([t] * v)  # view-major: rows v*B + i share the target of sample i
    ce = np.mean(-(t_rep * np.log(probs)).sum(axis=1))
    mean_p = probs.mean(axis=0)
    me_max = math.log(k) + (mean_p * np.log(mean_p)).sum()

    loss, out = msn_loss(
        torch.tensor(anchor),
        torch.tensor(target),
        torch.tensor(protos),
        temperature=tau,
        sharpen_temperature=temp,
        sinkhorn_iters=iters,
    )
    assert float(out["ce"]) == pytest.approx(ce, rel=1e-9)
    assert float(out["me_max"]) == pytest.approx(me_max, rel=1e-9)
    assert float(loss) == pytest.approx(ce + me_max, rel=1e-9)
    np.testing.assert_allclose(out["targets"].numpy(), t, rtol=1e-9)


def test_msn_loss_weights_and_gradients():
    torch.manual_seed(0)
    anchor = torch.randn(8, 6, requires_grad=True)
    target = torch.randn(4, 6, requires_grad=True)
    protos = torch.nn.Parameter(torch.empty(5, 6).uniform_(-1 / 16, 1 / 16))
    loss, out = msn_loss(anchor, target, protos, ce_weight=2.0, me_max_weight=0.5)
    assert float(loss.detach()) == pytest.approx(
        2.0 * float(out["ce"]) + 0.5 * float(out["me_max"]), rel=1e-6
    )
    loss.backward()
    assert anchor.grad is not None and anchor.grad.abs().sum() > 0
    assert protos.grad is not None and protos.grad.abs().sum() > 0
    assert target.grad is None  # targets carry no gradient


def test_me_max_bounds():
    k = 4
    protos = torch.eye(k)
    # anchors each pointing at a different prototype, sharp: mean prob ~ uniform -> me-max ~ 0
    spread = torch.eye(k) * 10
    _, out = msn_loss(spread, spread, protos, temperature=0.01)
    assert float(out["me_max"]) == pytest.approx(0.0, abs=1e-6)
    # all anchors on one prototype -> me-max ~ log K
    same = torch.zeros(k, k)
    same[:, 0] = 1
    _, out = msn_loss(same, spread, protos, temperature=0.01)
    assert float(out["me_max"]) == pytest.approx(math.log(k), abs=1e-4)


# ----------------------------------------------------------------- EMA and schedules
def test_ema_update_by_hand():
    online = torch.nn.Linear(2, 1)
    target = make_target(online)
    assert all(not p.requires_grad for p in target.parameters())
    before = target.weight.detach().clone()
    with torch.no_grad():
        online.weight.add_(1.0)
    ema_update(target, online, momentum=0.9)
    expected = 0.9 * before + 0.1 * online.weight.detach()
    torch.testing.assert_close(target.weight, expected)
    frozen = target.weight.detach().clone()
    ema_update(target, online, momentum=1.0)
    torch.testing.assert_close(target.weight, frozen)


def test_schedules_by_hand():
    # warm-up: linear to base over 10 steps, then half-cosine to final over the remaining 90
    assert schedules.warmup_cosine(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert schedules.warmup_cosine(9, 100, 1.0, 10) == pytest.approx(1.0)
    assert schedules.warmup_cosine(10, 100, 1.0, 10) == pytest.approx(1.0)
    assert schedules.warmup_cosine(55, 100, 1.0, 10) == pytest.approx(0.5)
    assert schedules.warmup_cosine(100, 100, 1.0, 10, final=0.1) == pytest.approx(0.1)
    # weight decay 0.04 -> 0.4 cosine, EMA 0.996 -> 1.0 linear
    assert schedules.cosine(0, 11, 0.04, 0.4) == pytest.approx(0.04)
    assert schedules.cosine(5, 11, 0.04, 0.4) == pytest.approx(0.22)
    assert schedules.cosine(10, 11, 0.04, 0.4) == pytest.approx(0.4)
    assert schedules.linear(0, 5, 0.996, 1.0) == pytest.approx(0.996)
    assert schedules.linear(2, 5, 0.996, 1.0) == pytest.approx(0.998)
    assert schedules.linear(4, 5, 0.996, 1.0) == pytest.approx(1.0)


def test_paper_preset_is_the_paper_recipe():
    p = PRESETS["paper"]
    assert (p.arch, p.patch_size, p.batch_size, p.epochs) == ("vit_small_patch16_224", 16, 64, 100)
    assert (p.lr, p.warmup_epochs, p.weight_decay, p.final_weight_decay) == (2e-4, 15, 0.04, 0.4)
    assert (p.clip_grad, p.ema_start, p.ema_end) == (3.0, 0.996, 1.0)
    assert (p.num_prototypes, p.temperature, p.sharpen, p.sinkhorn_iters) == (1024, 0.1, 0.25, 3)
    assert (p.n_random_views, p.n_focal_views, p.mask_ratio) == (1, 10, 0.15)
    assert (p.proj_hidden, p.proj_out) == (2048, 256)


def test_cpu_msn_lr_never_touches_the_paper_recipe():
    from cellbench.train.methods import method_defaults

    assert method_defaults("cwa-msn", "quick")["lr"] == 4e-3
    assert "lr" not in method_defaults("cwa-msn", "paper")
    assert "lr" not in method_defaults("infonce-cross", "quick")


def test_overrides_are_typed_and_checked():
    from cellbench.errors import CellbenchError, NotFoundError

    assert resolve("tiny", {"num_prototypes": "32"}).num_prototypes == 32
    assert resolve("tiny", {"mask_focal": "false"}).mask_focal is False
    with pytest.raises(CellbenchError, match="num_prototypes"):
        resolve("tiny", {"num_protoypes": 3})
    with pytest.raises(NotFoundError, match="quick"):
        resolve("quik")


# ----------------------------------------------------------------- masking and views
def test_masking_ratio_and_cls_kept():
    g = torch.Generator().manual_seed(0)
    keep = random_keep(5, 16, 0.15, g)
    assert keep.shape == (5, 16 - round(0.15 * 16))  # 14 of 16 patch tokens kept
    for row in keep:
        assert len(set(row.tolist())) == row.numel() and torch.all(row[1:] > row[:-1])
    assert len({tuple(r.tolist()) for r in keep}) > 1  # independent per image
    assert random_keep(5, 16, 0.0, g) is None

    config = resolve("tiny")
    vit = build_backbone(config, 3).eval()
    x = torch.randn(5, 3, 32, 32)  # 16 patches of 8 px
    out = tokens(vit, x, keep)
    assert out.shape == (5, 1 + 14, config.embed_dim)
    # the CLS token sees only the kept patches: with every patch kept it equals the full pass
    full = torch.arange(16).repeat(5, 1)
    torch.testing.assert_close(tokens(vit, x, full), tokens(vit, x))


def test_views_crop_flip_standardize():
    g = torch.Generator().manual_seed(3)
    images = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    crops = random_crops(images, 4, g, n=3)
    assert crops.shape == (6, 1, 4, 4)
    for i, crop in enumerate(crops):  # each crop is a contiguous window of its source image
        src = images[i % 2, 0]
        hits = [
            (r, c)
            for r in range(3)
            for c in range(3)
            if torch.equal(src[r : r + 4, c : c + 4], crop[0])
        ]
        assert hits
    flipped = random_flips(crops, g)
    for a, b in zip(flipped, crops, strict=True):
        assert any(torch.equal(a, t) for t in (b, b.flip(-1), b.flip(-2), b.flip(-1).flip(-2)))
    u8 = torch.randint(0, 255, (3, 2, 8, 8), dtype=torch.uint8)
    s = standardize(u8)
    torch.testing.assert_close(s.mean(dim=(-2, -1)), torch.zeros(3, 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        s.std(dim=(-2, -1), unbiased=False), torch.ones(3, 2), atol=1e-4, rtol=0
    )


# ----------------------------------------------------------------- the loss on literal numbers
def test_msn_loss_literal_case_without_sinkhorn():
    """K = 2 unit prototypes e1, e2, tau = 1 / ln 3, so cos 1 vs 0 gives probabilities 3/4, 1/4.
    Anchor (1, 0) -> p = [3/4, 1/4]; target (0, 1) -> [1/4, 3/4], sharpened at T = 1/2 ->
    [1/16, 9/16] / (10/16) = [0.1, 0.9]. CE = 0.1 ln(4/3) + 0.9 ln 4; the mean anchor
    probability is [3/4, 1/4], so me-max = ln 2 + 3/4 ln(3/4) + 1/4 ln(1/4)."""
    protos = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    anchor = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    target = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    loss, out = msn_loss(
        anchor,
        target,
        protos,
        temperature=1 / math.log(3),
        sharpen_temperature=0.5,
        sinkhorn_iters=0,
    )
    ce = 0.1 * math.log(4 / 3) + 0.9 * math.log(4)
    me_max = math.log(2) + 0.75 * math.log(0.75) + 0.25 * math.log(0.25)
    np.testing.assert_allclose(out["targets"].numpy(), [[0.1, 0.9]], rtol=1e-12)
    assert float(out["ce"]) == pytest.approx(ce, rel=1e-12)
    assert float(out["me_max"]) == pytest.approx(me_max, rel=1e-12)
    assert float(loss) == pytest.approx(ce + me_max, rel=1e-12)


def test_msn_loss_literal_case_with_sinkhorn():
    """Two samples whose targets are both [0.1, 0.9] (as above): one Sinkhorn iteration with
    B = K = 2 makes Q = [[.05, .05], [.45, .45]] -> rows 1/2 -> [[.25, .25], [.25, .25]] ->
    columns 1/2 (unchanged) -> times B: every target [1/2, 1/2]. Anchors [3/4, 1/4] and
    [1/4, 3/4]: CE = -(ln 3/4 + ln 1/4) / 2 = ln(16/3) / 2 for each, mean prob [1/2, 1/2]:
    me-max = 0."""
    protos = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    anchor = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    target = torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    loss, out = msn_loss(
        anchor,
        target,
        protos,
        temperature=1 / math.log(3),
        sharpen_temperature=0.5,
        sinkhorn_iters=1,
    )
    np.testing.assert_allclose(out["targets"].numpy(), [[0.5, 0.5], [0.5, 0.5]], rtol=1e-12)
    assert float(out["ce"]) == pytest.approx(0.5 * math.log(16 / 3), rel=1e-12)
    assert float(out["me_max"]) == pytest.approx(0.0, abs=1e-12)
    assert float(loss) == pytest.approx(0.5 * math.log(16 / 3), rel=1e-12)


# ----------------------------------------------------------------- the official recipe
def _tiny_msn(**over):
    from cellbench.methods.msn import MSN

    torch.manual_seed(0)
    return MSN(resolve("tiny", over), 3, cross_well=False)


def _inputs(n=8, size=24, seed=0):
    from cellbench.train.method import StepInputs

    g = torch.Generator().manual_seed(seed)
    img = torch.randint(0, 255, (n, 3, size, size), generator=g, dtype=torch.uint8)
    idx = torch.arange(n)
    return StepInputs(anchor=img, target=img, perturbation=idx, anchor_well=idx, target_well=idx)


def _token_calls(monkeypatch, method, **over):
    """(number of images, patch tokens kept or None) of each masked-capable backbone pass."""
    import cellbench.methods.msn as msn_mod

    calls = []
    real = msn_mod.tokens

    def spy(vit, images, keep=None, final_norm=True):
        if vit is method.backbone:
            calls.append(
                (images.shape[0], images.shape[-1], None if keep is None else keep.shape[1])
            )
        return real(vit, images, keep, final_norm)

    monkeypatch.setattr(msn_mod, "tokens", spy)
    method(_inputs(), torch.Generator().manual_seed(1))
    return calls


def test_focal_views_are_unmasked_by_default(monkeypatch):
    for name in ("tiny", "quick", "standard", "paper"):
        assert PRESETS[name].mask_focal is False
    # tiny: 16 px random views (4 patches of 8 px: 3 kept at 0.15), 8 px focal views (1 patch)
    method = _tiny_msn(n_focal_views=2, focal_size=16, mask_ratio=0.25)
    calls = _token_calls(monkeypatch, method)
    assert calls == [(8, 16, 3), (16, 16, None)]  # random views masked, focal views not
    method = _tiny_msn(n_focal_views=2, focal_size=16, mask_ratio=0.25, mask_focal=True)
    assert _token_calls(monkeypatch, method) == [(8, 16, 3), (16, 16, 3)]


def test_projection_head_runs_per_crop_size_group():
    """The head (and its BatchNorm) sees the random and the focal views as separate batches, so
    in training mode each group's first BatchNorm output has zero mean over its own rows."""
    method = _tiny_msn(n_focal_views=2, focal_size=8).train()
    seen = []
    hook = method.head[1].register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    loss, _ = method(_inputs(), torch.Generator().manual_seed(1))
    hook.remove()
    assert [o.shape[0] for o in seen] == [8, 16]  # B random views, then 2B focal views
    for out in seen:
        torch.testing.assert_close(out.mean(dim=0), torch.zeros(out.shape[1]), atol=1e-5, rtol=0)
    assert torch.isfinite(loss)


def test_official_initialisations():
    """Prototypes U(-1/sqrt(D), 1/sqrt(D)) and head Linear layers trunc-normal(0.02), bias 0
    (the official MSN code), for D = proj_out."""
    method = _tiny_msn(num_prototypes=512, proj_out=32, proj_hidden=256)
    bound = 1 / math.sqrt(32)
    protos = method.prototypes.detach()
    assert protos.abs().max() <= bound
    assert protos.abs().max() > 0.95 * bound  # the full range is used, not +-1/16 = 0.0625
    assert float(protos.std()) == pytest.approx(bound / math.sqrt(3), rel=0.05)
    linears = [m for m in method.head if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3
    for lin in linears:
        assert float(lin.weight.detach().std()) == pytest.approx(0.02, rel=0.1)
        assert lin.weight.abs().max() < 0.12
        assert torch.equal(lin.bias, torch.zeros_like(lin.bias))
    # the EMA target head starts as an exact copy
    for t, o in zip(method.target_head.parameters(), method.head.parameters(), strict=True):
        assert torch.equal(t, o)


def test_quick_preset_focal_views_carry_at_least_16_tokens():
    q = PRESETS["quick"]
    if q.n_focal_views:
        assert (q.focal_size // q.patch_size) ** 2 >= 16
    assert (q.crop_size // q.patch_size) ** 2 >= 16


def test_schedule_horizon_option():
    from cellbench.errors import CellbenchError
    from cellbench.train.loop import schedule_steps

    assert PRESETS["paper"].schedule_horizon == 1.0
    assert schedule_steps(resolve("tiny"), 100) == 100
    assert schedule_steps(resolve("tiny", {"schedule_horizon": 1.25}), 100) == 125
    with pytest.raises(CellbenchError, match="schedule_horizon"):
        schedule_steps(resolve("tiny", {"schedule_horizon": 0.5}), 100)


# ----------------------------------------------------------------- parity with lightly
def test_msn_loss_matches_lightly_msnloss():
    """``msn_loss`` against lightly's ``MSNLoss`` (lightly/loss/msn_loss.py), an independent
    implementation of the official loss. Argument map: lightly ``temperature`` = our
    ``temperature`` (tau), ``sinkhorn_iterations`` = ``sinkhorn_iters``,
    ``target_sharpen_temperature`` (a forward argument) = ``sharpen_temperature``,
    ``regularization_weight`` = ``me_max_weight``; lightly has no CE weight (ours = 1). Its
    regularisation ``-sum(log(p^-p)) + log K`` is our me-max ``log K - H(mean p)``, so the
    totals and their gradients are equal, not merely close in one term."""
    lightly_msn = pytest.importorskip("lightly.loss.msn_loss")

    gen = torch.Generator().manual_seed(5)
    b, v, d, k = 6, 3, 16, 10
    for iters, sharp, tau, weight in [
        (3, 0.25, 0.1, 1.0),
        (0, 0.5, 0.2, 1.0),
        (5, 0.25, 0.1, 0.5),
        (3, 0.25, 0.1, 0.0),
    ]:
        anchor = torch.randn(v * b, d, generator=gen, dtype=torch.float64, requires_grad=True)
        target = torch.randn(b, d, generator=gen, dtype=torch.float64)
        protos = torch.randn(k, d, generator=gen, dtype=torch.float64, requires_grad=True)
        ours, out = msn_loss(
            anchor,
            target,
            protos,
            temperature=tau,
            sharpen_temperature=sharp,
            sinkhorn_iters=iters,
            me_max_weight=weight,
        )
        theirs = lightly_msn.MSNLoss(
            temperature=tau, sinkhorn_iterations=iters, regularization_weight=weight
        )(anchor, target, protos, target_sharpen_temperature=sharp)
        assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-10, abs=1e-12)
        g_ours = torch.autograd.grad(ours, (anchor, protos))
        g_theirs = torch.autograd.grad(theirs, (anchor, protos))
        for a, t in zip(g_ours, g_theirs, strict=True):
            torch.testing.assert_close(a, t, rtol=1e-9, atol=1e-12)
        # the same targets: sharpening and Sinkhorn agree too
        t_probs = lightly_msn.prototype_probabilities(
            torch.nn.functional.normalize(target, dim=1),
            torch.nn.functional.normalize(protos.detach(), dim=1),
            tau,
        )
        t_probs = lightly_msn.sinkhorn(lightly_msn.sharpen(t_probs, sharp), iters)
        torch.testing.assert_close(out["targets"], t_probs, rtol=1e-9, atol=1e-12)
    # and lightly's regularisation is our me-max
    _, out = msn_loss(anchor, target, protos, me_max_weight=1.0)
    reg = lightly_msn.MSNLoss().regularization_loss(out["anchor_probs"].mean(0))
    assert float(reg) == pytest.approx(float(out["me_max"]), rel=1e-10, abs=1e-12)
