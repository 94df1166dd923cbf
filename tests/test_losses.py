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


_WGANGP_TASKS = {
    "pix2pix": {
        "generator": {"name": "unet", "num_downs": 5, "base_channels": 4},
        "discriminator": {"name": "patchgan", "base_channels": 4, "n_layers": 2},
    },
    "srgan": {
        "generator": {"name": "srresnet", "base_channels": 4, "num_blocks": 1, "norm": "none"},
        "discriminator": {"name": "patchgan", "base_channels": 4, "n_layers": 2},
        "lambda_perceptual": 0.0,
    },
}


@pytest.mark.parametrize("task_name", sorted(_WGANGP_TASKS))
def test_wgangp_tasks_add_the_gradient_penalty_to_the_critic_loss(task_name: str) -> None:
    """i2i's wgangp is WGAN-GP: the critic loss grows by lambda_gp times the penalty (the reference
    pix2pix/CycleGAN code defines cal_gradient_penalty but never calls it)."""
    from test_task_contract import FakeContext

    from i2i.config import parse_config
    from i2i.tasks import TASKS

    def critic_loss(lambda_gp: float) -> float:
        torch.manual_seed(0)  # the same networks, batch and interpolation factors every time
        raw = {"name": task_name, "gan_mode": "wgangp", "lambda_gp": lambda_gp, **_WGANGP_TASKS[task_name]}
        task = TASKS[task_name](parse_config({"task": raw, "data": {"crop_size": 32}}))
        context = FakeContext()
        task.attach(context)
        context.optimizer_names = {id(o): name for name, o in task.optimizers.items()}
        low = 8 if task_name == "srgan" else 32
        return float(task.train_step({"a": torch.rand(2, 3, low, low), "b": torch.rand(2, 3, 32, 32)})["D"])

    without, penalty_5, penalty_10 = critic_loss(0.0), critic_loss(5.0), critic_loss(10.0)
    assert penalty_10 - without > 1e-4
    assert penalty_10 - without == pytest.approx(2.0 * (penalty_5 - without), rel=1e-4)


def test_gradient_penalty_rejects_mismatched_batches() -> None:
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(lambda x: x.sum(), torch.zeros(2, 3), torch.zeros(3, 3))


# --- the multi-layer perceptual loss (Real-ESRGAN's VGG19 layer weights) ----------------------


def _vgg_file(path, last_index: int):
    """torchvision-format VGG19 weights (random) for every conv up to ``features.<last_index>``."""
    from i2i.losses import _vgg19_stack

    torch.manual_seed(0)
    stack = _vgg19_stack(last_index)
    torch.save({f"features.{k}": v * 0.5 for k, v in stack.state_dict().items()}, path)
    return path


def test_feature_taps_give_each_named_layer_from_one_pass() -> None:
    from i2i.losses import FeatureTaps

    torch.manual_seed(0)
    stack = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))
    taps = FeatureTaps(stack, {"first": 0, "last": 2, "again": 0})
    x = torch.rand(1, 3, 6, 6)
    out = taps(x)
    assert set(out) == {"first", "last", "again"}
    assert torch.equal(out["first"], stack[0](x)) and torch.equal(out["again"], out["first"])
    assert torch.equal(out["last"], stack(x))
    with pytest.raises(ValueError, match="outside the stack"):
        FeatureTaps(stack, {"far": 3})


def test_vgg19_features_at_several_layers_match_the_single_layer_stacks(tmp_path) -> None:
    from i2i.losses import VGG19_LAYERS, vgg19_features

    path = _vgg_file(tmp_path / "vgg.pth", VGG19_LAYERS["conv2_2"])
    taps = vgg19_features(["conv1_2", "conv2_2"], weights=path)
    assert not taps.training and not any(p.requires_grad for p in taps.parameters())
    assert len(taps.stack) == VGG19_LAYERS["conv2_2"] + 1  # cut after the deepest layer
    x = torch.rand(1, 3, 16, 16)
    out = taps(x)
    for layer in ("conv1_2", "conv2_2"):
        assert torch.allclose(out[layer], vgg19_features(layer, weights=path)(x), atol=1e-6)
    with pytest.raises(ValueError, match="features.10.weight"):
        vgg19_features(["conv1_1", "conv3_1"], weights=path)


def test_layer_weights_sum_the_weighted_distances(tmp_path) -> None:
    from i2i.losses import VGG19_LAYERS, PerceptualLoss, perceptual_loss, vgg19_features

    path = _vgg_file(tmp_path / "vgg.pth", VGG19_LAYERS["conv2_2"])
    weights = {"conv1_2": 0.1, "conv2_2": 1.0}
    loss = PerceptualLoss(layer_weights=weights, weights=path)
    pred, target = torch.rand(2, 3, 16, 16, requires_grad=True), torch.rand(2, 3, 16, 16)
    value = loss(pred, target)
    expected = sum(
        w * perceptual_loss(pred, target, vgg19_features(layer, weights=path)) for layer, w in weights.items()
    )
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    value.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    # Today's single-layer loss is unchanged, and a one-layer weight scales it.
    single = PerceptualLoss(layer="conv2_2", weights=path)(pred, target)
    assert single.item() == pytest.approx(perceptual_loss(pred, target, vgg19_features("conv2_2", weights=path)).item())
    scaled = PerceptualLoss(vgg19_features("conv2_2", weights=path), layer_weights={"conv2_2": 0.5})(pred, target)
    assert scaled.item() == pytest.approx(0.5 * single.item(), rel=1e-6)


def test_layer_weights_must_match_what_the_network_gives(tmp_path) -> None:
    from i2i.losses import FeatureTaps, PerceptualLoss

    conv = torch.nn.Conv2d(3, 2, 3)
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="gives one tensor but the loss weighs 2 layers"):
        PerceptualLoss(conv, layer_weights={"conv1_2": 0.1, "conv2_2": 1.0})(x, x)
    taps = FeatureTaps(torch.nn.Sequential(conv), {"conv1_2": 0})
    with pytest.raises(ValueError, match="weighs conv5_4 too"):
        PerceptualLoss(taps, layer_weights={"conv1_2": 0.1, "conv5_4": 1.0})(x, x)
    with pytest.raises(ValueError, match="Unknown VGG19 layer 'conv9_9'"):
        PerceptualLoss(layer_weights={"conv9_9": 1.0}, weights=tmp_path / "none.pth")
