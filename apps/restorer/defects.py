"""Defects: find scratches and dust, then fill them with LaMa.

Scratches are found by the old-photo scratch U-Net of "Bringing Old Photos Back to Life"
(scratchnet.py) when it is installed. Without it, a built-in morphological detector stands
in: thin streaks and specks that are much brighter or darker than their surroundings (white
and black top-hat), thresholded against the image's own statistics and kept when they are
line-like or small. A mask supplied by the caller (white = fill) is added to either.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .tiling import run_tiled

BUILTIN = "builtin"


def find(
    detector, detector_id: str | None, rgb: np.ndarray, sensitivity: float, which: str = "auto"
) -> tuple[np.ndarray, str]:
    """(mask, who found it): the U-Net when installed (or asked for), else the built-in detector."""
    from appkit.errors import BadRequest

    if which == "model" and detector is None:
        raise BadRequest(
            "The old-photo scratch detector is not installed; add it with `darkroom install "
            "restorer --models gfpgan,face-detection,realesrgan-x4,lama,scratch-detector`, "
            'or set scratch_detector to "builtin" or "auto".'
        )
    if detector is not None and which != BUILTIN:
        return detector.mask(rgb, sensitivity), detector_id or "model"
    return scratch_mask(rgb, sensitivity), BUILTIN


def scratch_mask(rgb: np.ndarray, sensitivity: float = 0.5) -> np.ndarray:
    """uint8 mask (255 = defect) of thin bright/dark streaks and specks."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    h, w = gray.shape
    k = max(5, int(round(min(h, w) / 120)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    smooth = cv2.GaussianBlur(gray, (3, 3), 0)
    response = np.maximum(
        cv2.morphologyEx(smooth, cv2.MORPH_TOPHAT, kernel),
        cv2.morphologyEx(smooth, cv2.MORPH_BLACKHAT, kernel),
    ).astype(np.float32)
    sensitivity = float(np.clip(sensitivity, 0.0, 1.0))
    floor = response.mean() + (6.0 - 4.0 * sensitivity) * response.std()
    threshold = max(floor, 60.0 - 40.0 * sensitivity)
    raw = (response > threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(raw, connectivity=8)
    keep = np.zeros(count, bool)
    for i in range(1, count):
        bw, bh, area = (
            stats[i, cv2.CC_STAT_WIDTH],
            stats[i, cv2.CC_STAT_HEIGHT],
            stats[i, cv2.CC_STAT_AREA],
        )
        elongated = max(bw, bh) >= 4 * max(1, min(bw, bh)) or area < 0.35 * bw * bh
        speck = area <= k * k
        keep[i] = elongated or speck
    mask = keep[labels].astype(np.uint8) * 255
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))


def user_mask(mask_image, size: tuple[int, int]) -> np.ndarray:
    """A caller's mask (PIL image, white = fill) as uint8 0/255 at the image's size."""
    from PIL import Image

    m = mask_image.convert("L")
    if m.size != size:
        m = m.resize(size, Image.Resampling.NEAREST)
    return np.where(np.asarray(m) >= 128, 255, 0).astype(np.uint8)


def inpaint(
    net, rgb: np.ndarray, mask: np.ndarray, device: str, tile: int, progress=None
) -> np.ndarray:
    """Fill the masked pixels with LaMa, tile by tile (tiles without defects are left alone)."""
    if not mask.any():
        return rgb
    d = net.descriptor
    dtype = next(d.model.parameters()).dtype
    context = max(64, tile // 4) if tile > 0 else 0
    return run_tiled(
        lambda x, m: d(x, m),
        rgb,
        1,
        tile,
        context,
        device,
        dtype,
        mask=(mask > 0).astype(np.uint8) * 255,
        progress=progress,
    )


def release() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
