"""Tasks alone, through a fake of their training context: no trainer, no run folder, no data."""
from __future__ import annotations

import contextlib
import math

import pytest
import torch

from i2i.config import parse_config
from i2i.errors import TrainingError
from i2i.tasks import TASKS, TrainingContext


class FakeContext:
    """The smallest :class:`TrainingContext`: plain backward and step, recording what it is asked."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.logged: dict[str, float] = {}
        self.printed: list[str] = []
        self.optimizer_names: dict[int, str] = {}

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        assert loss.dim() == 0 and torch.isfinite(loss)
        self.steps.append(self.optimizer_names[id(optimizer)])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def make_adam(self, params, *, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
        return torch.optim.Adam(list(params), lr=lr, betas=betas)

    def autocast(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def log(self, values) -> None:
        self.logged.update({k: float(v) for k, v in values.items()})

    def print(self, message: str) -> None:
        self.printed.append(message)


def _attached(raw_task: dict):
    task = TASKS[raw_task["name"]](parse_config({"task": raw_task}))
    context = FakeContext()
    task.attach(context)
    context.optimizer_names = {id(o): name for name, o in task.optimizers.items()}
    return task, context


def _snapshot(task) -> dict[str, dict[str, torch.Tensor]]:
    return {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in task.networks.items()}


def _changed(before: dict, task) -> set[str]:
    return {
        name
        for name, module in task.networks.items()
        if any(not torch.equal(before[name][k], v) for k, v in module.state_dict().items() if v.is_floating_point())
    }


def _batch(channels: int = 3, size: int = 32) -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "a": torch.rand(2, channels, size, size, generator=g) * 2 - 1,
        "b": torch.rand(2, channels, size, size, generator=g) * 2 - 1,
    }


def test_the_fake_is_a_training_context() -> None:
    context: TrainingContext = FakeContext()  # the Protocol is structural: no base class needed
    assert context.device.type == "cpu"


def test_pix2pix_step_updates_d_then_g_through_the_context() -> None:
    torch.manual_seed(0)
    task, context = _attached(
        {
            "name": "pix2pix",
            "generator": {"name": "unet", "num_downs": 5, "base_channels": 4},
            "discriminator": {"name": "patchgan", "base_channels": 4, "n_layers": 2},
        }
    )
    assert set(task.optimizers) == {"G", "D"} and task.train_networks.keys() == task.networks.keys()
    before = _snapshot(task)
    losses = task.train_step(_batch())
    assert context.steps == ["D", "G"]  # the paper's order: discriminator first
    assert set(losses) == {"D", "G_gan", "G_l1"}
    assert all(math.isfinite(float(v)) and not v.requires_grad for v in losses.values())
    assert _changed(before, task) == {"G", "D"}


def test_cyclegan_step_updates_generators_then_discriminators() -> None:
    torch.manual_seed(0)
    task, context = _attached(
        {
            "name": "cyclegan",
            "generator": {"name": "resnet", "num_blocks": 1, "base_channels": 4},
            "discriminator": {"name": "patchgan", "base_channels": 4, "n_layers": 2},
            "pool_size": 2,
        }
    )
    before = _snapshot(task)
    losses = task.train_step(_batch())
    assert context.steps == ["G", "D"]  # the paper's order: generators first
    assert {"G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B"} == set(losses)
    assert all(math.isfinite(float(v)) for v in losses.values())
    assert _changed(before, task) == {"G_A", "G_B", "D_A", "D_B"}
    assert len(task.pools["A"].images) == 2  # the discriminators saw generated images via the pools


def test_cycle_weight_scales_the_cycle_and_identity_terms() -> None:
    def losses(lambda_cycle: float) -> dict[str, float]:
        torch.manual_seed(0)
        task, _ = _attached(
            {
                "name": "cyclegan",
                "generator": {"name": "resnet", "num_blocks": 1, "base_channels": 4},
                "discriminator": {"name": "patchgan", "base_channels": 4, "n_layers": 2},
                "lambda_cycle": lambda_cycle,
            }
        )
        return {k: float(v) for k, v in task.train_step(_batch()).items()}

    one, three = losses(1.0), losses(3.0)
    for key in ("cycle_A", "cycle_B", "idt_A", "idt_B"):
        assert three[key] == pytest.approx(3 * one[key], rel=1e-5), key
    assert three["G_A"] == pytest.approx(one["G_A"], rel=1e-5)  # the GAN terms do not move


def test_a_task_talks_only_through_its_context() -> None:
    task = TASKS["pix2pix"](parse_config({"task": {"name": "pix2pix", "generator": {"name": "unet", "num_downs": 5, "base_channels": 4}}}))
    with pytest.raises(TrainingError, match="not attached"):
        task.make_adam(task.networks["G"].parameters(), lr=1e-3, betas=(0.5, 0.999))
    context = FakeContext()
    task.attach(context)
    task.print("hello")
    task.log({"extra": torch.tensor(2.0)})
    assert context.printed == ["hello"] and context.logged == {"extra": 2.0}
    assert task.device == torch.device("cpu")
