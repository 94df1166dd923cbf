"""Which models the web UI offers, and the one check that lets a requested model through.

A page may ask only for what this module lists: a bundled generator by name (``x4``), a generator
of the pretrained catalogue by name (downloaded once on first use, as on the command line), or a
model file under one of the folders the server was given with ``--root``. Anything else -- a path
outside the roots (also through ``..`` or a symbolic link), a URL, a training-state file -- is
refused before a byte of it is read. Nothing here imports torch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from i2i.errors import ModelError, UsageError

__all__ = [
    "MODEL_SUFFIXES",
    "ModelChoice",
    "OutsideRootsError",
    "check_roots",
    "inside_roots",
    "list_models",
    "resolve_model",
]

#: Files under a root that are offered as models (i2i generators and other projects' checkpoints).
MODEL_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")
#: Folders whose files are not generators (a training run's resumable state lives in checkpoints/).
_SKIPPED_FOLDERS = {"checkpoints", "__pycache__", "node_modules"}
#: A root with more model files than this is listed only up to here, so a huge tree cannot stall the page.
MAX_LISTED_FILES = 500


class OutsideRootsError(UsageError):
    """A path that lies outside every folder the server was given (``--root``)."""


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the page's model list.

    Attributes:
        spec: what is handed to :func:`i2i.load` (a bundled or catalogue name, or an absolute path).
        label: what the page shows.
        group: ``"bundled"``, ``"files"`` or ``"pretrained"``.
        scale: output size / input size when known without loading the model (else 0).
        note: a short remark (``"download 64 MB on first use"``, the root a file lies in).
    """

    spec: str
    label: str
    group: str
    scale: int = 0
    note: str = ""

    def as_json(self) -> dict:
        return {"spec": self.spec, "label": self.label, "group": self.group, "scale": self.scale, "note": self.note}


def check_roots(roots: Iterable[str | os.PathLike]) -> list[Path]:
    """The ``--root`` folders, resolved; a missing one or a file raises :class:`UsageError`."""
    resolved = []
    for root in roots:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise UsageError(f"--root {str(root)!r} is not a folder; give an existing folder that holds model files")
        resolved.append(path.resolve())
    return resolved


def inside_roots(path: str | os.PathLike, roots: Sequence[Path]) -> Path:
    """``path`` resolved (``..`` and symbolic links followed), when it lies inside one of ``roots``.

    Raises:
        OutsideRootsError: it lies outside every root (or no root was given).
    """
    resolved = Path(path).expanduser().resolve()
    if any(resolved == root or resolved.is_relative_to(root) for root in roots):
        return resolved
    if not roots:
        raise OutsideRootsError(
            f"{str(path)!r} is refused: the server was started without --root, so it reads no files of "
            "yours; restart it with `i2i serve --root FOLDER` to offer the models in FOLDER"
        )
    folders = ", ".join(str(root) for root in roots)
    raise OutsideRootsError(
        f"{str(path)!r} is refused: it lies outside the folders this server may read ({folders}); "
        "move the file into one of them or restart with another --root"
    )


def _model_files(root: Path) -> list[Path]:
    found: list[Path] = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and d not in _SKIPPED_FOLDERS)
        for name in sorted(files):
            if Path(name).suffix.lower() in MODEL_SUFFIXES and not name.startswith("."):
                found.append(Path(folder) / name)
                if len(found) >= MAX_LISTED_FILES:
                    return found
    return found


def _bundled() -> list[ModelChoice]:
    from i2i.checkpoint import BUNDLED_MODELS

    notes = {"x4": "a small, fast x4 upscaler for photos; ships with i2i"}
    return [ModelChoice(name, f"{name} (bundled)", "bundled", 4 if name == "x4" else 0, notes.get(name, ""))
            for name in BUNDLED_MODELS]


def _pretrained() -> list[ModelChoice]:
    from i2i.catalogue import cached_path, list_pretrained

    choices = []
    for entry in list_pretrained():
        if entry.kind != "generator":
            continue
        size = f"{entry.size_mb:g} MB" if entry.size_mb else "a file"
        note = "downloaded" if cached_path(entry).is_file() else f"downloads {size} on first use"
        label = f"{entry.name} ({entry.task}, {entry.description})" if entry.description else entry.name
        choices.append(ModelChoice(entry.name, label, "pretrained", entry.scale, note))
    return choices


def list_models(roots: Sequence[Path]) -> list[ModelChoice]:
    """Bundled generators, then the model files under ``roots``, then the pretrained catalogue."""
    files = []
    for root in roots:
        for path in _model_files(root):
            files.append(ModelChoice(str(path), str(path.relative_to(root)), "files", 0, str(root)))
    return [*_bundled(), *files, *_pretrained()]


def resolve_model(spec: str, roots: Sequence[Path]) -> str:
    """The spec to load for a model the page asked for, after checking it is one it may use.

    Raises:
        ModelError: an empty spec, a URL, a training-state file or a file that does not exist.
        OutsideRootsError: a path outside the roots.
    """
    from i2i.catalogue import find_pretrained
    from i2i.checkpoint import BUNDLED_MODELS

    text = (spec or "").strip()
    if not text:
        raise ModelError("no model chosen; pick one from the list (x4 is bundled and needs no download)")
    if text in BUNDLED_MODELS:
        return text
    entry = find_pretrained(text)
    if entry is not None and entry.kind == "generator":
        return text
    if "://" in text:
        raise ModelError(f"{text!r} is a URL; the web UI loads only bundled, catalogue or --root models "
                         f"(download it with `i2i upscale --model {text} ...` once, or save it under a --root)")
    looks_like_path = os.sep in text or "/" in text or Path(text).suffix.lower() in MODEL_SUFFIXES
    if not looks_like_path:
        raise ModelError(f"no model is called {text!r}; pick one from the list (bundled: "
                         f"{', '.join(BUNDLED_MODELS)}; pretrained names: `i2i models --pretrained`)")
    path = inside_roots(text, roots)
    if not path.is_file():
        raise ModelError(f"model file {text!r} does not exist (any more); reload the page to refresh the list")
    if Path(path).suffix.lower() not in MODEL_SUFFIXES:
        raise ModelError(f"{text!r} is not a model file ({', '.join(MODEL_SUFFIXES)})")
    return str(path)
