"""Model architectures. Importing this package registers every built-in model, so the look-ups it
offers (``create_model``, ``list_models``, ``model_signature``) always see them."""
from i2i.models import patchgan, resnet, srresnet, unet  # noqa: F401  (imported to register their models)
from i2i.registry import create_model, list_models, model_signature, register_model

__all__ = ["create_model", "list_models", "model_signature", "register_model"]
