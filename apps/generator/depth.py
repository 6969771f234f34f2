"""Depth maps made in the app from a plain photo, for FLUX.1 Depth.

FLUX.1 Depth [dev] was trained on depth maps where near is white and far is black. A user has
a photo, not a depth map, so the flux-depth model ships a small depth estimator beside it:
Depth Anything V2 Small (Apache-2.0, 24.8M parameters, 99 MB), run through transformers'
`DepthAnythingForDepthEstimation`. Its relative output is disparity-like (larger = nearer),
so stretching it to 0-255 gives the near = white map FLUX.1 Depth expects.

The estimator's files are found among the model's own files by their config (model_type
`depth_anything`), not by a repo name, so a mirror of the repo works the same. Preprocessing
follows the repo's preprocessor_config.json (size, multiple of, mean/std) in numpy and PIL:
transformers' fast image processors would need torchvision, which the generator's env lacks.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
from appkit.errors import BadRequest, LoadError
from appkit.models import ModelChoice

MODEL_TYPE = "depth_anything"
NAME = "Depth Anything V2 Small"
# What a preprocessor_config.json may leave out: the values Depth Anything's repos use.
DEFAULTS: dict[str, Any] = {
    "size": 518,
    "ensure_multiple_of": 14,
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
}
MAX_SIDE = 2048  # a very long, thin photo is scaled down so its long side stays this size

MISSING = (
    f"FLUX.1 Depth makes the depth map from a photo with {NAME}, and its files are not "
    "installed. Run `darkroom update generator` to fetch them (about 99 MB), or send a ready "
    "depth map (near = white, far = black) with control: map."
)


def estimator_folder(choice: ModelChoice) -> Path | None:
    """The folder of the depth estimator among the model's files, or None when it is absent."""
    for f in choice.files:
        if f.path != "config.json" or not f.local_path.is_file():
            continue
        try:
            config = json.loads(f.local_path.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(config, dict) and config.get("model_type") == MODEL_TYPE:
            return f.local_path.parent
    return None


def require(choice: ModelChoice) -> Path:
    """The estimator's folder, or a BadRequest saying what to install."""
    folder = estimator_folder(choice)
    if folder is None or not (folder / "model.safetensors").is_file():
        raise BadRequest(MISSING)
    return folder


def settings(folder: Path) -> dict[str, Any]:
    """Input size, multiple and normalisation from preprocessor_config.json (or the defaults)."""
    out = dict(DEFAULTS)
    try:
        raw = json.loads((folder / "preprocessor_config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return out
    if not isinstance(raw, dict):
        return out
    size = raw.get("size")
    if isinstance(size, dict):
        size = min(v for v in size.values() if isinstance(v, int)) if size else None
    if isinstance(size, int) and size > 0:
        out["size"] = size
    for key in ("ensure_multiple_of", "image_mean", "image_std"):
        if raw.get(key):
            out[key] = raw[key]
    return out


def input_size(width: int, height: int, size: int, multiple: int) -> tuple[int, int]:
    """The estimator's input: the photo's shape, its short side `size`, sides a multiple of
    the patch (14), the long side at most MAX_SIDE."""
    scale = size / min(width, height)
    scale = min(scale, MAX_SIDE / max(width, height))

    def side(n: int) -> int:
        return max(multiple, round(n * scale / multiple) * multiple)

    return side(width), side(height)


def prepare(picture: Any, folder: Path) -> Any:
    """The photo as the estimator's pixel_values tensor (1, 3, H, W)."""
    import torch
    from PIL import Image

    s = settings(folder)
    w, h = input_size(*picture.size, int(s["size"]), int(s["ensure_multiple_of"]))
    rgb = picture.convert("RGB").resize((w, h), Image.Resampling.BICUBIC)
    pixels = np.asarray(rgb, dtype=np.float32) / 255.0
    pixels = (pixels - np.asarray(s["image_mean"], np.float32)) / np.asarray(
        s["image_std"], np.float32
    )
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())[None]


_lock = threading.Lock()
_cache: dict[str, Any] = {}


def _model(folder: Path) -> Any:
    """The estimator, loaded once per folder and kept on the CPU between uses (99 MB)."""
    key = str(folder)
    with _lock:
        if key not in _cache:
            from transformers import DepthAnythingForDepthEstimation

            try:
                model = DepthAnythingForDepthEstimation.from_pretrained(
                    str(folder), local_files_only=True
                )
            except (OSError, ValueError, RuntimeError) as exc:
                raise LoadError(
                    f"The {NAME} files in {folder} cannot be loaded ({exc}). Run `darkroom "
                    "models pull generator` to fetch them again."
                ) from None
            _cache.clear()  # one estimator at a time
            _cache[key] = model.eval()
        return _cache[key]


def estimate(picture: Any, folder: Path, device: str = "cpu") -> np.ndarray:
    """The estimator's raw relative depth (larger = nearer) at its input size, float32."""
    import torch

    model = _model(folder)
    pixel_values = prepare(picture, folder)
    with _lock, torch.inference_mode():
        try:
            model.to(device)
            out = model(pixel_values=pixel_values.to(device)).predicted_depth
        finally:
            model.to("cpu")  # the pipeline gets the GPU back for denoising
    return out[0].float().cpu().numpy()


def to_map(raw: np.ndarray, size: tuple[int, int]) -> Any:
    """Raw depth to the RGB picture FLUX.1 Depth takes: stretched to 0-255 (near = white),
    resized to `size` (width, height). A flat estimate (nothing nearer than anything else)
    is mid-grey, not a division by zero."""
    from PIL import Image

    lo, hi = float(np.min(raw)), float(np.max(raw))
    if not math.isfinite(lo) or not math.isfinite(hi) or hi - lo <= 1e-12 * max(1.0, abs(hi)):
        norm = np.full(raw.shape, 0.5, dtype=np.float32)
    else:
        norm = ((raw - lo) / (hi - lo)).astype(np.float32)
    resized = Image.fromarray(norm).resize(size, Image.Resampling.BICUBIC)
    grey = np.clip(np.asarray(resized) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def depth_image(picture: Any, folder: Path, device: str = "cpu") -> Any:
    """A photo's depth map at the photo's own size, near = white, as an RGB picture."""
    return to_map(estimate(picture, folder, device), picture.size)
