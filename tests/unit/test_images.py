"""Decoding: every bad input gets its typed error; every colour mode becomes RGB."""

import io

import numpy as np
import pytest
from PIL import Image

from facesearch.embedder import errors
from facesearch.embedder.images import ImageLimits, decode

from tests.helpers import encode, png_bomb


def gradient(h=48, w=64):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 4 % 256, y * 5 % 256, (x + y) % 256], -1).astype(np.uint8)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "WEBP"])
def test_supported_formats_decode_to_rgb(fmt):
    rgb = gradient()
    out = decode(encode(rgb, fmt))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    if fmt in ("PNG", "BMP"):
        np.testing.assert_array_equal(out, rgb)


def test_empty_bytes():
    with pytest.raises(errors.EmptyImageError, match="empty"):
        decode(b"")


def test_garbage_bytes():
    with pytest.raises(errors.UndecodableImageError, match="not a JPEG, PNG, BMP or WebP"):
        decode(b"this is not an image at all" * 10)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file(fmt):
    rng = np.random.default_rng(0)
    data = encode(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8), fmt)
    with pytest.raises(errors.UndecodableImageError, match="truncated|cannot be decoded"):
        decode(data[: len(data) // 2])


def test_decompression_bomb_is_refused_from_the_header():
    bomb = png_bomb(100_000, 100_000)  # 10 gigapixels in 1 KB
    assert len(bomb) < 2000
    with pytest.raises(errors.ImageTooLargeError, match="over the limit"):
        decode(bomb)


def test_real_bomb_png_over_configured_limit():
    buf = io.BytesIO()
    Image.new("1", (6000, 6000)).save(buf, "PNG")  # 36 MP that compresses to a few KB
    assert len(buf.getvalue()) < 100_000
    with pytest.raises(errors.ImageTooLargeError, match="36,000,000 pixels"):
        decode(buf.getvalue(), ImageLimits(max_pixels=10_000_000))


def test_one_pixel_image():
    with pytest.raises(errors.ImageTooSmallError, match="1x1"):
        decode(encode(np.zeros((1, 1, 3), np.uint8)))


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_unsupported_format_is_named(fmt):
    with pytest.raises(errors.UnsupportedFormatError, match=f"{fmt} images are not supported"):
        decode(encode(gradient(), fmt))


def test_errors_are_value_errors_with_one_base():
    assert issubclass(errors.TruncatedImageError, errors.ImageError)
    assert issubclass(errors.ImageError, ValueError)


def test_exif_orientation_is_honoured():
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :20] = (255, 0, 0)  # left half red
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # stored rotated: display needs 90 degrees clockwise
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    out = decode(buf.getvalue())
    assert out.shape == (40, 20, 3)
    assert out[2, 10, 0] > 200 and out[-3, 10, 0] < 60  # red ends up on top


def test_greyscale_palette_rgba_cmyk_and_16bit():
    grey = Image.fromarray(np.full((30, 30), 128, np.uint8))
    assert tuple(decode(_save(grey, "PNG"))[0, 0]) == (128, 128, 128)

    pal = Image.new("P", (30, 30))
    pal.putpalette([255, 0, 0] + [0] * 765)
    assert tuple(decode(_save(pal, "PNG"))[5, 5]) == (255, 0, 0)

    rgba = Image.new("RGBA", (30, 30), (0, 0, 255, 0))  # fully transparent -> white
    assert tuple(decode(_save(rgba, "PNG"))[5, 5]) == (255, 255, 255)

    cmyk = Image.new("CMYK", (30, 30), (0, 255, 255, 0))  # red in CMYK
    out = decode(_save(cmyk, "JPEG"))
    assert out[5, 5, 0] > 200 and out[5, 5, 1] < 60

    deep = Image.fromarray(np.linspace(0, 65535, 900, dtype=np.uint16).reshape(30, 30))
    out = decode(_save(deep, "PNG"))
    assert out.shape == (30, 30, 3) and out[0, 0, 0] == 0 and out[-1, -1, 0] == 255


def _save(img, fmt):
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt, keep", [("JPEG", 300), ("JPEG", 3), ("PNG", 20), ("WEBP", 16), ("BMP", 10)])
def test_a_file_cut_inside_its_header_is_reported_as_truncated(fmt, keep):
    """The first bytes of a real image are a truncated image of that format, not unknown bytes."""
    data = encode(gradient(), fmt)[:keep]
    with pytest.raises(errors.TruncatedImageError, match=f"{fmt} image is truncated or corrupt") as info:
        decode(data)
    assert f"{keep} bytes" in str(info.value) and "not a JPEG" not in str(info.value)
