"""Typed errors of the engine: each says, in words a user can read, what was wrong."""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class ModelLoadError(EngineError):
    """The model folder or hub id could not be loaded."""


class ImageError(EngineError):
    """An input image is unreadable, too large, animated or otherwise unusable."""


class NotEnoughImagesError(EngineError):
    """Textual inversion was given fewer images than it needs."""


class TooManyImagesError(EngineError):
    """Textual inversion was given more images than it accepts."""


class InconsistentImagesError(EngineError):
    """The images of a concept differ too much to share one concept."""


class MixedPhotosError(InconsistentImagesError):
    """Some photos of a concept show something else than the rest (found before learning)."""

    def __init__(self, odd: tuple[int, ...], count: int, missing: tuple[str, ...] = ()):
        numbers = ", ".join(str(i + 1) for i in odd)
        super().__init__(f"photo{'s' if len(odd) > 1 else ''} {numbers} of {count} "
                         f"show{'' if len(odd) > 1 else 's'} something else than the others")
        self.odd = odd  # 0-based indexes of the odd photos
        self.count = count
        self.missing = missing  # the other photos' words the odd ones lack (may be empty)


class ConceptFileError(EngineError):
    """A concept file is unreadable or in an unknown layout."""


class ConceptWidthError(ConceptFileError):
    """A concept file was made for a text encoder of another width."""

    def __init__(self, file_width: int, model_width: int):
        super().__init__(
            f"this concept was learned for a text encoder of width {file_width}, "
            f"but the model's text encoder has width {model_width}")
        self.file_width, self.model_width = file_width, model_width


class ConceptNameError(EngineError):
    """A concept name is not usable as a token."""


class PromptError(EngineError):
    """A prompt or edit command cannot be turned into an edit."""


class NotInPhotoError(PromptError):
    """The word for what to change finds nothing in the photo; the message is advice."""

    def __init__(self, word: str):
        super().__init__(
            f"I can't find a {word} in this photo. Name something it shows, or say what it "
            f"shows after '|', e.g. \"replace {word} with mochi | a {word} on a sofa\".")
        self.word = word


class InversionError(EngineError):
    """An inversion does not belong to the model or image it is used with."""
