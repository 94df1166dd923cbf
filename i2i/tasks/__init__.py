"""Training recipes. ``TASKS`` maps each task name to its class, filled by explicit imports.

Importing this package also registers each task's config class with :mod:`i2i.config`, which is
how ``task.name`` finds its section's class: the trainer and ``i2i train`` import it first.
"""
from i2i.tasks.base import Task
from i2i.tasks.context import TrainingContext
from i2i.tasks.pix2pix import Pix2Pix, Pix2PixConfig
from i2i.tasks.cyclegan import CycleGAN, CycleGANConfig
from i2i.tasks.srgan import SRGAN, SRGANConfig
from i2i.tasks.realesrgan import RealESRGAN, RealESRGANConfig

TASKS: dict[str, type[Task]] = {"pix2pix": Pix2Pix, "cyclegan": CycleGAN, "srgan": SRGAN, "realesrgan": RealESRGAN}

__all__ = [
    "TASKS",
    "Task",
    "TrainingContext",
    "Pix2Pix",
    "Pix2PixConfig",
    "CycleGAN",
    "CycleGANConfig",
    "SRGAN",
    "SRGANConfig",
    "RealESRGAN",
    "RealESRGANConfig",
]
