"""Control maps made in the app, on the CPU: Canny edges from a plain photo.

FLUX.1 Canny [dev] was trained on Canny edge maps (white edges on black). Computing them here
(numpy: blur, Sobel gradients, thinning to one-pixel ridges, two thresholds joined by
hysteresis) spares the user a second tool and needs no extra package. Depth maps need a
network: depth.py runs Depth Anything V2 Small, which the flux-depth model installs with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Thresholds on the Sobel gradient magnitude of a 0-255 picture: the 100 / 200 pair that
# common Canny preprocessors for ControlNet-style models use by default.
LOW, HIGH = 100.0, 200.0


def _blur(gray: np.ndarray) -> np.ndarray:
    """5-tap binomial blur (close to a Gaussian with sigma 1), edges repeated."""
    k = np.array([1, 4, 6, 4, 1], dtype=np.float32) / 16
    out = gray
    for axis in (0, 1):
        pad = [(2, 2) if a == axis else (0, 0) for a in range(2)]
        p = np.pad(out, pad, mode="edge")
        n = out.shape[axis]
        out = sum(k[i] * (p[i : i + n] if axis == 0 else p[:, i : i + n]) for i in range(5)).astype(
            np.float32
        )
    return out


def _sobel(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.pad(img, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return gx, gy


def _shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """a moved by (dy, dx), zeros where nothing moved in."""
    out = np.zeros_like(a)
    h, w = a.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = a[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def canny(gray: np.ndarray, low: float = LOW, high: float = HIGH) -> np.ndarray:
    """Canny edges of a 2-D 0-255 array: uint8, 255 on edges, 0 elsewhere."""
    gx, gy = _sobel(_blur(gray.astype(np.float32)))
    mag = np.hypot(gx, gy)
    angle = (np.rad2deg(np.arctan2(gy, gx)) + 180) % 180
    # Thin: keep a pixel only where it is the largest along its gradient's direction.
    keep = np.zeros(mag.shape, dtype=bool)
    for lo, hi, (dy, dx) in (
        (-1, 22.5, (0, 1)),
        (157.5, 181, (0, 1)),
        (22.5, 67.5, (1, 1)),
        (67.5, 112.5, (1, 0)),
        (112.5, 157.5, (1, -1)),
    ):
        sector = (angle >= lo) & (angle < hi)
        ridge = (mag >= _shift(mag, dy, dx)) & (mag >= _shift(mag, -dy, -dx))
        keep |= sector & ridge
    thin = np.where(keep, mag, 0)
    strong = thin >= high
    weak = thin >= low
    # Hysteresis: weak pixels count when joined (8-connected) to a strong one.
    edges = strong
    while True:
        grown = edges.copy()
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy or dx:
                    grown |= _shift(edges, dy, dx)
        grown &= weak
        if (grown == edges).all():
            break
        edges = grown
    return np.where(edges, 255, 0).astype(np.uint8)


def canny_image(image: Any) -> Any:
    """A PIL picture's Canny map, as the RGB picture (white edges on black) FLUX.1 Canny takes."""
    from PIL import Image

    edges = canny(np.asarray(image.convert("L"), dtype=np.float32))
    return Image.fromarray(edges, mode="L").convert("RGB")
