"""Inference: run generators over images, folders, videos and frame folders.

- :mod:`~i2i.inference.translator`: one image of any size, channels and depth; tiles, batches,
  precision, out-of-memory retries (:class:`~i2i.inference.translator.Translator`).
- :mod:`~i2i.inference.tiling`: tile positions and feathered blending.
- :mod:`~i2i.inference.pipeline`: reader/writer threads joined by bounded queues.
- :mod:`~i2i.inference.folder`: image files and folder trees (resumable, atomic writes).
- :mod:`~i2i.inference.video`: videos and frame folders; :mod:`~i2i.inference.ffmpeg`: the encoder.
- :mod:`~i2i.inference.export`: ONNX and TorchScript export.
"""
