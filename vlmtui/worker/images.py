"""Images made safe for a model: checked, converted to 8-bit RGB, upright, and not too large.

Every problem is an ``ImageError`` whose message names the file, so one bad image fails one case and
the rest of the queue runs.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import cast

from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_SIDE = 2048
"""Longest side a model sees unless the model spec says otherwise; VLM processors resize far below this."""

MAX_PIXELS = 100_000_000
"""Above this many pixels an image is refused as a decompression bomb before it is decoded."""


class ImageError(Exception):
    """An image that cannot be used; ``str()`` is one line naming the file."""


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any mode PIL opens: CMYK, 16-bit, float, palette, grayscale, alpha."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        image = image.convert("I") if image.mode != "F" else image
        lo, hi = cast(tuple[float, float], image.getextrema())
        scale = 255.0 / (float(hi) - float(lo)) if hi != lo else 1.0
        offset = -float(lo) * scale
        image = image.point(lambda v: v * scale + offset).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


def open_image(path: str | Path, max_side: int | None = None) -> Image.Image:
    """The image at ``path`` as 8-bit RGB, EXIF rotation applied, first frame only, longest side ≤ max_side."""
    path = Path(path)
    limit = max_side or DEFAULT_MAX_SIDE
    name = str(path)
    try:
        if path.stat().st_size == 0:
            raise ImageError(f"{name}: empty file")
    except FileNotFoundError:
        raise ImageError(f"{name}: image not found") from None
    except PermissionError:
        raise ImageError(f"{name}: permission denied (the user running vlmtui cannot read it)") from None
    old_limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                if getattr(opened, "n_frames", 1) > 1:
                    opened.seek(0)
                opened.load()
                image = ImageOps.exif_transpose(opened) or opened
                image = _to_rgb(image)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: refused as a decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image PIL can read") from None
    except PermissionError:  # an OSError, but not a broken file
        raise ImageError(f"{name}: permission denied (the user running vlmtui cannot read it)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: broken or truncated image ({exc})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    if max(image.size) > limit:
        image.thumbnail((limit, limit), Image.Resampling.LANCZOS)
    return image
