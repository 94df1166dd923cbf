"""The package as people install it: its name on the index, licence, version, typing marker and a
lean core install."""
from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

import i2i

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_distribution_name_licence_and_one_version():
    project = PYPROJECT["project"]
    # `i2i` on the package index is an unrelated project; the import name and command stay i2i.
    assert project["name"] == "i2i-toolkit" and project["scripts"] == {"i2i": "i2i.cli:main"}
    assert project["license"] == "Apache-2.0" and "Apache License" in (ROOT / "LICENSE").read_text()
    assert set(project["license-files"]) == {"LICENSE", "NOTICE"} and (ROOT / "NOTICE").is_file()
    assert project["dynamic"] == ["version"] and "version" not in project
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "i2i.__version__"}
    assert importlib.metadata.version("i2i-toolkit") == i2i.__version__
    assert f"## [{i2i.__version__}]" in (ROOT / "CHANGELOG.md").read_text()
    version = subprocess.run([sys.executable, "-m", "i2i", "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"i2i, version {i2i.__version__}"


def test_typed_package_and_complete_metadata():
    assert (ROOT / "i2i" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["i2i"]
    project = PYPROJECT["project"]
    assert project["authors"] and project["keywords"] and "Typing :: Typed" in project["classifiers"]
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]  # the SPDX expression says it
    # Every package under i2i/ is listed, so an installed copy is whole.
    packages = {".".join(p.relative_to(ROOT).parent.parts) for p in (ROOT / "i2i").rglob("__init__.py")}
    assert packages <= set(PYPROJECT["tool"]["setuptools"]["packages"])


def test_core_install_is_lean_and_extras_name_themselves():
    names = {re.split(r"[<>=!~\[ ;]", requirement)[0].lower() for requirement in PYPROJECT["project"]["dependencies"]}
    assert {"torch", "torchvision", "kornia", "opencv-python-headless", "click", "scikit-image"} <= names
    assert not names & {"scikit-learn", "tensorboard", "wandb", "onnxruntime", "starlette", "uvicorn"}
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"tensorboard", "onnx", "serve", "wandb", "hub", "all", "test"} <= set(extras)
    # Install hints in messages name the distribution, not `i2i` (someone else's package).
    hints = [m for p in (ROOT / "i2i").rglob("*.py") for m in re.findall(r"pip install '([\w-]+)\[", p.read_text())]
    assert hints and set(hints) == {"i2i-toolkit"}


def test_demo_photos_need_no_scikit_learn(monkeypatch):
    from i2i.data.demo import load_demo_photos

    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if not installed
    photos = load_demo_photos()
    assert len(photos) >= 5 and all(info.package == "scikit-image" for _, info, _ in photos)
