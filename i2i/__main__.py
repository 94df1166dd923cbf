"""``python -m i2i``: the same command line as ``i2i``."""
from i2i.cli import main

main(prog_name="i2i")
