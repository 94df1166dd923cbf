"""FID: the same Inception features and Fréchet distance as the reference implementation
(pytorch-fid) on real photos, with the same random weights in both; weight-file errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from i2i.errors import ModelError
from i2i.fid import FID_WEIGHTS_URL, build_fid_inception, fid_features, frechet_distance, load_fid_inception

skdata = pytest.importorskip("skimage.data")


def random_fid_weights(path: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """A weights file in the FID Inception's layout with random values that keep activations in
    range: He-normal convolutions, batch-norm statistics near the identity."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in build_fid_inception().state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros_like(value)
        elif value.ndim == 4:
            state[key] = torch.randn(value.shape, generator=generator) * (2.0 / value[0].numel()) ** 0.5
        elif key.endswith(("running_var", "weight")):
            state[key] = 1.0 + 0.1 * torch.rand(value.shape, generator=generator)
        else:  # bias, running_mean, the classifier
            state[key] = 0.05 * torch.randn(value.shape, generator=generator)
    torch.save(state, path)
    return state


def photos() -> list[np.ndarray]:
    """Three 96x128 crops of real photos (few: the Inception at 299x299 is the slow part)."""
    return [skdata.astronaut()[40:136, 60:188], skdata.chelsea()[150:246, 200:328], skdata.coffee()[150:246, 200:328]]


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::scipy.linalg.LinAlgWarning")
def test_features_and_fid_equal_pytorch_fid(tmp_path: Path, monkeypatch) -> None:
    inception = pytest.importorskip("pytorch_fid.inception")
    fid_score = pytest.importorskip("pytorch_fid.fid_score")
    state = random_fid_weights(tmp_path / "fid.pth")
    monkeypatch.setattr(inception, "load_state_dict_from_url", lambda *args, **kwargs: state)
    reference = inception.InceptionV3([3]).eval()  # 2048-d pool3, resize + [-1, 1] inside
    ours = load_fid_inception(tmp_path / "fid.pth")
    images = photos()
    features = fid_features(ours, images)
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        expected = reference(batch)[0].flatten(1).double().numpy()
    assert features.shape == (3, 2048) and features.std() > 1e-3
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    # The same Fréchet distance as pytorch-fid's. On the first 64 dimensions: scipy's sqrtm of a
    # 2048x2048 product takes minutes on two cores, and the formula does not depend on D.
    a, b = features[:2, :64], features[1:, :64]  # two sets of two photos
    reference_fid = fid_score.calculate_frechet_distance(
        a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    value = frechet_distance(a, b)
    assert value == pytest.approx(reference_fid, rel=1e-9) and value > 0


def test_frechet_distance_of_known_gaussians() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    assert abs(frechet_distance(x, x)) < 1e-6
    assert frechet_distance(x, x + 2) == pytest.approx(12.0, rel=1e-6)  # |mu shift|^2 = 3 * 2^2
    scaled = np.sum((2 * x.mean(0)) ** 2) + 4 * np.trace(np.cov(x, rowvar=False))  # |2 mu|^2 + (3 - 1)^2 tr(C)
    assert frechet_distance(torch.from_numpy(x), torch.from_numpy(3 * x)) == pytest.approx(scaled, rel=1e-6)


def test_missing_or_wrong_fid_weights(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ModelError, match=rf"{FID_WEIGHTS_URL}.*--fid-weights"):
        load_fid_inception()
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ModelError, match=r"other\.pth' is not the FID Inception"):
        load_fid_inception(tmp_path / "other.pth")
