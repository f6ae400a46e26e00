"""How alike pictures are to a user's photos of one thing: the judge behind the photo check
before learning and the self-check after it (engine/self_check.py).

One interface, two judges:

- `CaptionJudge`, on a model whose folder ships a captioner (the bundled model): the captioner's
  own words for each picture's subject ("small fluffy grey cat").
  A picture is as alike as the share of the photos' common words it shows, and the words it
  lacks say what went wrong (a colour, a pattern, a part).
- `EmbeddingJudge`, on real models: an image model that `transformers` loads by name (a CLIP
  vision model, say) embeds every picture; a picture's likeness is its cosine to the photos'
  mean embedding, relative to how alike the photos are among themselves (so one bar fits
  embedding models whose cosines sit in different ranges).

Judges return numbers; what to tell a user about them is the bot's business.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from PIL import Image

from engine.captioning import Captioner
from engine.config import CheckSettings
from engine.errors import ModelLoadError


@dataclass(frozen=True)
class Likeness:
    """How alike one picture is to a set of reference pictures."""

    score: float  # 0..1; 1: as alike as the references are to each other (or more)
    missing: tuple[str, ...] = ()  # the references' common words it lacks (caption judge only)
    found: bool = True  # False: the judge found no subject in the picture at all


@runtime_checkable
class LikenessJudge(Protocol):
    """What the photo check and the self-check need of a judge."""

    alike_bar: float  # a drawing of a learned word counts as alike from this score up
    odd_bar: float  # a photo scoring under this against the other photos shows something else

    def looks(self, images: Sequence[Image.Image], kind: str) -> list[object]:
        """What the judge sees in each picture (opaque to callers), for a concept of `kind`."""

    def compare(self, references: Sequence[object], looks: Sequence[object]) -> list[Likeness]:
        """The likeness of each of `looks` to what `references` have in common."""


class CaptionJudge:
    """Likeness by a captioner's words for each picture's subject."""

    def __init__(self, captioner: Captioner, settings: CheckSettings | None = None):
        settings = settings or CheckSettings()
        self.captioner = captioner
        self.alike_bar, self.odd_bar = settings.words_alike, settings.words_odd

    def looks(self, images: Sequence[Image.Image], kind: str) -> list[object]:
        """Each picture's subject words as a tuple, or None where no subject is found."""
        looks: list[object] = []
        for image in images:
            subject = self.captioner.subject(image, kind)
            words = subject.words if subject is not None else None
            looks.append(tuple(words.split()) if words else None)
        return looks

    def compare(self, references: Sequence[object], looks: Sequence[object]) -> list[Likeness]:
        """The share of the references' common words (those more than half of them show) that
        each look shows (0 when they have none in common), and the common words it lacks."""
        common = common_words([r for r in references if r is not None])
        result = []
        for look in looks:
            if look is None:
                result.append(Likeness(0.0, common, found=False))
                continue
            have = Counter(look)
            missing = []
            for word in common:  # a word said twice must be there twice
                if have[word] > 0:
                    have[word] -= 1
                else:
                    missing.append(word)
            # references that share no words show nothing a picture could be alike to
            score = 1.0 - len(missing) / len(common) if common else 0.0
            result.append(Likeness(score, tuple(missing)))
        return result


