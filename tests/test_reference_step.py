"""The reference pix2pix step (scripts/peers/reference_pix2pix.py) that the peer benchmark times is
the same arithmetic as i2i's pix2pix step in its plain mode: same networks, same start, same
batches -> the same weights after a few steps."""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

from i2i.config import parse_config
from i2i.trainer import Trainer

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS / "peers"))
sys.path.insert(0, str(SCRIPTS))
from bench_train import MODES  # noqa: E402  the plain mode the benchmarks use
from reference_pix2pix import ReferenceGANLoss, ReferencePix2PixStep  # noqa: E402

SIZE = 64


def plain_pix2pix_task(gan_mode: str):
    """i2i's pix2pix task built by the trainer in plain mode (fp32, default Adam, no memory cache)
    with tiny networks: a 6-level U-Net whose level 4 has dropout, and a 2-layer PatchGAN."""
    config = parse_config({
        "task": {
            "name": "pix2pix",
            "generator": {"name": "unet", "num_downs": 6, "base_channels": 4, "norm": "batch", "dropout": True},
            "discriminator": {"name": "patchgan", "base_channels": 4, "n_layers": 2, "norm": "batch"},
            "gan_mode": gan_mode,
        },
        "data": {"crop_size": SIZE, "load_size": SIZE, "batch_size": 2},
        "train": {"device": "cpu", **MODES["plain"]},
    })
    task = Trainer(config).setup_task()
    return task


def batches(count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(7)
    return [(torch.rand(2, 3, SIZE, SIZE, generator=g) * 2 - 1, torch.rand(2, 3, SIZE, SIZE, generator=g) * 2 - 1)
            for _ in range(count)]


@pytest.mark.parametrize("gan_mode", ["vanilla", "lsgan"])
def test_reference_step_leaves_the_same_weights_as_i2i_plain_mode(gan_mode):
    task = plain_pix2pix_task(gan_mode)
    assert all(not opt.defaults.get("fused") for opt in task.optimizers.values())
    net_g, net_d = copy.deepcopy(task.networks["G"]), copy.deepcopy(task.networks["D"])
    start = copy.deepcopy(net_g.state_dict())
    reference = ReferencePix2PixStep(net_g, net_d, lr=task.cfg.lr, beta1=task.cfg.beta1,
                                     lambda_l1=task.cfg.lambda_l1, gan_mode=gan_mode)
    for step, (a, b) in enumerate(batches(3)):
        torch.manual_seed(100 + step)  # the same dropout masks on both sides
        ours = task.train_step({"a": a, "b": b})
        torch.manual_seed(100 + step)
        theirs = reference(a, b)
        for name in ("D", "G_gan", "G_l1"):
            assert float(ours[name]) == pytest.approx(theirs[name], rel=1e-5, abs=1e-6)

    for name, network, ref in (("G", task.networks["G"], net_g), ("D", task.networks["D"], net_d)):
        ours, theirs = dict(network.named_parameters()), dict(ref.named_parameters())
        assert ours.keys() == theirs.keys()
        for key in ours:
            torch.testing.assert_close(ours[key], theirs[key], rtol=1e-4, atol=1e-6, msg=f"{name}.{key}")
    moved = max((p - start[k]).abs().max().item() for k, p in net_g.named_parameters())
    assert moved > 1e-4  # the steps did change the weights, so the comparison means something


def test_reference_gan_loss_targets():
    logits = torch.tensor([[0.0, 2.0]])
    vanilla = ReferenceGANLoss("vanilla")
    expected_real = torch.nn.functional.softplus(-logits).mean()
    assert float(vanilla(logits, True)) == pytest.approx(float(expected_real))
    assert float(ReferenceGANLoss("lsgan")(logits, False)) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="wgangp"):
        ReferenceGANLoss("wgangp")
