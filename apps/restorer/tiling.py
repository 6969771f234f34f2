"""Run an image model tile by tile, so device memory is bounded by the tile, not the image.

Each tile is cut with `overlap` pixels of context on every side (clipped at the edges),
run, and only its core is kept: convolutional models see the same neighbourhood they
would see on the whole image, so no seams show. The result is written into one uint8
array on the CPU (the only thing that grows with the image).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def to_tensor(rgb: np.ndarray, device: str, dtype: torch.dtype) -> torch.Tensor:
    """uint8 HxWxC -> float (1, C, H, W) in [0, 1], converted on the device."""
    arr = np.ascontiguousarray(rgb)
    t = torch.from_numpy(arr if arr.flags.writeable else arr.copy()).to(device)
    if t.ndim == 2:
        t = t.unsqueeze(-1)
    return t.permute(2, 0, 1).unsqueeze(0).to(dtype).div_(255.0)


def to_uint8(t: torch.Tensor, owned: bool = False) -> np.ndarray:
    """float (1, C, H, W) in [0, 1] -> contiguous uint8 HxWxC on the CPU.

    owned=True: t is a scratch output nobody reads again, so it is clamped in place (one
    float image less to allocate). Rounding happens in float, the HWC transpose in uint8
    (a quarter of the bytes), and only uint8 crosses from the device.
    """
    f = t[0].float()  # a new tensor unless t is already float32
    f = f.clamp_(0, 1) if owned or t.dtype != torch.float32 else f.clamp(0, 1)
    return f.mul_(255.0).round_().to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()


def tiles(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) cores covering the image; one core when tile <= 0 or the image fits."""
    if tile <= 0 or (height <= tile and width <= tile):
        return [(0, height, 0, width)]
    return [
        (y, min(y + tile, height), x, min(x + tile, width))
        for y in range(0, height, tile)
        for x in range(0, width, tile)
    ]


def run_tiled(
    fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    rgb: np.ndarray,
    scale: int,
    tile: int,
    overlap: int,
    device: str,
    dtype: torch.dtype,
    mask: np.ndarray | None = None,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """fn(image tile, mask tile or None) -> output tile `scale` times larger, over the whole image.

    With a mask, tiles whose core has no masked pixel are copied through untouched.
    """
    h, w = rgb.shape[:2]
    cores = tiles(h, w, tile)
    if len(cores) == 1 and mask is None:  # the whole image at once: no output canvas to copy into
        with torch.inference_mode():
            result = to_uint8(fn(to_tensor(rgb, device, dtype), None), owned=True)
        if progress is not None:
            progress(1.0)
        return result
    out = np.empty((h * scale, w * scale, rgb.shape[2]), dtype=np.uint8)
    overlap = max(0, overlap) if len(cores) > 1 else 0
    for n, (y0, y1, x0, x1) in enumerate(cores):
        if mask is not None and scale == 1 and not mask[y0:y1, x0:x1].any():
            out[y0:y1, x0:x1] = rgb[y0:y1, x0:x1]
        else:
            py0, py1 = max(0, y0 - overlap), min(h, y1 + overlap)
            px0, px1 = max(0, x0 - overlap), min(w, x1 + overlap)
            with torch.inference_mode():
                x = to_tensor(rgb[py0:py1, px0:px1], device, dtype)
                m = (
                    None
                    if mask is None
                    else to_tensor(mask[py0:py1, px0:px1], device, dtype).round_()
                )
                y = fn(x, m)
                core = y[
                    ...,
                    (y0 - py0) * scale : (y1 - py0) * scale,
                    (x0 - px0) * scale : (x1 - px0) * scale,
                ]
                out[y0 * scale : y1 * scale, x0 * scale : x1 * scale] = to_uint8(core, owned=True)
            del x, y, core
        if progress is not None:
            progress((n + 1) / len(cores))
    return out
