"""Loading models and reading untrusted images."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from engine.errors import ImageError, ModelLoadError
from engine.images import fit_square, read_image
from engine.model import load_model
from oneword.limits import ImageLimits


def test_tiny_model_loads_with_its_own_sizes(tiny_model, tiny_vpred_model):
    assert tiny_model.device.type == "cpu" and tiny_model.dtype == torch.float32
    assert (tiny_model.image_size, tiny_model.text_width, tiny_model.max_tokens) == (32, 32, 32)
    assert tiny_vpred_model.text_width == 48
    assert tiny_vpred_model.scheduler.config.prediction_type == "v_prediction"
    assert not any(p.requires_grad for p in tiny_model.unet.parameters())


def test_bad_model_sources_raise_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_model(tmp_path, device="cpu")  # an empty folder
    file = tmp_path / "weights.bin"
    file.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="is a file"):
        load_model(file, device="cpu")
    with pytest.raises(ModelLoadError):
        load_model("no-such-org/no-such-model", device="cpu")  # offline: no hub


def png(size=(64, 48), mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "red").save(out, "PNG")
    return out.getvalue()


def test_images_are_read_safely():
    assert read_image(png()).size == (64, 48)
    assert read_image(png(mode="RGBA")).mode == "RGB"
    with pytest.raises(ImageError, match="not an image"):
        read_image(b"%PDF-1.4 definitely not a picture")
    with pytest.raises(ImageError, match="megapixels"):
        read_image(png((400, 400)), ImageLimits(max_pixels=100_000))
    with pytest.raises(ImageError, match="MB"):
        read_image(png(), ImageLimits(max_bytes=10))
    with pytest.raises(ImageError, match="too small"):
        read_image(png((8, 8)))
    frames = [Image.new("RGB", (40, 40), c) for c in ("red", "blue")]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match="animated"):
        read_image(gif.getvalue())


def test_missing_file_is_an_image_error(tmp_path):
    with pytest.raises(ImageError, match="cannot read"):
        read_image(tmp_path / "missing.png")


def test_fit_square_centre_crops():
    image = Image.new("RGB", (300, 100), "blue")
    image.paste(Image.new("RGB", (100, 100), "red"), (100, 0))
    fitted = fit_square(image, 32)
    assert fitted.size == (32, 32) and fitted.getpixel((16, 16)) == (255, 0, 0)
