"""Every image of a plan opened and verified before any model loads, in a thread.

Images used to be checked only by the worker, after the model had loaded: seconds for a tiny model, minutes
for a 7B one, before learning that a file was truncated or unreadable. Here each distinct image is opened
once: its header read and ``Image.verify()`` run (a PNG's chunk CRCs; no pixels decoded), and a small
image also fully decoded (a truncated JPEG passes ``verify`` and fails only on decode). A large one is not
decoded here, so it is decoded once, by the worker, not twice. A problem is one line naming the file and
what is wrong with it: "permission denied" is said as such, not as "broken or truncated".
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from vlmtui.text import and_more

FULL_DECODE_PIXELS = 16_000_000
"""Images up to this many pixels are decoded in full here: a 4000×4000 PNG took 0.36 s on a busy 2-core box,
the demo's three sample images 47 ms together; a 6000×6000 one, verified only, 0.5 ms."""
MAX_PIXELS = 100_000_000
"""Beyond this PIL refuses the image as a decompression bomb, as the worker does (worker/images.py)."""


def image_problem(path: Path) -> str | None:
    """One line saying what is wrong with the image at ``path``, or ``None`` when a model could read it."""
    name = str(path)
    try:
        if not os.access(path, os.F_OK):
            return f"{name}: image not found"
        if path.is_dir():
            return f"{name}: a directory, not an image"
        if path.stat().st_size == 0:
            return f"{name}: empty file"
        with open(path, "rb") as handle, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(handle) as opened:
                pixels = opened.size[0] * opened.size[1]
                if pixels > MAX_PIXELS:
                    return f"{name}: refused as a decompression bomb ({opened.size[0]}x{opened.size[1]} pixels)"
                opened.verify()
            if pixels <= FULL_DECODE_PIXELS:
                handle.seek(0)
                with Image.open(handle) as decoded:
                    decoded.load()
    except PermissionError:
        return f"{name}: permission denied (the user running vlmtui cannot read it)"
    except UnidentifiedImageError:
        return f"{name}: not an image PIL can read"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return f"{name}: refused as a decompression bomb ({exc})"
    except (OSError, SyntaxError, ValueError) as exc:
        return f"{name}: broken or truncated image ({exc})"
    return None


def check_images(paths: Iterable[Path]) -> dict[str, str]:
    """Each unreadable image of ``paths`` (by its path as a string) with its problem; each file checked once."""
    problems: dict[str, str] = {}
    for path in dict.fromkeys(paths):
        problem = image_problem(path)
        if problem is not None:
            problems[str(path)] = problem
    return problems


def start_image_check(paths: Iterable[Path]) -> Future[dict[str, str]]:
    """``check_images`` in a thread, so the checks overlap the rest of a session's setup."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-check")
    future = executor.submit(check_images, list(paths))
    executor.shutdown(wait=False)
    return future


def unreadable_note(problems: dict[str, str]) -> tuple[str, ...]:
    """The warning at a run's start when some image cannot be read (its cases fail without loading a model)."""
    if not problems:
        return ()
    first = next(iter(problems.values()))
    return (f"{len(problems)} image(s) cannot be read; their cases fail without loading a model: {first}"
            f"{and_more(len(problems))}",)
