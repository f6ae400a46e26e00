"""A sticker pack of a learned word: the word drawn in several expressions, each cut out.

What an expression is depends on the model, so the engine reads it as data:
- a model folder may ship `pack.json` (the bundled model's is written by world/packs.py from
  its grammar):

      {"template": "<a prompt with {} where the word goes>",
       "groups": [[<eye words>], [<mouth words>]],
       "expressions": [{"name": "happy", "words": [<an eye word>, <a mouth word>],
                        "emoji": "😀"}, ...]}

  `groups` are words that take each other's place (eyes, mouths). A learned word's vectors
  start from the captioner's words for its subject and stay close to them, so the vectors
  whose nearest vocabulary word is in a group are the word's own eyes or mouth: for each
  expression those vectors give way to the expression's words of the same group, and the
  rest of the word (its colour, ears, marks, kind) is kept;
- other models (real Stable Diffusion) use the `pack_expressions` setting, and the prompt says
  the expression in words beside the learned word.

Each expression is drawn several times (in batches of a few, each from its own seed); with a
captioner, the drawing that shows most of the word's own words is kept, and among those the one
that shows most of the asked expression's words: a sticker that is not the word is worse than
one with another face. It is then cut out with the segmenter (else the attention) into a
sticker, and as a 100x100 custom emoji.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from engine.captioning import Captioner
from engine.concept_tokens import concepts_in_use
from engine.concepts import Concept
from engine.errors import ModelLoadError, PromptError
from engine.model import DiffusionModel
from engine.sampling import generate
from engine.segmentation import Segmenter
from engine.stickers import make_sticker

PACK_FILE = "pack.json"
PACK_SIZE = 6
PACK_CANDIDATES = 12  # drawings per sticker; with a captioner the best is kept
BATCH = 6  # drawings drawn at once, so memory stays that of a few pictures on real models
EMOJI_SIDE = 100  # Telegram's custom emoji: 100x100
DEFAULT_TEMPLATE = "a sticker of {}, white background"
DEFAULT_EMOJI = "✨"
# Emoji for expression words a deployment may list in its settings.
EXPRESSION_EMOJI = {
    "happy": "😀", "sad": "😢", "angry": "😠", "surprised": "😮", "sleepy": "😴",
    "laughing": "😂", "love": "😍", "cool": "😎", "scared": "😱", "thinking": "🤔",
    "crying": "😭", "winking": "😉", "calm": "😌", "serious": "😐", "shocked": "😲",
}

Progress = Callable[[int, int], None]  # (stickers done, stickers in all)


@dataclass(frozen=True)
class Expression:
    """One sticker of a pack: its name, the words that draw it and its emoji."""

    name: str
    words: tuple[str, ...]
    emoji: str


@dataclass(frozen=True)
class PackPlan:
    """How a model draws a pack: the prompt around the word, the expressions, the groups of
    words that replace each other (see the module docstring)."""

    template: str
    expressions: tuple[Expression, ...]
    groups: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        if self.template.count("{}") != 1:
            raise ValueError(f"a pack template needs one {{}}: {self.template!r}")
        if len(self.expressions) < 1:
            raise ValueError("a pack needs at least one expression")


@dataclass
class PackSticker:
    """One drawn sticker: which expression, the sticker (RGBA, longer side 512), its emoji."""

    expression: Expression
    sticker: Image.Image
    prompt: str
    picture: Image.Image  # the drawing the sticker was cut from
    score: float | None = None  # share of wanted words the captioner read; None: not judged

    @property
    def emoji(self) -> str:
        return self.expression.emoji

    def custom_emoji(self) -> Image.Image:
        """The sticker as a 100x100 custom emoji, centred on a transparent square."""
        return emoji_image(self.sticker)


def emoji_image(sticker: Image.Image) -> Image.Image:
    """An RGBA picture fitted into a transparent 100x100 square (Telegram's custom emoji)."""
    side = max(sticker.size)
    square = Image.new("RGBA", (side, side), (255, 255, 255, 0))
    square.paste(sticker, ((side - sticker.width) // 2, (side - sticker.height) // 2))
    return square.resize((EMOJI_SIDE, EMOJI_SIDE), Image.LANCZOS)


def expressions_from_setting(setting: str) -> tuple[Expression, ...]:
    """Expressions from "happy,sad,angry:😠,...": each a word, optionally ':' and its emoji."""
    expressions = []
    for item in setting.split(","):
        name, _, emoji = item.strip().partition(":")
        name = name.strip()
        if name:
            expressions.append(Expression(name, (name,), emoji.strip()
                                          or EXPRESSION_EMOJI.get(name.lower(), DEFAULT_EMOJI)))
    if not expressions:
        raise ValueError(f"the pack expressions setting names none: {setting!r}")
    return tuple(expressions)


def load_pack_plan(model_source: str | Path | None, setting: str) -> PackPlan:
    """The model folder's pack.json when it has one, else the setting's expressions with a
    prompt that says them in words. A pack.json that cannot be read raises ModelLoadError."""
    spec_file = Path(str(model_source)) / PACK_FILE if model_source else None
    if spec_file is None or not spec_file.is_file():
        return PackPlan(DEFAULT_TEMPLATE, expressions_from_setting(setting))
    try:
        spec = json.loads(spec_file.read_text())
        return PackPlan(spec["template"],
                        tuple(Expression(e["name"], tuple(e["words"]), e.get("emoji",
                                                                             DEFAULT_EMOJI))
                              for e in spec["expressions"]),
                        tuple(tuple(g) for g in spec.get("groups", ())))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"the model's pack plan ({spec_file}) cannot be read: {exc}") from exc


def nearest_words(model: DiffusionModel, concept: Concept) -> list[str]:
    """The vocabulary word nearest (by cosine) to each of the concept's vectors."""
    table = model.text_encoder.get_input_embeddings().weight.detach().float().cpu()
    vectors = concept.vectors.float().cpu()
    similarity = torch.nn.functional.normalize(vectors, dim=-1) @ torch.nn.functional.normalize(
        table, dim=-1).T
    ids = similarity.argmax(-1).tolist()
    return [model.tokenizer.convert_ids_to_tokens(i).replace("</w>", "") for i in ids]


def expression_phrase(concept: Concept, readout: list[str], plan: PackPlan,
                      expression: Expression) -> str:
    """The word's tokens with its own eyes/mouth vectors swapped for the expression's words
    (see the module docstring); expression words with no vector to replace go in front, and
    without groups the expression is said before the word ("happy <mochi> ...")."""
    tokens = list(concept.tokens)
    unused = list(expression.words)
    for group in plan.groups:
        wanted = next((w for w in expression.words if w in group), None)
        own = [i for i, word in enumerate(readout) if word in group]
        if wanted is None or not own:
            continue
        for i in own:
            tokens[i] = wanted
        unused.remove(wanted)
    return " ".join(unused + tokens)


def expression_prompts(concept: Concept, readout: list[str], plan: PackPlan,
                       expression: Expression) -> list[str]:
    """The prompts an expression is drawn from: the plan's template around the expression's
    phrase and, when the plan names groups, also around the phrase with the word's own other
    words said before it ("<colour> <ears> <marks> <mochi> <eyes> ..."). Said, they hold the
    word's look better and its face worse; the candidates come from both halves."""
    phrase = expression_phrase(concept, readout, plan, expression)
    prompts = [plan.template.replace("{}", phrase)]
    grouped = {w for group in plan.groups for w in group}
    own = [w for w in readout[:-1] if w not in grouped]
    if plan.groups and own:
        prompts.append(plan.template.replace("{}", " ".join(own) + " " + phrase))
    return prompts


def wanted_words(readout: list[str], plan: PackPlan, expression: Expression
                 ) -> tuple[set[str], set[str]]:
    """The words a good sticker's subject shows: the word's own (those no expression changes)
    and the expression's."""
    grouped = {w for group in plan.groups for w in group}
    return {w for w in readout if w not in grouped}, set(expression.words)


def pack_prompts(model: DiffusionModel, concept: Concept, plan: PackPlan) -> list[str]:
    """One prompt per expression of the plan."""
    readout = nearest_words(model, concept)
    return [plan.template.replace("{}", expression_phrase(concept, readout, plan, e))
            for e in plan.expressions]


def make_pack(model: DiffusionModel, concept: Concept, plan: PackPlan,
              segmenter: Segmenter | None = None, captioner: Captioner | None = None,
              seed: int = 0, candidates: int = PACK_CANDIDATES, steps: int = 20,
              which: list[int] | None = None, progress: Progress | None = None
              ) -> list[PackSticker]:
    """Stickers of the word, one per expression of the plan (or per index in `which`, to redo
    some with another seed), each the best of `candidates` drawings by the captioner's reading
    (see the module docstring)."""
    if concept.kind == "style":
        raise PromptError("a sticker pack draws a thing or a person; this word is a style")
    if candidates < 1:
        raise ValueError(f"a sticker needs at least one drawing to choose from, not {candidates}")
    which = list(range(len(plan.expressions))) if which is None else which
    if not which or any(not 0 <= i < len(plan.expressions) for i in which):
        raise PromptError(f"a pack has stickers 1 to {len(plan.expressions)}")
    readout = nearest_words(model, concept)
    stickers = []
    with concepts_in_use(model, [concept]):
        for done, index in enumerate(which):
            expression = plan.expressions[index]
            options = expression_prompts(concept, readout, plan, expression)
            prompts, images = draw_candidates(model, options, candidates, steps,
                                              seed * 1000 + index)
            chosen, score = 0, None
            if captioner is not None:
                wanted = wanted_words(readout, plan, expression)
                scores = [_shares(captioner, image, concept.kind, wanted) for image in images]
                chosen = best_drawing(scores)
                score = _score(scores[chosen])
            best, prompt = images[chosen], prompts[chosen]
            cut_words = [t for t in concept.tokens if t in prompt.split()]
            sticker = make_sticker(model, best, prompt, words=cut_words, segmenter=segmenter)
            stickers.append(PackSticker(expression, sticker, prompt, best, score))
            if progress is not None:
                progress(done + 1, len(which))
    return stickers


def draw_candidates(model: DiffusionModel, options: list[str], candidates: int, steps: int,
                    seed: int) -> tuple[list[str], list[Image.Image]]:
    """`candidates` drawings of one sticker, in batches of at most BATCH, each batch from its
    own seed and taking the prompt options in equal turns; the prompts and the pictures."""
    prompts: list[str] = []
    images: list[Image.Image] = []
    for batch, start in enumerate(range(0, candidates, BATCH)):
        size = min(BATCH, candidates - start)
        batch_prompts = [options[i * len(options) // size] for i in range(size)]
        latents = generate(model, batch_prompts, steps=steps, seed=seed + 1_000_000 * batch)
        prompts += batch_prompts
        images += model.decode(latents)
    return prompts, images


def _shares(captioner: Captioner, image: Image.Image, kind: str,
            wanted: tuple[set[str], set[str]]) -> tuple[float, float]:
    """How well a drawing shows the word and the expression: the shares (0..1) of the word's
    own words and of the expression's words that the captioner reads in its subject."""
    subject = captioner.subject(image, kind)
    seen = set((subject.words or "").split()) if subject is not None else set()
    own, expression = wanted
    own_share = len(seen & own) / len(own) if own else 1.0
    expression_share = len(seen & expression) / len(expression) if expression else 1.0
    return own_share, expression_share


def best_drawing(shares: list[tuple[float, float]]) -> int:
    """The index of the drawing to keep, given each one's (own words, expression words)
    shares: most of the word's own look first, then most of the expression, then the
    earliest (a sticker that is not the word is worse than one with another face)."""
    return max(range(len(shares)), key=lambda i: (shares[i], -i))


def _score(shares: tuple[float, float]) -> float:
    """One number for a kept sticker, 0..1: the word's own share counts twice the
    expression's."""
    own_share, expression_share = shares
    return (2 * own_share + expression_share) / 3
