"""GAN losses on logits whose losses can be computed by hand."""
from __future__ import annotations

import math

import pytest
import torch

from i2i.losses import GAN_MODES, check_gan_mode, discriminator_loss, generator_loss, gradient_penalty

# softplus(-x) is BCE(x, 1) and softplus(x) is BCE(x, 0); at x = 0 both are log 2.
LOG2 = math.log(2.0)


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_vanilla_values() -> None:
    real = torch.tensor([0.0, 2.0])
    fake = torch.tensor([[-1.0], [0.0]])
    bce_real = (LOG2 + _softplus(-2.0)) / 2
    bce_fake = (_softplus(-1.0) + LOG2) / 2
    expected = 0.5 * (bce_real + bce_fake)
    assert discriminator_loss(real, fake, "vanilla").item() == pytest.approx(expected, rel=1e-6)
    assert generator_loss(fake, "vanilla").item() == pytest.approx((_softplus(1.0) + LOG2) / 2, rel=1e-6)
    assert generator_loss(torch.zeros(2, 1, 3, 3), "vanilla").item() == pytest.approx(LOG2, rel=1e-6)


def test_lsgan_values() -> None:
    real = torch.tensor([1.0, 3.0])  # squared errors to 1: 0, 4 -> mean 2
    fake = torch.tensor([0.0, -2.0])  # squared errors to 0: 0, 4 -> mean 2
    assert discriminator_loss(real, fake, "lsgan").item() == pytest.approx(0.5 * (2.0 + 2.0))
    assert generator_loss(fake, "lsgan").item() == pytest.approx((1.0 + 9.0) / 2)


def test_hinge_values() -> None:
    real = torch.tensor([2.0, 0.5, -1.0])  # relu(1 - x): 0, 0.5, 2 -> mean 2.5/3
    fake = torch.tensor([-2.0, 0.0, 1.0])  # relu(1 + x): 0, 1, 2 -> mean 1
    assert discriminator_loss(real, fake, "hinge").item() == pytest.approx(2.5 / 3 + 1.0)
    assert generator_loss(fake, "hinge").item() == pytest.approx(-(-1.0 / 3))


def test_wgangp_values() -> None:
    real = torch.tensor([1.0, 3.0])
    fake = torch.tensor([-1.0, 0.0])
    assert discriminator_loss(real, fake, "wgangp").item() == pytest.approx(-0.5 - 2.0)
    assert generator_loss(fake, "wgangp").item() == pytest.approx(0.5)


@pytest.mark.parametrize("mode", GAN_MODES)
def test_half_precision_logits_give_float32_losses(mode: str) -> None:
    real = torch.tensor([30.0, -30.0, 0.5]).half()
    fake = torch.tensor([-30.0, 30.0, 0.5]).half()
    d_loss = discriminator_loss(real, fake, mode)
    g_loss = generator_loss(fake, mode)
    assert d_loss.dtype == g_loss.dtype == torch.float32
    assert d_loss.item() == pytest.approx(discriminator_loss(real.float(), fake.float(), mode).item())
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)


@pytest.mark.parametrize("mode", GAN_MODES)
def test_gradients_push_the_right_way(mode: str) -> None:
    real = torch.full((4,), 0.5, requires_grad=True)
    fake = torch.full((4,), 0.5, requires_grad=True)
    discriminator_loss(real, fake, mode).backward()
    assert (real.grad < 0).all() and (fake.grad > 0).all()  # D raises real scores, lowers fake ones
    fake_g = torch.full((4,), 0.5, requires_grad=True)
    generator_loss(fake_g, mode).backward()
    assert (fake_g.grad < 0).all()  # G raises its fake scores


def test_bad_mode_lists_valid_modes() -> None:
    with pytest.raises(ValueError, match="lsgan"):
        check_gan_mode("wgan")
    with pytest.raises(ValueError, match="vanilla"):
        discriminator_loss(torch.zeros(1), torch.zeros(1), "gan")
    with pytest.raises(ValueError, match="hinge"):
        generator_loss(torch.zeros(1), "ls")
    assert check_gan_mode("hinge") == "hinge"


def _linear_critic(weight: torch.Tensor):
    # D(x) = <x, w> per sample: its gradient with respect to each sample is w.
    return lambda x: (x * weight).flatten(1).sum(dim=1)


def test_gradient_penalty_is_zero_for_unit_gradient_norm() -> None:
    torch.manual_seed(0)
    weight = torch.randn(3, 4, 4)
    weight = weight / weight.norm()
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    penalty = gradient_penalty(_linear_critic(weight), real, fake)
    assert penalty.item() == pytest.approx(0.0, abs=1e-8)


def test_gradient_penalty_value_and_backprop() -> None:
    torch.manual_seed(0)
    direction = torch.randn(3, 4, 4)
    weight = (3.0 * direction / direction.norm()).requires_grad_(True)  # gradient norm 3
    real, fake = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4, requires_grad=True)
    penalty = gradient_penalty(_linear_critic(weight), real, fake, weight=10.0)
    assert penalty.item() == pytest.approx(10.0 * (3.0 - 1.0) ** 2, rel=1e-5)
    penalty.backward()  # create_graph=True: the penalty reaches the critic's parameters
    assert weight.grad is not None and weight.grad.norm() > 0
    assert fake.grad is None  # the inputs are detached: only the critic is penalised


def test_gradient_penalty_with_a_network() -> None:
    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(4, 1, 3))
    real, fake = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    penalty = gradient_penalty(critic, real, fake, weight=1.0)
    assert penalty.dim() == 0 and penalty.item() > 0
    penalty.backward()
    # Every conv weight shapes the input gradient (biases do not, so they get no gradient).
    for conv in (critic[0], critic[2]):
        assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()
        assert conv.weight.grad.abs().sum() > 0


def test_gradient_penalty_rejects_mismatched_batches() -> None:
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(lambda x: x.sum(), torch.zeros(2, 3), torch.zeros(3, 3))