def common_words(word_lists: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    """The words more than half of the lists hold, in the order the first such list says them
    (each as often as most lists say it)."""
    if not word_lists:
        return ()
    counts = [Counter(words) for words in word_lists]
    needed = len(word_lists) // 2 + 1
    common: list[str] = []
    for words in word_lists:
        seen: Counter[str] = Counter()
        for word in words:
            seen[word] += 1
            times = sum(1 for count in counts if count[word] >= seen[word])
            if times >= needed and common.count(word) < seen[word]:
                common.append(word)
    return tuple(common)


class EmbeddingJudge:
    """Likeness by image embeddings of a model `transformers` loads by name."""

    def __init__(self, name: str, device: torch.device | str = "cpu",
                 settings: CheckSettings | None = None):
        from transformers import AutoImageProcessor, AutoModel  # heavy: only when named

        settings = settings or CheckSettings()
        self.alike_bar, self.odd_bar = settings.embedding_alike, settings.embedding_odd
        self.device = torch.device(device)
        try:
            self.processor = AutoImageProcessor.from_pretrained(name)
            self.model = AutoModel.from_pretrained(name).to(self.device).eval()
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"the image model {name!r} for comparing pictures cannot be "
                                 f"loaded: {exc}") from exc

    @torch.no_grad()
    def looks(self, images: Sequence[Image.Image], kind: str) -> list[object]:
        """Each picture's unit-length embedding (a CPU tensor [d])."""
        if not images:
            return []
        pixels = self.processor(images=[image.convert("RGB") for image in images],
                                return_tensors="pt")["pixel_values"].to(self.device)
        features = image_features(self.model, pixels).float()
        return list(F.normalize(features, dim=-1).cpu())

    def compare(self, references: Sequence[object], looks: Sequence[object]) -> list[Likeness]:
        """Each look's cosine to the references' mean, over the references' own typical cosine
        to the mean of the others (1 when there is a single reference), capped to 0..1."""
        refs = torch.stack(list(references))  # type: ignore[arg-type]
        centre = F.normalize(refs.mean(0), dim=-1)
        typical = 1.0
        if len(refs) > 1:
            own = [float(refs[i] @ F.normalize(torch.cat([refs[:i], refs[i + 1:]]).mean(0),
                                               dim=-1)) for i in range(len(refs))]
            typical = max(float(torch.tensor(own).median()), 1e-6)
        return [Likeness(min(1.0, max(0.0, float(look @ centre) / typical)))  # type: ignore
                for look in looks]


def image_features(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """One embedding per image from a transformers image model: its image features where it
    has them (CLIP, SigLIP), else its pooled output, else its mean token."""
    if hasattr(model, "get_image_features"):
        out = model.get_image_features(pixel_values=pixels)
        if isinstance(out, torch.Tensor):
            return out
        if getattr(out, "pooler_output", None) is not None:
            return out.pooler_output
    out = model(pixel_values=pixels)
    for name in ("image_embeds", "pooler_output"):
        value = getattr(out, name, None)
        if value is not None:
            return value.flatten(1)
    return out.last_hidden_state.mean(1)


def load_judge(likeness_model: str, captioner: Captioner | None,
               device: torch.device | str = "cpu",
               settings: CheckSettings | None = None) -> LikenessJudge | None:
    """The judge a worker uses: an embedding judge on the image model the settings name, else
    a caption judge on the model folder's own captioner, else None (no checks)."""
    if likeness_model:
        return EmbeddingJudge(likeness_model, device, settings)
    if captioner is not None:
        return CaptionJudge(captioner, settings)
    return None


@dataclass(frozen=True)
class PhotoCheck:
    """Each photo's likeness to the others, and which photos show something else."""

    likeness: tuple[Likeness, ...]  # one per photo, against all the other photos
    odd: tuple[int, ...]  # indexes (0-based) of the photos that show something else


def check_photos(judge: LikenessJudge, photos: Sequence[Image.Image], kind: str) -> PhotoCheck:
    """Compare each photo with the rest: a photo under the judge's odd bar is odd. When more
    than half the photos are odd, the set has no common subject and every photo is odd."""
    looks = judge.looks(photos, kind)
    likeness = tuple(judge.compare(looks[:i] + looks[i + 1:], [looks[i]])[0]
                     for i in range(len(looks)))
    odd = tuple(i for i, item in enumerate(likeness) if item.score < judge.odd_bar)
    if len(odd) > len(photos) // 2:
        odd = tuple(range(len(photos)))
    return PhotoCheck(likeness, odd)
