"""i2i: image-to-image translation with pix2pix, CycleGAN and SRGAN."""
from i2i.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
__version__ = "0.1.0"
