"""Built-in training recipes: the YAML files of ``configs/``, shipped inside the package."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["list_recipes", "resolve_config_path"]


def list_recipes() -> list[str]:
    folder = resources.files("i2i.configs")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A config file path, or the built-in recipe of that name (``pix2pix_demo``)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return path
    recipe = resources.files("i2i.configs") / f"{name_or_path}.yaml"
    if recipe.is_file():
        return Path(str(recipe))
    from i2i.config import ConfigError

    raise ConfigError(
        f"{str(name_or_path)!r} is neither a config file nor a built-in recipe. "
        f"Built-in recipes: {', '.join(list_recipes())}."
    )
