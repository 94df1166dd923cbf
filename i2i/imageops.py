"""Conversions between image representations, shared by the data sets, training, inference,
evaluation and video: channels, alpha, bit depth, value ranges and padding to a size multiple.

Images are numpy arrays ``(H, W, C)`` in RGB(A) order, ``uint8`` or ``uint16``, or float tensors
``(C, H, W)`` / ``(B, C, H, W)`` in a model's value range (``(-1, 1)`` for tanh generators,
``(0, 1)`` for SR models). Reading and writing files, the only place with OpenCV's BGR order, is
:mod:`i2i.data.io`.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

__all__ = [
    "MAX_VALUE",
    "check_image_array",
    "convert_channels",
    "to_uint8",
    "convert_alpha_dtype",
    "split_alpha",
    "split_pair",
    "merge_alpha",
    "check_value_range",
    "image_to_tensor",
    "tensor_to_image",
    "to_unit_range",
    "round_up",
    "padded_size",
    "pad_image",
    "pad_to_multiple",
]

#: The level of full white for each supported sample type.
MAX_VALUE = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}


# ----------------------------------------------------------------------------- arrays

def check_image_array(image: np.ndarray, what: str) -> np.ndarray:
    """Validate a user-facing image array and return it as ``(H, W, C)``."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{what}: expected a numpy array (H, W[, C]), got {type(image).__name__}")
    if image.dtype not in MAX_VALUE:
        raise TypeError(
            f"{what}: expected dtype uint8 or uint16, got {image.dtype}; "
            "convert float tensors with i2i.imageops.tensor_to_image first"
        )
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"{what}: expected shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {tuple(image.shape)}; "
            "for gray + alpha use merge_alpha(gray, alpha) to get RGBA"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{what}: the image is empty, shape {tuple(image.shape)}")
    return image


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Scale uint16 to uint8 with rounding (65535 -> 255); uint8 passes through."""
    if image.dtype == np.uint8:
        return image
    # round(v / 257) in integer arithmetic: 257 * 255 == 65535, so the scale is exact.
    return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)



def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Convert an HxWxC image (C in 1, 3, 4) to ``channels`` (1 or 3); alpha is dropped.

    Gray to colour repeats the channel; colour to gray uses BT.601 luma as OpenCV does.
    """
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 4:
        image = image[:, :, :3]
    if image.shape[2] == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=2)
    if channels == 1:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)[:, :, None]
    raise ValueError(f"Cannot convert a {image.shape[2]}-channel image to {channels} channels.")



