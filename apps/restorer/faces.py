"""Faces: align each face to the 512x512 FFHQ template, restore it, paste it back feathered.

Detection comes from any `detect(rgb) -> [Detection]` (RetinaFace from the store) or from
boxes the caller gives; a box without landmarks gets the template's landmarks fitted into
it. Paste-back warps the restored crop with the inverse similarity transform (scaled to the
upscaled canvas when the background was upscaled) and blends it through a mask that fades
out towards the crop's border, so no edge shows. No face-parsing network is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .retinaface import Detection
from .tiling import to_tensor, to_uint8

SIZE = 512
# Five landmarks (eyes, nose tip, mouth corners) of an aligned 512x512 FFHQ face.
TEMPLATE = np.array(
    [[192.98, 239.95], [318.90, 240.19], [256.63, 314.02], [201.26, 371.41], [313.09, 371.15]],
    dtype=np.float32,
)
# Where a detector's face box lies on that template (x0, y0, x1, y1), for boxes without landmarks.
TEMPLATE_BOX = (120.0, 130.0, 392.0, 450.0)


@dataclass
class Aligned:
    crop: np.ndarray  # SIZE x SIZE x 3 uint8
    matrix: np.ndarray  # 2x3 affine, image -> crop
    box: tuple[float, float, float, float]


def landmarks_in_box(box: tuple[float, float, float, float]) -> np.ndarray:
    """The template's landmarks stretched into a face box."""
    x0, y0, x1, y1 = box
    tx0, ty0, tx1, ty1 = TEMPLATE_BOX
    sx, sy = (x1 - x0) / (tx1 - tx0), (y1 - y0) / (ty1 - ty0)
    return np.stack([x0 + (TEMPLATE[:, 0] - tx0) * sx, y0 + (TEMPLATE[:, 1] - ty0) * sy], 1).astype(
        np.float32
    )


def from_boxes(boxes: list[list[float]]) -> list[Detection]:
    return [
        Detection(
            box=(b[0], b[1], b[2], b[3]),
            landmarks=landmarks_in_box((b[0], b[1], b[2], b[3])),
            score=1.0,
        )
        for b in boxes
    ]


def align(rgb: np.ndarray, face: Detection) -> Aligned:
    matrix, _ = cv2.estimateAffinePartial2D(
        face.landmarks.astype(np.float32), TEMPLATE, method=cv2.LMEDS
    )
    if matrix is None:  # degenerate landmarks: fall back to the box
        matrix, _ = cv2.estimateAffinePartial2D(
            landmarks_in_box(face.box), TEMPLATE, method=cv2.LMEDS
        )
    crop = cv2.warpAffine(
        rgb, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
    )
    return Aligned(crop=crop, matrix=matrix, box=face.box)


def restore(net, crop: np.ndarray, device: str, fidelity: float = 0.5) -> np.ndarray:
    """Run a face model on an aligned crop. GFPGAN, CodeFormer, GPEN, RestoreFormer++ and
    BOPBTL's face enhancer take [-1, 1] like upstream; spandrel's own call already does that
    for RestoreFormer."""
    d = net.descriptor
    dtype = next(d.model.parameters()).dtype
    with torch.inference_mode():
        x = to_tensor(crop, device, dtype)
        if net.arch == "GFPGAN":
            y = (d.model(x * 2 - 1, return_rgb=False, randomize_noise=False)[0] + 1) / 2
        elif net.arch == "CodeFormer":
            y = (d.model(x * 2 - 1, weight=float(fidelity))[0] + 1) / 2
        elif net.arch in ("GPEN", "RestoreFormer++", "BOPBTL-Face"):  # [-1, 1], at their size
            side = getattr(d.model, "size", SIZE)
            if side != SIZE:
                x = torch.nn.functional.interpolate(
                    x, (side, side), mode="bilinear", antialias=True
                )
            y = (d.model(x * 2 - 1) + 1) / 2
            if side != SIZE:
                y = torch.nn.functional.interpolate(y, (SIZE, SIZE), mode="bilinear")
        else:
            y = d(x)
        return to_uint8(y)


def _feather() -> np.ndarray:
    margin, sigma = int(SIZE * 0.05), SIZE * 0.035
    mask = np.zeros((SIZE, SIZE), np.float32)
    mask[margin:-margin, margin:-margin] = 1.0
    return cv2.GaussianBlur(mask, (0, 0), sigma)


_MASK = _feather()


def paste(canvas: np.ndarray, face: np.ndarray, matrix: np.ndarray, scale: float) -> None:
    """Blend a restored crop into `canvas` (in place), which is `scale` times the aligned image."""
    inverse = cv2.invertAffineTransform(matrix) * scale
    h, w = canvas.shape[:2]
    corners = (
        np.array([[0, 0, 1], [SIZE, 0, 1], [0, SIZE, 1], [SIZE, SIZE, 1]], np.float32) @ inverse.T
    )
    x0, y0 = np.floor(corners.min(0)).astype(int)
    x1, y1 = np.ceil(corners.max(0)).astype(int)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return
    local = inverse.copy()
    local[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(
        face, local, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
    )
    weight = cv2.warpAffine(_MASK, local, size, flags=cv2.INTER_LINEAR, borderValue=0.0)[..., None]
    roi = canvas[y0:y1, x0:x1].astype(np.float32)
    canvas[y0:y1, x0:x1] = np.clip(warped * weight + roi * (1 - weight) + 0.5, 0, 255).astype(
        np.uint8
    )
