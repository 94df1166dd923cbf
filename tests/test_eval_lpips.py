"""LPIPS: the same distance as the reference implementation (the `lpips` package) on real photos,
with the same random backbone and the package's shipped v0.1 linear layers; weight files and their
errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from i2i.errors import ModelError
from i2i.lpips import BACKBONES, load_lpips, lpips_distance, lpips_weight_paths

skdata = pytest.importorskip("skimage.data")


def random_features(net: str, seed: int = 0) -> torch.nn.Sequential:
    """The backbone's `features` with random weights (He-normal, so activations stay in range)."""
    builder = torchvision.models.alexnet if net == "alex" else torchvision.models.vgg16
    with torch.device("meta"):  # skip initialising the large classifier that LPIPS never uses
        features = builder(weights=None).features
    features = features.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    for layer in features:
        if isinstance(layer, torch.nn.Conv2d):
            fan_in = layer.weight[0].numel()
            layer.weight.data = torch.randn(layer.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5
            layer.bias.data = torch.randn(layer.bias.shape, generator=generator) * 0.01
    return features


def random_backbone(net: str, path: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision-layout backbone file ('features.*' keys) with random weights."""
    state = {f"features.{k}": v for k, v in random_features(net, seed).state_dict().items()}
    torch.save(state, path)
    return state


def untrained_torchvision(monkeypatch) -> None:
    """Let the reference build its trunks without initialising them: the test loads weights next."""
    for name in ("alexnet", "vgg16"):
        real = getattr(torchvision.models, name)

        def empty(*args, _real=real, **kwargs):
            with torch.device("meta"):
                model = _real(weights=None)
            return model.to_empty(device="cpu")

        monkeypatch.setattr(torchvision.models, name, empty)


def random_linear(net: str, path: Path) -> None:
    channels = BACKBONES[net][3]
    torch.save({f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(channels)}, path)


def photo_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """64x64 crops: a photo and its noisy copy, two different photos, a photo and itself."""
    astronaut, chelsea, coffee = skdata.astronaut(), skdata.chelsea(), skdata.coffee()
    noisy = np.clip(astronaut[:64, 200:264] + np.random.default_rng(0).normal(0, 20, (64, 64, 3)), 0, 255)
    return [
        (astronaut[:64, 200:264], noisy.round().astype(np.uint8)),
        (chelsea[100:164, 150:214], coffee[100:164, 150:214]),
        (chelsea[:64, :64], chelsea[:64, :64]),
    ]


@pytest.mark.parametrize("net", ["alex", "vgg"])
@pytest.mark.filterwarnings("ignore::UserWarning")  # the reference passes torchvision's old 'pretrained'
def test_lpips_equals_the_reference_implementation(net: str, tmp_path: Path, monkeypatch) -> None:
    lpips_ref = pytest.importorskip("lpips")
    untrained_torchvision(monkeypatch)
    state = random_backbone(net, tmp_path / "backbone.pth")
    reference = lpips_ref.LPIPS(net=net, pnet_rand=True, verbose=False)  # the package's v0.1 linear layers
    reference.net.load_state_dict({k: state[f"features.{k.split('.', 1)[1]}"] for k in reference.net.state_dict()})
    shipped = lpips_weight_paths(net)[1][-1]  # the package's copy: found without being named
    model = load_lpips(net, backbone_weights=tmp_path / "backbone.pth")
    distances = []
    for a, b in photo_pairs():
        ours = lpips_distance(model, a, b)
        with torch.no_grad():
            theirs = float(reference(lpips_ref.im2tensor(a), lpips_ref.im2tensor(b)).flatten()[0])
        assert ours == pytest.approx(theirs, abs=1e-5)
        distances.append(ours)
    assert shipped.is_file() and distances[0] > 0.01 and distances[1] > 0.01 and distances[2] == 0.0


def test_lpips_linear_weights_from_a_given_file(tmp_path: Path) -> None:
    random_backbone("alex", tmp_path / "alex.pth")
    random_linear("alex", tmp_path / "lin.pth")
    a, b = photo_pairs()[0]
    heavy = load_lpips(backbone_weights=tmp_path / "alex.pth", linear_weights=tmp_path / "lin.pth")
    torch.save({k: v * 2 for k, v in torch.load(tmp_path / "lin.pth").items()}, tmp_path / "lin2.pth")
    doubled = load_lpips(backbone_weights=tmp_path / "alex.pth", linear_weights=tmp_path / "lin2.pth")
    assert lpips_distance(doubled, a, b) == pytest.approx(2 * lpips_distance(heavy, a, b), rel=1e-5)


def test_missing_or_wrong_lpips_weights_say_what_and_where(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ModelError, match=r"alexnet-owt-7be5be79\.pth.*download\.pytorch\.org/models/alexnet"):
        load_lpips()
    with pytest.raises(ModelError, match=r"nowhere\.pth.*does not exist.*--lpips-backbone-weights"):
        load_lpips(backbone_weights=tmp_path / "nowhere.pth")
    random_backbone("alex", tmp_path / "alex.pth")
    with pytest.raises(ModelError, match=r"not torchvision's vgg16-397923af\.pth"):
        load_lpips("vgg", backbone_weights=tmp_path / "alex.pth", linear_weights=tmp_path / "alex.pth")
    with pytest.raises(ModelError, match=r"does not hold LPIPS v0\.1 alex linear layers.*PerceptualSimilarity"):
        load_lpips(backbone_weights=tmp_path / "alex.pth", linear_weights=tmp_path / "alex.pth")
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(ModelError, match=r"Cannot read the LPIPS alex backbone from .*junk\.pth"):
        load_lpips(backbone_weights=tmp_path / "junk.pth", linear_weights=tmp_path / "junk.pth")
