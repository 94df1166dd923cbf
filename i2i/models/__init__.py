"""Model architectures. Importing this package registers every built-in model."""
from i2i.models import patchgan, resnet, srresnet, unet  # noqa: F401  (imported to register their models)
