"""Images in and out of an app: decode an upload safely (every bad file is a BadRequest with
a sentence, never a crash) and save a result that keeps the input's EXIF and colour profile.

Pillow's decompression-bomb guard is set from MAX_PIXELS here, and the size is checked from
the header before any pixel is decoded, so a 30000x30000 file costs nothing to refuse.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import outputs
from .errors import BadRequest

MAX_PIXELS = 50_000_000  # about 8660x5770: an A4 print scanned at 600 dpi fits, a bomb does not
MAX_SIDE = 20_000
_FORMATS = "PNG, JPEG, WebP, TIFF or BMP"


def _pil():
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow warns past this and refuses past twice it
    return Image


@dataclass
class Decoded:
    """An upright 8-bit RGB (or L) image and what must travel to the output unchanged."""

    image: Any  # PIL image, mode RGB or L, EXIF orientation applied
    alpha: Any | None  # the alpha channel (PIL L), upright, or None
    exif: bytes | None  # the original EXIF block (orientation tag left as it was)
    icc: bytes | None  # the ICC colour profile
    orientation: int  # the EXIF orientation tag (1 = none)
    mode: str  # the mode the file was in
    format: str

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def b64decode(text: str, what: str = "image") -> bytes:
    """Bytes of a base64 string or a data: URL; BadRequest if it is not base64."""
    if not isinstance(text, str) or not text.strip():
        raise BadRequest(f"The {what} is empty: send the file's bytes as base64.")
    if text.startswith("data:"):
        text = text.split(",", 1)[-1]
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError):
        raise BadRequest(
            f"The {what} is not valid base64; send the file's bytes base64-encoded."
        ) from None


def decode(data: bytes, what: str = "image", max_pixels: int = MAX_PIXELS) -> Decoded:
    """Read an upload; BadRequest (400) with a sentence for anything the app cannot work on."""
    Image = _pil()
    from PIL import ImageOps, UnidentifiedImageError

    if not data:
        raise BadRequest(f"The {what} is empty (0 bytes); send a PNG or JPEG file.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise BadRequest(
            f"The {what} is not a picture this app can read; send a {_FORMATS} file."
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadRequest(
            f"The {what} is far too large to open safely (the limit is "
            f"{max_pixels // 1_000_000} megapixels); scale it down first."
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadRequest(
            f"The {what} cannot be read ({exc}); it may be damaged. Save it again and retry."
        ) from None
    w, h = img.size
    if w < 1 or h < 1:
        raise BadRequest(f"The {what} has no pixels ({w}x{h}).")
    if w * h > max_pixels or max(w, h) > MAX_SIDE:
        raise BadRequest(
            f"The {what} is {w}x{h} pixels ({w * h / 1e6:.0f} megapixels); the limit is "
            f"{max_pixels / 1e6:.0f} megapixels and {MAX_SIDE} pixels a side. Scale it down first."
        )
    if getattr(img, "n_frames", 1) > 1:
        raise BadRequest(
            f"The {what} is animated ({img.n_frames} frames); send a single still picture "
            "(PNG or JPEG)."
        )
    mode = img.mode
    if mode == "CMYK":
        raise BadRequest(
            f"The {what} is a CMYK (print) file; convert it to RGB (sRGB) and send it again."
        )
    png16 = (
        img.format == "PNG" and len(data) > 24 and data[24] == 16
    )  # Pillow reads 16-bit RGB as 8-bit
    if mode.startswith("I;16") or mode in ("I", "F") or png16:
        raise BadRequest(
            f"The {what} has 16 or 32 bits per channel ({mode}); save it as an 8-bit "
            "RGB or greyscale PNG or JPEG and send it again."
        )
    if mode not in ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "La"):
        raise BadRequest(
            f"The {what} is in the {mode} colour mode, which this app does not handle; "
            "save it as RGB and send it again."
        )
    try:
        img.load()
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadRequest(
            f"The {what} is truncated or damaged ({exc}); send the complete file."
        ) from None
    exif = img.info.get("exif")
    icc = img.info.get("icc_profile")
    try:
        orientation = int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block is not worth refusing the picture for
        orientation, exif = 1, None
    upright = ImageOps.exif_transpose(img) if orientation != 1 else img
    alpha = None
    if upright.mode in ("LA", "La", "RGBA", "PA") or (
        upright.mode == "P" and "transparency" in upright.info
    ):
        rgba = upright.convert("RGBA") if upright.mode not in ("LA", "La") else upright
        alpha = rgba.getchannel("A")
        upright = rgba
    base = "L" if mode in ("1", "L", "LA", "La") else "RGB"
    return Decoded(
        image=upright.convert(base),
        alpha=alpha,
        exif=exif if isinstance(exif, bytes) else None,
        icc=icc if isinstance(icc, bytes) else None,
        orientation=orientation if 1 <= orientation <= 8 else 1,
        mode=mode,
        format=img.format or "",
    )


def decode_b64(text: str, what: str = "image", max_pixels: int = MAX_PIXELS) -> Decoded:
    return decode(b64decode(text, what), what, max_pixels)


_INVERSE = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_90",
    7: "TRANSVERSE",
    8: "ROTATE_270",
}


def to_stored_orientation(image: Any, orientation: int) -> Any:
    """Undo exif_transpose: the pixels go back to how the file stored them, so the original
    orientation tag (kept in the EXIF) shows the result upright, exactly like the input."""
    Image = _pil()
    name = _INVERSE.get(orientation)
    return image if name is None else image.transpose(getattr(Image.Transpose, name))


def finish(image: Any, source: Decoded) -> Any:
    """The result in the input's own orientation and mode family, alpha put back."""
    Image = _pil()
    out = image
    if source.image.mode == "L" and out.mode != "L":
        out = out.convert("L")
    if source.alpha is not None:
        alpha = (
            source.alpha.resize(out.size, Image.Resampling.BICUBIC)
            if source.alpha.size != out.size
            else source.alpha
        )
        out = out.convert("LA" if out.mode == "L" else "RGBA")
        out.putalpha(alpha)
    return to_stored_orientation(out, source.orientation)


def save_png(
    image: Any,
    folder: Path,
    stem: str,
    params: dict[str, Any],
    software: str,
    source: Decoded | None = None,
) -> Path:
    """Write folder/<date>/<stem>.png atomically, with the parameters, EXIF and ICC profile."""
    extra: dict[str, Any] = {}
    if source is not None and source.exif:
        extra["exif"] = source.exif
    if source is not None and source.icc and _icc_fits(source.icc, image.mode):
        extra["icc_profile"] = source.icc
    return outputs.save_png(image, folder, stem, params, software, **extra)


def _icc_fits(icc: bytes, mode: str) -> bool:
    """A grey profile on a grey image, an RGB one on a colour image (bytes 16-20 name the space)."""
    space = icc[16:20] if len(icc) >= 20 else b""
    return space == (b"GRAY" if mode in ("L", "LA") else b"RGB ")


def encode_png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
