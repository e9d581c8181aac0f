"""Images verified before any model loads (engine/image_check.py), and the worker's own check: each problem
one line naming the file and saying what it is; permission denied said as such, not as a broken image."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import SAMPLE_IMAGES
from vlmtui.engine import image_check
from vlmtui.engine.image_check import check_images, image_problem, unreadable_note
from vlmtui.worker.images import ImageError, open_image

GOOD = SAMPLE_IMAGES / "still-life.png"


def deny(monkeypatch: pytest.MonkeyPatch, target: Path) -> None:
    """Reading ``target`` raises PermissionError, as chmod 000 does for anyone but root (tests may run as root)."""
    real_open = builtins.open

    def guarded(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file) == str(target):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)


def test_each_kind_of_bad_image_is_one_line(tmp_path: Path) -> None:
    data = GOOD.read_bytes()
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    problems = check_images([GOOD, tmp_path / "half.png", tmp_path / "empty.jpg", tmp_path / "text.png",
                             tmp_path / "gone.png", GOOD])
    assert problems == {
        str(tmp_path / "half.png"): problems[str(tmp_path / "half.png")],
        str(tmp_path / "empty.jpg"): f"{tmp_path / 'empty.jpg'}: empty file",
        str(tmp_path / "text.png"): f"{tmp_path / 'text.png'}: not an image PIL can read",
        str(tmp_path / "gone.png"): f"{tmp_path / 'gone.png'}: image not found",
    }
    assert "broken or truncated image" in problems[str(tmp_path / "half.png")]
    assert all("\n" not in line for line in problems.values())
    note = unreadable_note(problems)
    assert note[0].startswith("4 image(s) cannot be read; their cases fail without loading a model: ")
    assert note[0].endswith(" (and 3 more)") and len(note) == 1


def test_a_truncated_jpeg_that_verify_accepts_is_caught_by_decoding(tmp_path: Path) -> None:
    jpeg = tmp_path / "cut.jpg"
    Image.open(GOOD).convert("RGB").save(jpeg, quality=90)
    data = jpeg.read_bytes()
    jpeg.write_bytes(data[: len(data) * 2 // 3])
    problem = image_problem(jpeg)
    assert problem is not None and "broken or truncated" in problem


def test_a_large_image_is_verified_but_not_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above FULL_DECODE_PIXELS only the header and chunks are checked: the worker decodes it once, later."""
    decoded: list[tuple[int, int]] = []
    real_load = Image.Image.load

    def counting(self: Image.Image) -> Any:
        decoded.append(self.size)
        return real_load(self)

    monkeypatch.setattr(Image.Image, "load", counting)
    assert image_problem(GOOD) is None and decoded, "a small image is decoded in full"
    decoded.clear()
    monkeypatch.setattr(image_check, "FULL_DECODE_PIXELS", 10)
    assert image_problem(GOOD) is None and decoded == []


def test_permission_denied_says_so_before_and_in_the_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked.png"
    locked.write_bytes(GOOD.read_bytes())
    deny(monkeypatch, locked)
    assert image_problem(locked) == f"{locked}: permission denied (the user running vlmtui cannot read it)"
    monkeypatch.setattr(Image, "open", lambda *a, **k: (_ for _ in ()).throw(PermissionError(13, "denied")))
    with pytest.raises(ImageError, match=r"locked\.png: permission denied"):
        open_image(locked)
