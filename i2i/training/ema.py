"""Exponential moving averages of a task's networks (the copies that validation and export prefer)."""
from __future__ import annotations

import copy
from typing import Any, Iterable, Mapping

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """EMA copies of the named networks: ``ema = decay * ema + (1 - decay) * live`` after every
    step; buffers (BatchNorm statistics) are copied as they are.

    ``state`` is a checkpoint's ``"ema"`` entry to start from; ``decay == 0`` keeps no copies.
    """

    def __init__(
        self,
        networks: Mapping[str, nn.Module],
        names: Iterable[str],
        decay: float,
        state: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.decay = decay
        self.models: dict[str, nn.Module] = {}
        if decay <= 0:
            return
        for name in names:
            ema = copy.deepcopy(networks[name]).eval()
            ema.requires_grad_(False)
            if state is not None and name in state:
                ema.load_state_dict(state[name])
            self.models[name] = ema

    @torch.no_grad()
    def update(self, networks: Mapping[str, nn.Module]) -> None:
        for name, ema in self.models.items():
            live = networks[name]
            ema_params: list[torch.Tensor] = list(ema.parameters())
            live_params = [p.detach() for p in live.parameters()]
            torch._foreach_lerp_(ema_params, live_params, 1.0 - self.decay)
            for b_ema, b_live in zip(ema.buffers(), live.buffers()):
                b_ema.copy_(b_live)

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {n: {k: v.cpu() for k, v in m.state_dict().items()} for n, m in self.models.items()}

    def __contains__(self, name: str) -> bool:
        return name in self.models

    def __getitem__(self, name: str) -> nn.Module:
        return self.models[name]

    def evaluation_networks(self, networks: Mapping[str, nn.Module]) -> dict[str, nn.Module]:
        """``networks`` with each one that has an EMA copy replaced by the copy."""
        return {name: self.models.get(name, module) for name, module in networks.items()}
