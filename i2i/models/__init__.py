"""Model architectures. Importing this package registers every built-in model, so the look-ups it
offers (``create_model``, ``list_models``, ``model_signature``) always see them."""
from i2i.models import (  # noqa: F401  (imported to register their models)
    patchgan,
    resnet,
    rrdbnet,
    srresnet,
    srvgg,
    unet,
    unet_discriminator,
    vgg_discriminator,
)
from i2i.registry import create_model, list_models, model_role, model_signature, register_model

__all__ = ["create_model", "list_models", "model_role", "model_signature", "register_model"]