def split_pair(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two halves of an aligned pix2pix ``A|B`` image: ``(A, B)``, A on the left (views; an odd
    last column belongs to neither)."""
    half = image.shape[1] // 2
    return image[:, :half], image[:, half : 2 * half]


# ----------------------------------------------------------------------------- alpha


def split_alpha(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Separate the alpha channel from an image.

    Args:
        image: ``(H, W, C)`` (or ``(H, W)``), any dtype.

    Returns:
        ``(colour, alpha)``: for RGBA ``((H, W, 3), (H, W, 1))``, for gray + alpha
        ``((H, W, 1), (H, W, 1))``; otherwise ``(image, None)``. Views, not copies.
    """
    if image.ndim == 3 and image.shape[2] in (2, 4):
        return image[:, :, :-1], image[:, :, -1:]
    return image, None


def convert_alpha_dtype(alpha: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Scale an alpha plane between uint8 and uint16 (255 <-> 65535) so opacity is preserved."""
    if alpha.dtype == dtype:
        return alpha
    if alpha.dtype == np.uint8 and dtype == np.uint16:
        return alpha.astype(np.uint16) * 257
    if alpha.dtype == np.uint16 and dtype == np.uint8:
        return to_uint8(alpha)
    raise TypeError(f"merge_alpha: alpha dtype {alpha.dtype} cannot be matched to image dtype {dtype}")


def merge_alpha(image: np.ndarray, alpha: np.ndarray | None, *, resize: bool = False) -> np.ndarray:
    """Put an alpha channel (from :func:`split_alpha`) back onto a colour or gray image.

    Args:
        image: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``; uint8 or uint16.
        alpha: ``(h, w)`` or ``(h, w, 1)``, uint8 or uint16 (rescaled to the image's dtype), or
            None (the image is returned unchanged).
        resize: when the alpha size differs from the image size (e.g. after super-resolution),
            resize it to match (bilinear up, area down) instead of raising.

    Returns:
        ``(H, W, 4)`` RGBA (a gray image is expanded to RGB first) or ``image`` when alpha is None.
    """
    if alpha is None:
        return image
    image = check_image_array(image, "merge_alpha(image)")
    if image.shape[2] == 4:
        raise ValueError("merge_alpha: the image already has an alpha channel; split it first with split_alpha")
    if alpha.ndim == 3 and alpha.shape[2] == 1:
        alpha = alpha[:, :, 0]
    if alpha.ndim != 2:
        raise ValueError(f"merge_alpha: alpha must be (H, W) or (H, W, 1), got {tuple(alpha.shape)}")
    alpha = convert_alpha_dtype(alpha, image.dtype)
    height, width = image.shape[:2]
    if alpha.shape != (height, width):
        if not resize:
            raise ValueError(
                f"merge_alpha: alpha is {alpha.shape[0]}x{alpha.shape[1]} but the image is {height}x{width}; "
                "pass resize=True to scale the alpha to the image"
            )
        shrinking = alpha.shape[0] > height or alpha.shape[1] > width
        alpha = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    colour = image if image.shape[2] == 3 else np.repeat(image, 3, axis=2)
    return np.concatenate([colour, alpha[:, :, None]], axis=2)




# ----------------------------------------------------------------------------- value ranges


def check_value_range(value_range: Sequence[float]) -> tuple[float, float]:
    low, high = (float(v) for v in value_range)
    if not high > low:
        raise ValueError(f"value_range must be (low, high) with low < high, got {tuple(value_range)}")
    return low, high


def image_to_tensor(image: np.ndarray, value_range: Sequence[float] = (-1.0, 1.0)) -> torch.Tensor:
    """Convert an image array to a float tensor.

    Args:
        image: ``(H, W)`` or ``(H, W, C)``, ``uint8`` (divided by 255) or ``uint16`` (by 65535).
        value_range: ``(low, high)`` that black and full white map to; ``(-1, 1)`` for tanh
            generators, ``(0, 1)`` for SR models.

    Returns:
        float32 tensor ``(C, H, W)`` with values in ``value_range``.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image_to_tensor: expected a numpy array, got {type(image).__name__}")
    if image.dtype not in MAX_VALUE:
        raise TypeError(f"image_to_tensor: expected dtype uint8 or uint16, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ValueError(f"image_to_tensor: expected shape (H, W) or (H, W, C), got {tuple(image.shape)}")
    low, high = check_value_range(value_range)
    scaled = image.astype(np.float32) * np.float32((high - low) / MAX_VALUE[image.dtype]) + np.float32(low)
    return torch.from_numpy(np.ascontiguousarray(scaled.transpose(2, 0, 1)))


def tensor_to_image(
    tensor: torch.Tensor,
    value_range: Sequence[float] = (-1.0, 1.0),
    dtype: type | np.dtype = np.uint8,
) -> np.ndarray:
    """Convert a float tensor back to an image array.

    Args:
        tensor: ``(C, H, W)`` or ``(1, C, H, W)`` float tensor (any device, any float dtype).
        value_range: the ``(low, high)`` range the tensor is in.
        dtype: ``np.uint8`` or ``np.uint16``.

    Returns:
        ``(H, W, C)`` array of ``dtype``: values are clamped to the range and rounded to the
        nearest level (not truncated). NaN becomes ``low`` (black) so a bad pixel cannot wrap.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor_to_image: expected a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise TypeError(f"tensor_to_image: expected a float tensor, got {tensor.dtype}")
    if tensor.ndim == 4:
        if tensor.shape[0] != 1:
            raise ValueError(
                f"tensor_to_image: got a batch of {tensor.shape[0]} images {tuple(tensor.shape)}; "
                "convert one at a time (tensor[i])"
            )
        tensor = tensor[0]
    if tensor.ndim != 3:
        raise ValueError(f"tensor_to_image: expected shape (C, H, W) or (1, C, H, W), got {tuple(tensor.shape)}")
    out_dtype = np.dtype(dtype)
    if out_dtype not in MAX_VALUE:
        raise TypeError(f"tensor_to_image: dtype must be uint8 or uint16, got {out_dtype}")
    low, high = check_value_range(value_range)
    max_value = MAX_VALUE[out_dtype]
    values = tensor.detach().to(device="cpu", dtype=torch.float32)
    values = torch.nan_to_num((values - low) / (high - low), nan=0.0)
    values = torch.round(values.clamp_(0.0, 1.0) * max_value)
    return np.ascontiguousarray(values.permute(1, 2, 0).numpy().astype(out_dtype))



def to_unit_range(x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """Map a tensor from ``value_range`` to [0, 1] and clamp."""
    low, high = value_range
    return ((x.float() - low) / (high - low)).clamp(0.0, 1.0)



# ----------------------------------------------------------------------------- padding


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple



def padded_size(side: int, multiple: int, min_side: int) -> int:
    return round_up(max(side, min_side), multiple)



def pad_image(image: np.ndarray, multiple: int, min_side: int = 1) -> np.ndarray:
    """Pad ``(..., H, W, C)`` on the bottom and right to multiples of ``multiple`` by reflection.

    Sides shorter than ``min_side`` are padded up to it (rounded to the multiple): a generator's own
    reflection padding fails on feature maps of 1 pixel. numpy's ``reflect`` mode repeats the
    reflection when the pad is longer than the image, so even a 1-pixel image can be padded.
    """
    h, w = image.shape[-3:-1]
    target_h, target_w = padded_size(h, multiple, min_side), padded_size(w, multiple, min_side)
    if (target_h, target_w) == (h, w):
        return image
    widths = [(0, 0)] * (image.ndim - 3) + [(0, target_h - h), (0, target_w - w), (0, 0)]
    return np.pad(image, widths, mode="reflect")



def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (B, C, H, W) on the bottom and right to a multiple of ``multiple``.

    Reflection where the image is large enough, repeated reflection otherwise, so tiny images work.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    while pad_h or pad_w:
        step_h = min(pad_h, x.shape[-2] - 1)
        step_w = min(pad_w, x.shape[-1] - 1)
        mode = "reflect" if (step_h or not pad_h) and (step_w or not pad_w) else "replicate"
        if mode == "replicate":
            step_h, step_w = pad_h, pad_w
        x = torch.nn.functional.pad(x, (0, step_w, 0, step_h), mode=mode)
        pad_h -= step_h
        pad_w -= step_w
    return x
