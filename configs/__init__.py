"""Built-in training recipes (YAML), shipped as the package ``i2i.configs``."""
