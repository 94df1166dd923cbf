"""LPIPS, the learned perceptual distance of Zhang et al. (CVPR 2018), version 0.1.

The distance between two RGB images in [-1, 1]: both go through an ImageNet backbone (AlexNet,
the default and the one SR papers report, or VGG16), shifted and scaled per channel first; at
five ReLU outputs the features are normalised to unit length along the channels, their squared
difference is weighted per channel by a learned 1x1 convolution without bias (the "linear
layers"), averaged over the positions and summed over the five layers. 0 means identical; lower
is closer.

Nothing is downloaded here: the backbone comes from torchvision's cache (the file
``torchvision.models.alexnet(weights="DEFAULT")`` leaves there) or a given file, the linear layers
from a given file, ``<torch hub dir>/checkpoints/lpips_v0.1_<net>.pth`` or the copy the ``lpips``
pip package ships. A missing file raises a :class:`~i2i.errors.ModelError` naming the file, where
it goes and where to download it.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from i2i.errors import ModelError
from i2i.fetch import torch_hub_checkpoints

__all__ = ["BACKBONES", "LPIPS", "lpips_weight_paths", "load_lpips", "lpips_distance"]

# backbone -> (torchvision's weights file, where torchvision downloads it, the indices of
# `features` after which the five compared ReLU outputs come, their channel counts)
BACKBONES = {
    "alex": ("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
             (2, 5, 8, 10, 12), (64, 192, 384, 256, 256)),
    "vgg": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
            (4, 9, 16, 23, 30), (64, 128, 256, 512, 512)),
}
LINEAR_WEIGHTS_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/{net}.pth"

# The v0.1 input scaling: (x - shift) / scale brings [-1, 1] RGB to ImageNet's statistics.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class LPIPS(nn.Module):
    """LPIPS v0.1 distance between ``(B, 3, H, W)`` RGB batches in [-1, 1]; returns ``(B,)``.

    ``features`` is the backbone's ``features`` stack (torchvision AlexNet or VGG16 layout),
    ``cuts`` the indices that end its five slices, ``linear`` the five ``(C_k,)`` channel weights.
    """

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, features: nn.Sequential, cuts: tuple[int, ...], linear: list[torch.Tensor]) -> None:
        super().__init__()
        starts = (0, *cuts[:-1])
        self.slices = nn.ModuleList(nn.Sequential(*features[a:b]) for a, b in zip(starts, cuts))
        self.linear = nn.ParameterList(nn.Parameter(w.reshape(1, -1, 1, 1).float(), requires_grad=False) for w in linear)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        x = (x - self.shift) / self.scale
        for block in self.slices:
            x = block(x)
            # Unit length along the channels; the epsilon as the reference, for all-zero positions.
            out.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = a.new_zeros(a.shape[0])
        for fa, fb, weight in zip(self._features(a), self._features(b), self.linear):
            total = total + ((fa - fb) ** 2 * weight).sum(dim=1).mean(dim=(1, 2))
        return total


def lpips_weight_paths(net: str = "alex") -> tuple[Path, list[Path]]:
    """Where the weights are looked for, in order: torchvision's cached backbone file, and the
    places for the linear layers (the torch hub cache, then the ``lpips`` package's copy)."""
    linear = [torch_hub_checkpoints() / f"lpips_v0.1_{net}.pth"]
    spec = importlib.util.find_spec("lpips")
    if spec is not None and spec.origin:  # its shipped file, read as data; the package is not imported
        linear.append(Path(spec.origin).parent / "weights" / "v0.1" / f"{net}.pth")
    return torch_hub_checkpoints() / BACKBONES[net][0], linear


def _read_state(path: Path, what: str) -> dict[str, torch.Tensor]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file: say which and what it should be
        raise ModelError(f"Cannot read {what} from {str(path)!r} ({type(exc).__name__}: {exc}).") from None


def _backbone(net: str, path: Path) -> nn.Sequential:
    import torchvision

    builder = torchvision.models.alexnet if net == "alex" else torchvision.models.vgg16
    with torch.device("meta"):  # no time spent initialising weights that are loaded next
        features = builder(weights=None).features
    features = features.to_empty(device="cpu")
    state = _read_state(path, f"the LPIPS {net} backbone")
    wanted = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    try:
        features.load_state_dict(wanted)
    except RuntimeError:
        raise ModelError(
            f"{str(path)!r} is not torchvision's {BACKBONES[net][0]} (its 'features.*' tensors do not fit); "
            f"download it from {BACKBONES[net][1]}."
        ) from None
    return features


def _linear(net: str, path: Path) -> list[torch.Tensor]:
    state = _read_state(path, f"the LPIPS {net} linear layers")
    weights = []
    for k, channels in enumerate(BACKBONES[net][3]):
        # The reference stores lin{k}.model.1.weight (after a dropout); accept any lin{k}.*weight.
        found = [v for key, v in state.items() if key.startswith(f"lin{k}.") and key.endswith("weight")]
        if len(found) != 1 or found[0].numel() != channels:
            raise ModelError(
                f"{str(path)!r} does not hold LPIPS v0.1 {net} linear layers (lin{k}: {channels} weights); "
                f"download them from {LINEAR_WEIGHTS_URL.format(net=net)}."
            )
        weights.append(found[0].flatten())
    return weights


def _pick(given: str | os.PathLike | None, candidates: list[Path], what: str, fix: str) -> Path:
    if given:
        if not Path(given).is_file():
            raise ModelError(f"{what} file {str(given)!r} does not exist. {fix}")
        return Path(given)
    for path in candidates:
        if path.is_file():
            return path
    raise ModelError(f"{what} not found at {str(candidates[0])!r}. {fix}")


def load_lpips(net: str = "alex", *, backbone_weights: str | os.PathLike | None = None,
               linear_weights: str | os.PathLike | None = None) -> LPIPS:
    """LPIPS v0.1 with the ``alex`` (default) or ``vgg`` backbone, from weight files (no download)."""
    if net not in BACKBONES:
        raise ModelError(f"Unknown LPIPS backbone {net!r}; expected one of {', '.join(BACKBONES)}.")
    backbone_file, backbone_url, cuts, _ = BACKBONES[net]
    cached_backbone, linear_candidates = lpips_weight_paths(net)
    backbone = _pick(
        backbone_weights, [cached_backbone], f"The LPIPS backbone ({backbone_file})",
        f"Download {backbone_url} into {str(cached_backbone.parent)!r} or give --lpips-backbone-weights PATH.",
    )
    linear = _pick(
        linear_weights, linear_candidates, f"The LPIPS v0.1 {net} linear layers",
        f"Download {LINEAR_WEIGHTS_URL.format(net=net)} to {str(linear_candidates[0])!r}, give --lpips-weights "
        "PATH, or pip install lpips (it ships them).",
    )
    return LPIPS(_backbone(net, backbone), cuts, _linear(net, linear))


def _to_unit_range(image: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB -> ``(1, 3, H, W)`` float32 in [-1, 1], as the reference's im2tensor."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    return (tensor / 127.5 - 1.0).to(device)


@torch.no_grad()
def lpips_distance(model: LPIPS, a: np.ndarray, b: np.ndarray, device: torch.device | str = "cpu") -> float:
    """LPIPS between two same-size ``(H, W, 3)`` uint8 RGB images."""
    return float(model(_to_unit_range(a, device), _to_unit_range(b, device))[0])
