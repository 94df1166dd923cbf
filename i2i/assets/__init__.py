"""Files shipped inside the package: the bundled generators (see ``i2i.checkpoint.BUNDLED_MODELS``)."""
