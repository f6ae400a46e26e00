"""The self-check after learning: draw the new word a few times and judge the drawings against
the user's photos (engine/likeness.py).

Learning is one random draw, and the same photos can give a word that comes out right nine
times in ten or one time in ten. The self-check measures which one a user got, in numbers the
bot words for them ("comes out like your photos in 7 of 8 tries"), and which words of the
photos' subject the drawings keep missing, so advice can fit what went wrong. Given several
candidate words learned together, it keeps the one that comes out right most often.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from PIL import Image

from engine.config import CheckSettings, ConceptSettings
from engine.errors import MixedPhotosError
from engine.likeness import Likeness, LikenessJudge, check_photos
from engine.model import DiffusionModel
from engine.sampling import initial_noise, sample
from engine.textual_inversion import (
    PREVIEW_TEMPLATES,
    LearnedWord,
    encode_with_vectors,
    learn_concept,
    template_ids,
)


@dataclass(frozen=True)
class SelfCheck:
    """How a learned word's drawings compare with the photos it was learned from."""

    likeness: tuple[Likeness, ...]  # one per drawing
    alike: int  # drawings at or above the judge's alike bar
    drawings: tuple[Image.Image, ...]

    @property
    def tries(self) -> int:
        """How many drawings were judged."""
        return len(self.likeness)

    @property
    def score(self) -> float:
        """The share of alike drawings, with the mean likeness breaking ties between words."""
        if not self.likeness:
            return 0.0
        mean = sum(item.score for item in self.likeness) / len(self.likeness)
        return self.alike / len(self.likeness) + 1e-3 * mean

    @property
    def blank(self) -> int:
        """Drawings in which the judge found no subject at all."""
        return sum(1 for item in self.likeness if not item.found)

    @property
    def missing(self) -> tuple[str, ...]:
        """The photos' words that at least half the drawings with a subject lack, most often
        lacked first (empty for a judge that has no words)."""
        found = [item for item in self.likeness if item.found]
        counts = Counter(word for item in found for word in set(item.missing))
        return tuple(word for word, count in counts.most_common() if 2 * count >= len(found))

    @property
    def best_drawing(self) -> Image.Image | None:
        """The drawing most like the photos (a preview of the word), None without drawings."""
        if not self.drawings:
            return None
        best = max(range(len(self.likeness)), key=lambda i: self.likeness[i].score)
        return self.drawings[best]


@torch.no_grad()
def draw_word(model: DiffusionModel, vectors: torch.Tensor, template: str, count: int,
              steps: int, guidance: float = 7.5, seed: int = 0) -> list[Image.Image]:
    """`count` drawings of `template` (with "{}" for the word) with the word's vectors [n, d],
    in one batch, each from its own seeded noise."""
    ids, slots = template_ids(model, [template], len(vectors))
    cond = encode_with_vectors(model, ids, slots, vectors.to(model.device)).to(model.dtype)
    uncond = model.encode_text([""])
    latents = initial_noise(model, count, seed)  # DDIM starts at unit noise
    out = sample(model, latents, cond.expand(count, -1, -1), uncond, guidance, steps)
    return model.decode(out)


def check_word(model: DiffusionModel, judge: LikenessJudge, photo_looks: Sequence[object],
               vectors: torch.Tensor, kind: str, template: str | None = None,
               settings: CheckSettings | None = None, seed: int = 0) -> SelfCheck:
    """Draw the word `settings.tries` times (under `template`, else the kind's preview
    caption) and judge each drawing against the photos' looks (`judge.looks` of the photos)."""
    settings = settings or CheckSettings()
    if settings.tries <= 0:
        return SelfCheck((), 0, ())
    drawings = draw_word(model, vectors, template or PREVIEW_TEMPLATES[kind], settings.tries,
                         settings.steps, settings.guidance, seed)
    likeness = tuple(judge.compare(photo_looks, judge.looks(drawings, kind)))
    alike = sum(1 for item in likeness if item.score >= judge.alike_bar)
    return SelfCheck(likeness, alike, tuple(drawings))


def best_word(checks: Sequence[SelfCheck]) -> int:
    """The index of the candidate word that came out right most often (the first on ties)."""
    return max(range(len(checks)), key=lambda i: (checks[i].score, -i))


def refuse_mixed_photos(judge: LikenessJudge, photos: Sequence[Image.Image], kind: str) -> None:
    """Raise MixedPhotosError naming the photos that show something else than the rest (and
    the other photos' words they lack), so a word is never learned from a mix. A style's
    photos show different things by nature: they are not compared."""
    if kind == "style":
        return
    check = check_photos(judge, photos, kind)
    if check.odd:
        missing = (() if len(check.odd) == len(photos)
                   else tuple(dict.fromkeys(w for i in check.odd
                                            for w in check.likeness[i].missing)))
        raise MixedPhotosError(check.odd, len(photos), missing)


def learn_checked(model: DiffusionModel, images: Sequence[Image.Image], name: str,
                  kind: str = "object", settings: ConceptSettings | None = None,
                  judge: LikenessJudge | None = None, check: CheckSettings | None = None,
                  **learn_options) -> tuple[LearnedWord, SelfCheck | None]:
    """`learn_concept` between the two checks a judge makes: photos that disagree are refused
    before learning (MixedPhotosError), and the learned word is drawn and judged after it;
    of several candidates (`settings.candidates`), the one drawn most like the photos is kept
    with its check, and a word drawn like them too seldom is learned again from another draw
    (`settings.redraws`). Without a judge, plain learning and no self-check (None); a cancelled
    learning is not checked either."""
    check = check or CheckSettings()
    settings = settings or ConceptSettings()
    if judge is not None:
        refuse_mixed_photos(judge, images, kind)
    learned = learn_concept(model, images, name, kind, settings, **learn_options)
    if judge is None or check.tries <= 0 or learned.reason == "cancelled":
        return learned, None
    looks = judge.looks(images, kind)
    best, best_check = _best_candidate(model, judge, looks, learned, kind, check, settings.seed)
    for attempt in range(1, settings.redraws + 1):
        if best_check.score >= settings.redraw_below:
            break
        again = learn_concept(model, images, name, kind,
                              replace(settings, seed=settings.seed + 1000 * attempt),
                              **learn_options)
        if again.reason == "cancelled":
            break
        other, other_check = _best_candidate(model, judge, looks, again, kind, check,
                                             settings.seed)
        if other_check.score > best_check.score:
            best, best_check = other, other_check
    return best, best_check


def _best_candidate(model: DiffusionModel, judge: LikenessJudge, looks: Sequence[object],
                    learned: LearnedWord, kind: str, check: CheckSettings, seed: int
                    ) -> tuple[LearnedWord, SelfCheck]:
    """Of a learning's candidate words, the one drawn most like the photos, with its check."""
    candidates = learned.candidates or [learned.concept]
    checks = [check_word(model, judge, looks, candidate.vectors, kind, learned.preview_caption,
                         check, seed) for candidate in candidates]
    best = best_word(checks)
    return replace(learned, concept=candidates[best]), checks[best]
