"""The reference pix2pix training step, as pytorch-CycleGAN-and-pix2pix computes it.

That project cannot be installed from the package index, so its step is written out here from its
public description: ``Pix2PixModel.optimize_parameters`` (one generator forward, then the
discriminator update from ``backward_D``, then the generator update from ``backward_G``) and
``networks.GANLoss`` (a target tensor of 1 or 0 expanded to the prediction's shape, BCE with logits
for ``vanilla``, MSE for ``lsgan``). Its defaults for pix2pix: ``gan_mode`` vanilla,
``lambda_L1`` 100, Adam with lr 2e-4 and betas (0.5, 0.999), no image pool (``pool_size`` 0), so
the fake pair goes to the discriminator as it is.

It runs any pair of networks with the reference layout (i2i's ``unet_256`` and ``patchgan`` are
that layout), in fp32, eager, with torch's default Adam: what a user of the reference code runs.
``tests/test_reference_step.py`` checks that it leaves the same weights as i2i's plain mode.
"""
from __future__ import annotations

import torch
from torch import nn


class ReferenceGANLoss:
    """The reference ``GANLoss`` for ``vanilla`` and ``lsgan``: the loss of ``prediction`` against
    a constant target (1 for real, 0 for fake) of the same shape."""

    def __init__(self, gan_mode: str = "vanilla") -> None:
        if gan_mode not in ("vanilla", "lsgan"):
            raise ValueError(f"gan_mode {gan_mode!r} is not written here; use 'vanilla' or 'lsgan'.")
        self.criterion = nn.BCEWithLogitsLoss() if gan_mode == "vanilla" else nn.MSELoss()

    def __call__(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = torch.tensor(1.0 if target_is_real else 0.0, device=prediction.device)
        return self.criterion(prediction, target.expand_as(prediction))


def set_requires_grad(network: nn.Module, flag: bool) -> None:
    for parameter in network.parameters():
        parameter.requires_grad = flag


class ReferencePix2PixStep:
    """One call = one reference ``optimize_parameters`` on the batch ``(real_a, real_b)``.

    ``net_g`` maps A to B; ``net_d`` judges the 6-channel pair ``cat(A, B)``. Both stay in train
    mode (batch norm on batch statistics, dropout on), as in the reference training loop.
    """

    def __init__(
        self, net_g: nn.Module, net_d: nn.Module, *, lr: float = 2e-4, beta1: float = 0.5,
        lambda_l1: float = 100.0, gan_mode: str = "vanilla",
    ) -> None:
        self.net_g, self.net_d = net_g.train(), net_d.train()
        self.lambda_l1 = lambda_l1
        self.criterion_gan = ReferenceGANLoss(gan_mode)
        self.criterion_l1 = nn.L1Loss()
        self.optimizer_g = torch.optim.Adam(net_g.parameters(), lr=lr, betas=(beta1, 0.999))
        self.optimizer_d = torch.optim.Adam(net_d.parameters(), lr=lr, betas=(beta1, 0.999))

    def __call__(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, float]:
        fake_b = self.net_g(real_a)

        # Discriminator: the fake pair detached from the generator, then the real pair, halved.
        set_requires_grad(self.net_d, True)
        self.optimizer_d.zero_grad()
        pred_fake = self.net_d(torch.cat((real_a, fake_b), 1).detach())
        loss_d_fake = self.criterion_gan(pred_fake, False)
        pred_real = self.net_d(torch.cat((real_a, real_b), 1))
        loss_d_real = self.criterion_gan(pred_real, True)
        loss_d = (loss_d_fake + loss_d_real) * 0.5
        loss_d.backward()
        self.optimizer_d.step()

        # Generator: fool the frozen discriminator and stay close to B in L1.
        set_requires_grad(self.net_d, False)
        self.optimizer_g.zero_grad()
        loss_g_gan = self.criterion_gan(self.net_d(torch.cat((real_a, fake_b), 1)), True)
        loss_g_l1 = self.criterion_l1(fake_b, real_b) * self.lambda_l1
        (loss_g_gan + loss_g_l1).backward()
        self.optimizer_g.step()
        return {"D": loss_d.item(), "G_gan": loss_g_gan.item(), "G_l1": loss_g_l1.item()}
