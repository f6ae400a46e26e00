"""A captioner for real photos: an image-to-text model that transformers loads by name.

Real Stable Diffusion folders ship no captioner of their own (engine/captioning.py), so without
one every edit would need the user to say what the photo shows. A BLIP-class captioning model
names what it sees in the everyday words SD's text encoder knows ("a puppy sitting on a
sofa"), which is what an edit's source prompt needs. The service names one in its settings
(`captioner`), e.g. Salesforce/blip-image-captioning-base: about 990 MB of fp32 weights (247M
stored values; 224M distinct parameters, as its output layer shares the word embeddings), a few
hundredths of a second per photo on a GPU. It runs on the worker's device, beside the diffusion
model.

It words photos only: `subject` finds no subject's mask (None), so learning a concept falls
back to the model-agnostic captions and attention masks of engine/textual_inversion.py.
"""

from __future__ import annotations

import re

import torch
from PIL import Image

from engine.captioning import Captioner, Subject, load_captioner
from engine.errors import ModelLoadError

# Captions longer than this many words are cut: an edit adds words of its own to the caption,
# and the whole must fit the text encoder (77 tokens for SD, 32 for the tests' tiny model).
MAX_CAPTION_WORDS = 12
# Words some BLIP checkpoints start captions with that name nothing in the photo.
_FILLER = frozenset({"arafed", "araffe", "arafe", "there", "is"})
_WORD = re.compile(r"[a-z]+")


class ImageToTextCaptioner:
    """Captions photos with a transformers image-to-text model (BLIP and its kin)."""

    def __init__(self, source: str, device: torch.device | str = "cpu",
                 max_new_tokens: int = 20):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        try:
            self.processor = AutoProcessor.from_pretrained(source)
            self.model = AutoModelForImageTextToText.from_pretrained(source)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"the captioning model {source!r} cannot be loaded: {exc}") \
                from exc
        self.source = source
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.max_new_tokens = max_new_tokens

    @torch.no_grad()
    def caption(self, image: Image.Image) -> str:
        """What the photo shows, in lowercase plain words ("a puppy sitting on a sofa")."""
        inputs = self.processor(images=image.convert("RGB"), return_tensors="pt").to(self.device)
        ids = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        return plain_caption(self.processor.decode(ids[0], skip_special_tokens=True))

    __call__ = caption

    def subject(self, image: Image.Image, kind: str) -> Subject | None:
        """None: this captioner words whole photos and finds no subject's mask."""
        return None


def plain_caption(text: str, max_words: int = MAX_CAPTION_WORDS) -> str:
    """A model's caption as an edit's source prompt: lowercase words a-z only, no filler at the
    start, at most `max_words`; "a photo" when nothing is left."""
    words = _WORD.findall(text.lower())
    while words and words[0] in _FILLER:
        words.pop(0)
    return " ".join(words[:max_words]) or "a photo"


def load_photo_captioner(source: str, device: torch.device | str = "cpu"
                         ) -> ImageToTextCaptioner | None:
    """The captioner the settings name (a hub id or a folder), None when they name none."""
    return ImageToTextCaptioner(source, device) if source.strip() else None


def captioner_for(model_source: str, device: torch.device | str, setting: str = ""
                  ) -> Captioner | ImageToTextCaptioner | None:
    """The captioner edits use: the captioning model the settings name (`setting`), else the
    model folder's own (the bundled model's), else None (the user says what a photo shows)."""
    return load_photo_captioner(setting, device) or load_captioner(model_source)
