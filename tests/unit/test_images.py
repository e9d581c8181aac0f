"""Images: every odd format becomes 8-bit RGB; every bad file is one line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import SAMPLE_IMAGES
from vlmtui.worker.images import ImageError, open_image


def save(tmp_path: Path, name: str, image: Image.Image, **kwargs: object) -> Path:
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def test_sample_images_open() -> None:
    for path in SAMPLE_IMAGES.iterdir():
        image = open_image(path)
        assert image.mode == "RGB" and min(image.size) > 0


@pytest.mark.parametrize(
    ("name", "mode", "kwargs"),
    [
        ("cmyk.jpg", "CMYK", {}),
        ("gray.png", "L", {}),
        ("rgba.png", "RGBA", {}),
        ("la.png", "LA", {}),
        ("p.png", "P", {}),
        ("deep.png", "I;16", {}),
        ("bits.png", "1", {}),
    ],
)
def test_modes_are_converted(tmp_path: Path, name: str, mode: str, kwargs: dict[str, object]) -> None:
    image = Image.new(mode, (40, 30))
    path = save(tmp_path, name, image, **kwargs)
    out = open_image(path)
    assert out.mode == "RGB" and out.size == (40, 30)


def test_sixteen_bit_keeps_contrast(tmp_path: Path) -> None:
    image = Image.new("I;16", (4, 1))
    image.putdata([0, 1000, 30000, 65535])
    out = open_image(save(tmp_path, "deep.png", image))
    values = [out.getpixel((x, 0))[0] for x in range(4)]  # type: ignore[index]
    assert values[0] == 0 and values[-1] == 255 and values == sorted(values)


def test_transparent_pixels_become_white(tmp_path: Path) -> None:
    out = open_image(save(tmp_path, "clear.png", Image.new("RGBA", (5, 5), (255, 0, 0, 0))))
    assert out.getpixel((2, 2)) == (255, 255, 255)


def test_animated_takes_the_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("P", (20, 20), color) for color in (1, 2, 3)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert open_image(path).size == (20, 20)


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (60, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    path = save(tmp_path, "rotated.jpg", image, exif=exif)
    assert open_image(path).size == (20, 60)


def test_large_images_are_downscaled(tmp_path: Path) -> None:
    path = save(tmp_path, "big.png", Image.new("RGB", (5000, 1000)))
    assert open_image(path).size == (2048, 410)
    assert open_image(path, max_side=500).size == (500, 100)


def test_bad_files_fail_with_the_file_name(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    good = save(tmp_path, "cut.jpg", Image.effect_noise((200, 200), 50).convert("RGB"), quality=90)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    for path, words in ((empty, "empty file"), (text, "not an image"), (truncated, "truncated"),
                        (tmp_path / "missing.png", "not found")):
        with pytest.raises(ImageError) as info:
            open_image(path)
        assert str(path) in str(info.value) and words in str(info.value)
        assert "\n" not in str(info.value)


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    # A real PNG header announcing 20000×20000 pixels: refused before any pixel is decoded.
    path = save(tmp_path, "bomb.png", Image.new("1", (20000, 20000)), optimize=True)
    with pytest.raises(ImageError, match="decompression bomb") as info:
        open_image(path)
    assert str(path) in str(info.value)
