"""Inference: run generators over images, folders, videos and frame folders.

Layers, each depending only on those below it:

- :mod:`~i2i.inference.translator`: :class:`~i2i.inference.translator.Translator`, the public
  face: one image of any size, channels and depth, composed of
  - :mod:`~i2i.inference.adapter`: channels, alpha, bit depth, to and from device levels;
  - :mod:`~i2i.inference.runner`: device, precision and its fp32 fallback, batches, out-of-memory retries;
  - :mod:`~i2i.inference.planner`: memory budgets, whole image or tiles, tile sizes;
  - :mod:`~i2i.inference.tiling`: tile positions and feathered blending.
- :mod:`~i2i.inference.pipeline`: reader/writer threads joined by bounded queues, and parts run
  side by side on several devices.
- :mod:`~i2i.inference.folder`: image files and folder trees (resumable, atomic writes).
- :mod:`~i2i.inference.video`: videos and frame folders (:class:`~i2i.inference.video.VideoOptions`);
  :mod:`~i2i.inference.video_io`: reading videos and frames, writing videos;
  :mod:`~i2i.inference.ffmpeg`: the ffmpeg binary.
- :mod:`~i2i.inference.export`: ONNX and TorchScript export.

Nothing here imports training code (:mod:`i2i.trainer`, :mod:`i2i.tasks`, :mod:`i2i.data.datasets`).
"""
