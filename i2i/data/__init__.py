"""Data: image files in and out, public data sets, paired-folder tools and offline demo data.

Submodules (imported explicitly; this package imports nothing heavy on purpose):

- :mod:`i2i.data.io`: read/write any image (the only place where OpenCV's BGR order exists),
  numpy <-> tensor conversion, folder listing, alpha helpers.
- :mod:`i2i.data.download`: the public pix2pix / CycleGAN data sets, downloaded with checksums
  and extracted safely.
- :mod:`i2i.data.combine`: build the aligned pix2pix ``A|B`` format from two matched folders.
- :mod:`i2i.data.demo`: small real paired data sets built offline from photos that
  scikit-image ships.
"""
