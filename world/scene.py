"""The sticker world's vocabulary, scene descriptions, random sampling and captions.

A caption always names an object's shape, rough colour, size and position, the background and
the named styles. Some of the time (training captions only) it also names fine features: a
character's exact hue band, eyes, ears, mouth and marks, a shape's pattern and its colour, and
the sepia style, so that text conditioning reaches every feature a learned word may need. No
caption ever names a reserved concept as a whole (at most three of a character's five fine
features at once, never the reserved object's pattern colour with its pattern, never duotone),
so the reserved concepts can only be reached by learning a new word for them.
"""

from __future__ import annotations

import colorsys
import random
from dataclasses import dataclass, field, replace

SHAPES = ("circle", "square", "triangle", "star", "heart", "diamond")
CHARACTERS = ("creature", "face")
KINDS = SHAPES + CHARACTERS
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 90, 225),
    "yellow": (245, 215, 40),
    "purple": (145, 60, 195),
    "orange": (250, 140, 25),
    "white": (248, 248, 248),
    "black": (25, 25, 25),
}
SIZES: dict[str, float] = {"small": 0.19, "big": 0.31}  # object width as a fraction of the image
POSITIONS: dict[str, float] = {"left": 0.2, "center": 0.5, "right": 0.8}  # x of the centre
POSITION_PHRASES = {"left": "on the left", "center": "in the center", "right": "on the right"}
BACKGROUNDS = ("grass", "sky", "sand", "night", "snow", "brick")
NAMED_STYLES = ("pixel", "outline", "pastel")
FINE_STYLES = ("sepia",)  # named only by some training captions
UNNAMED_STYLES = ("sepia", "duotone")  # canonical captions never name these
STYLES = NAMED_STYLES + UNNAMED_STYLES
PATTERNS = ("stripes", "dots", "split")  # named only by some training captions
EYES = ("dots", "big", "sleepy")
EARS = ("none", "round", "pointy")
MOUTHS = ("smile", "open", "flat")
CREATURE_MARKS = ("none", "spots", "belly")
# A face's identity: its hair's style and colour, glasses and beard (besides hue, eyes, mouth).
HAIR_STYLES = ("short", "long", "spiky", "bald")
HAIR_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (30, 25, 28),
    "brown": (120, 70, 30),
    "blond": (245, 215, 120),
    "ginger": (225, 100, 25),
    "white": (240, 240, 240),
}
GLASSES = ("none", "round")
BEARDS = ("none", "full")

# Hue ranges (0..1) that a caption calls by a rough colour name; characters get a continuous hue.
_HUE_NAMES = (
    (0.00, "red"), (0.05, "orange"), (0.12, "yellow"), (0.20, "green"),
    (0.50, "blue"), (0.72, "purple"), (0.92, "red"),
)
# Finer hue bands, named by some training captions in place of the rough colour word.
FINE_HUES = (
    (0.00, "crimson"), (0.06, "amber"), (0.13, "gold"), (0.20, "lime"), (0.30, "emerald"),
    (0.41, "teal"), (0.54, "azure"), (0.63, "indigo"), (0.72, "violet"), (0.82, "magenta"),
    (0.91, "rose"),
)
# Words for a character's fine features (one token each); a feature value missing here is
# never named (a creature without marks).
EYE_WORDS = {"dots": "beady", "big": "wideeyed", "sleepy": "sleepy"}
EAR_WORDS = {"none": "earless", "round": "roundeared", "pointy": "pointyeared"}
MOUTH_WORDS = {"smile": "smiling", "open": "gaping", "flat": "stern"}
MARK_WORDS = {"spots": "spotted", "belly": "bellied"}
HAIR_WORDS = {"short": "cropped", "long": "longhaired", "spiky": "spiky", "bald": "bald"}
HAIR_COLOUR_WORDS = {"black": "blackhaired", "brown": "brownhaired", "blond": "blond",
                     "ginger": "ginger", "white": "whitehaired"}
GLASSES_WORDS = {"round": "bespectacled"}
BEARD_WORDS = {"full": "bearded"}
# A character's discrete features and the words that name their values.
CHARACTER_WORDS = {"eyes": EYE_WORDS, "ears": EAR_WORDS, "mouth": MOUTH_WORDS,
                   "marks": MARK_WORDS, "hair_colour": HAIR_COLOUR_WORDS, "hair": HAIR_WORDS,
                   "glasses": GLASSES_WORDS, "beard": BEARD_WORDS}
CREATURE_ONLY = ("ears", "marks")
FACE_ONLY = ("hair_colour", "hair", "glasses", "beard")
PATTERN_WORDS = {"stripes": "stripes", "dots": "dots", "split": "halves"}  # "with blue stripes"
CHARACTER_FEATURES = ("hue", "eyes", "ears", "mouth", "marks")
PERSON_FEATURES = ("hue", "eyes", "mouth") + FACE_ONLY  # what makes a face someone
MAX_FINE_FEATURES = 3  # never all five: the reserved creature stays unnameable as a whole
# Share of training-caption objects (and sepia scenes) whose fine words appear: 0.5 up to UNet
# step ~19,900, then 0.8, as the fine words were followed no better at 19,000 steps than at 17,617.
FINE_RATE = 0.8
MAX_CAPTION_WORDS = 36  # the bundled model reads 40 tokens, two of them start and end


@dataclass(frozen=True)
class Features:
    """Fine features of a creature or face that the plain captions never name. Hair, glasses
    and beard are a face's only (a creature is drawn without them). A face without a hair
    colour has no identity: its hair is a dark shade of its skin and no caption names it, as
    every face was drawn before faces had an identity (`has_identity`)."""

    hue: float
    eyes: str
    ears: str
    mouth: str
    marks: str
    eye_size: float = 1.0
    hair: str = "short"
    hair_colour: str | None = None
    glasses: str = "none"
    beard: str = "none"


@dataclass(frozen=True)
class WorldObject:
    """One object of a scene: what a caption says of it plus what it does not."""

    kind: str
    colour: str
    size: str
    position: str
    rgb: tuple[int, int, int]
    jitter: tuple[float, float, float] = (0.0, 0.0, 1.0)  # dx, dy (fractions), scale factor
    pattern: str | None = None
    pattern_rgb: tuple[int, int, int] | None = None
    features: Features | None = None


@dataclass(frozen=True)
class Scene:
    """A full scene description; rendering it is deterministic."""

    objects: tuple[WorldObject, ...]
    background: str
    style: str | None = None
    seed: int = 0  # background details (clouds, stars, bricks offset)
    tags: tuple[str, ...] = field(default=())  # e.g. names of reserved concepts shown

    def object_at(self, position: str) -> WorldObject | None:
        """The object standing at a position, if any."""
        return next((o for o in self.objects if o.position == position), None)


def hue_name(hue: float) -> str:
    """Rough colour word for a hue, as a caption would say it."""
    name = "red"
    for start, word in _HUE_NAMES:
        if hue >= start:
            name = word
    return name


def fine_hue_name(hue: float) -> str:
    """The fine hue-band word of a character's hue ('teal')."""
    name = FINE_HUES[0][1]
    for start, word in FINE_HUES:
        if hue % 1.0 >= start:
            name = word
    return name


def hue_rgb(hue: float, saturation: float = 0.65, value: float = 0.9) -> tuple[int, int, int]:
    """RGB of a character's body colour."""
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return (round(r * 255), round(g * 255), round(b * 255))


# ---------------------------------------------------------------------------------------------
# Reserved concepts: exact points that no caption can name.

RESERVED_CREATURE = Features(hue=0.47, eyes="big", ears="pointy", mouth="open", marks="spots",
                             eye_size=1.15)
RESERVED_OBJECT = ("diamond", "stripes", COLOURS["orange"], COLOURS["blue"])  # kind, pattern, rgbs
RESERVED_STYLE = "duotone"
RESERVED_HUE_TOLERANCE = 0.06  # a creature this close in hue has the reserved creature's hue
# The reserved person: a violet face with long ginger hair, round glasses, beady eyes and a
# smile. Each part is drawn on other faces and named alone, never all together.
RESERVED_PERSON = Features(hue=0.77, eyes="dots", ears="none", mouth="smile", marks="none",
                           hair="long", hair_colour="ginger", glasses="round", beard="none")
RESERVED = ("creature", "object", "style", "person")


def reserved_creature(size: str = "big", position: str = "center") -> WorldObject:
    """The one exact creature users learn as a new word."""
    f = RESERVED_CREATURE
    return WorldObject("creature", hue_name(f.hue), size, position, hue_rgb(f.hue), features=f)


def reserved_object(size: str = "big", position: str = "center") -> WorldObject:
    """The one exact patterned object users learn as a new word."""
    kind, pattern, rgb, pattern_rgb = RESERVED_OBJECT
    return WorldObject(kind, "orange", size, position, rgb, pattern=pattern,
                       pattern_rgb=pattern_rgb)


def reserved_person(size: str = "big", position: str = "center") -> WorldObject:
    """The one exact person users learn as a new word (from portraits)."""
    f = RESERVED_PERSON
    return WorldObject("face", hue_name(f.hue), size, position, hue_rgb(f.hue), features=f)


def near_miss_person(rng: random.Random, size: str = "big", position: str = "center"
                     ) -> WorldObject:
    """The reserved person with one identity part changed (hue moved out of the band)."""
    changed = one_part_changed(RESERVED_PERSON, PERSON_FEATURES, rng)
    return WorldObject("face", hue_name(changed.hue), size, position, hue_rgb(changed.hue),
                       features=changed)


def is_reserved_person(features: Features | None) -> bool:
    """Whether a face's identity parts and hue band are those of the reserved person."""
    r = RESERVED_PERSON
    if features is None:
        return False
    parts = ("eyes", "mouth") + FACE_ONLY
    same = all(getattr(features, part) == getattr(r, part) for part in parts)
    return same and abs(features.hue - r.hue) < RESERVED_HUE_TOLERANCE


def one_part_changed(reserved: Features, parts: tuple[str, ...], rng: random.Random
                     ) -> Features:
    """`reserved` with one of `parts` changed: the hue moved out of the reserved band, any
    other part set to another of its values."""
    part = rng.choice(parts)
    if part == "hue":
        return replace(reserved, hue=(reserved.hue + rng.choice((-1, 1))
                                      * rng.uniform(0.08, 0.2)) % 1.0)
    options = {"eyes": EYES, "ears": EARS, "mouth": MOUTHS, "marks": CREATURE_MARKS,
               "hair": HAIR_STYLES, "hair_colour": tuple(HAIR_COLOURS), "glasses": GLASSES,
               "beard": BEARDS}[part]
    return replace(reserved, **{part: rng.choice(
        [v for v in options if v != getattr(reserved, part)])})


def near_miss_creature(rng: random.Random, size: str = "big", position: str = "center"
                       ) -> WorldObject:
    """The reserved creature with one of its fine features changed (its hue moved out of the
    reserved band): what a judge of the reserved creature must tell apart from it."""
    changed = one_part_changed(RESERVED_CREATURE, CHARACTER_FEATURES, rng)
    return WorldObject("creature", hue_name(changed.hue), size, position, hue_rgb(changed.hue),
                       features=changed)


def near_miss_object(rng: random.Random, size: str = "big", position: str = "center"
                     ) -> WorldObject:
    """The reserved object with one part changed: its shape, colour, pattern or pattern
    colour."""
    obj = reserved_object(size, position)
    part = rng.choice(("kind", "colour", "pattern", "pattern_colour"))
    if part == "kind":
        return replace(obj, kind=rng.choice([k for k in SHAPES if k != obj.kind]))
    if part == "pattern":
        return replace(obj, pattern=rng.choice([p for p in PATTERNS if p != obj.pattern]))
    others = [c for c in COLOURS if COLOURS[c] not in (obj.rgb, obj.pattern_rgb)]
    colour = rng.choice(others)
    if part == "colour":
        return replace(obj, colour=colour, rgb=COLOURS[colour])
    return replace(obj, pattern_rgb=COLOURS[colour])


def is_reserved_creature(features: Features | None) -> bool:
    """Whether a character's discrete features and hue band are those of the reserved creature."""
    r = RESERVED_CREATURE
    if features is None:
        return False
    same = (features.eyes, features.ears, features.mouth, features.marks) == (
        r.eyes, r.ears, r.mouth, r.marks)
    return same and abs(features.hue - r.hue) < RESERVED_HUE_TOLERANCE


# ---------------------------------------------------------------------------------------------
# Sampling


def random_object(rng: random.Random, position: str, *, allow_characters: bool = True,
                  allow_patterns: bool = True, identities: bool = False) -> WorldObject:
    """A random object at a position, its fine details drawn continuously; a face has an
    identity with `identities` (the default stays the world the bundled model and checker
    learned until they learn faces' identities)."""
    kinds = KINDS if allow_characters else SHAPES
    kind = rng.choice(kinds)
    size = rng.choice(tuple(SIZES))
    jitter = (rng.uniform(-0.03, 0.03), rng.uniform(-0.06, 0.06), rng.uniform(0.9, 1.1))
    if kind in CHARACTERS:
        hue = rng.random()
        features = Features(hue=hue, eyes=rng.choice(EYES), ears=rng.choice(EARS),
                            mouth=rng.choice(MOUTHS), marks=rng.choice(CREATURE_MARKS),
                            eye_size=rng.uniform(0.8, 1.2))
        if kind == "face":
            features = replace(features, ears="none", marks="none")
            if identities:
                features = face_identity(features)
        return WorldObject(kind, hue_name(hue), size, position, hue_rgb(hue), jitter,
                           features=features)
    colour = rng.choice(tuple(COLOURS))
    base = COLOURS[colour]
    rgb = tuple(max(0, min(255, c + rng.randint(-12, 12))) for c in base)
    pattern = pattern_rgb = None
    if allow_patterns and rng.random() < 0.2:
        pattern = rng.choice(PATTERNS)
        pattern_rgb = COLOURS[rng.choice([c for c in COLOURS if c != colour])]
    return WorldObject(kind, colour, size, position, rgb, jitter, pattern, pattern_rgb)


def has_identity(features: Features | None) -> bool:
    """Whether a face has hair, glasses and beard of its own (they are drawn and named)."""
    return features is not None and features.hair_colour is not None


def face_identity(features: Features) -> Features:
    """A face's hair, glasses and beard, drawn from a generator seeded by its own hue and eye
    size: the world's random streams stay as they were before faces had an identity, so every
    scene a seed gave (held-out scenes, benchmark seeds) is the same scene, its faces now with
    hair, glasses and beards."""
    rng = random.Random(f"face-{features.hue!r}-{features.eye_size!r}")
    hair = rng.choice(HAIR_STYLES)
    return replace(features, hair=hair, hair_colour=rng.choice(tuple(HAIR_COLOURS)),
                   glasses=rng.choice(GLASSES), beard="full" if rng.random() < 0.3 else "none")


def random_group(rng: random.Random) -> Scene:
    """A group photo: two or three faces side by side, sometimes one other thing beside two."""
    count = rng.choice((2, 2, 3))
    positions = rng.sample(tuple(POSITIONS), count)
    objects = []
    for position in positions:
        obj = random_object(rng, position, identities=True)
        while obj.kind != "face":
            obj = random_object(rng, position, identities=True)
        objects.append(obj)
    free = [p for p in POSITIONS if p not in positions]
    if free and rng.random() < 0.4:
        objects.append(random_object(rng, free[0], allow_characters=False))
    style = rng.choice(STYLES) if rng.random() < 0.15 else None
    return Scene(tuple(sorted(objects, key=lambda o: POSITIONS[o.position])),
                 rng.choice(BACKGROUNDS), style, rng.randrange(1 << 30))


def random_scene(rng: random.Random, *, max_objects: int = 3, style_probability: float = 0.3,
                 allow_characters: bool = True, identities: bool = False) -> Scene:
    """A random scene of 1..max_objects objects at distinct positions (faces with an identity
    with `identities`)."""
    count = rng.randint(1, max_objects)
    positions = rng.sample(tuple(POSITIONS), count)
    objects = tuple(sorted((random_object(rng, p, allow_characters=allow_characters,
                                          identities=identities)
                            for p in positions), key=lambda o: POSITIONS[o.position]))
    style = rng.choice(STYLES) if rng.random() < style_probability else None
    return Scene(objects, rng.choice(BACKGROUNDS), style, rng.randrange(1 << 30))


# ---------------------------------------------------------------------------------------------
# Captions (one small grammar)


def fine_words(obj: WorldObject, fine: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Words naming an object's fine features in `fine` (see CHARACTER_FEATURES, 'pattern'),
    split into adjectives (before the kind) and a trailing pattern phrase ('with blue stripes').
    'hue' is not among them: it replaces the colour word (see `object_words`)."""
    f = obj.features
    adjectives: list[str] = []
    if f is not None:
        for feature, words in CHARACTER_WORDS.items():
            word = words.get(getattr(f, feature))
            if feature in fine and word is not None:
                adjectives.append(word)
    trailing: list[str] = []
    if "pattern" in fine and obj.pattern:
        trailing = ["with", colour_word(obj.pattern_rgb), PATTERN_WORDS[obj.pattern]]
        if is_reserved_object_look(obj):
            trailing = ["with", PATTERN_WORDS[obj.pattern]]  # never the whole reserved object
    return adjectives, trailing


def colour_word(rgb: tuple[int, int, int] | None) -> str:
    """The colour name of one of the palette's exact colours (pattern colours are exact)."""
    return next((name for name, value in COLOURS.items() if value == rgb), "white")


def is_reserved_object_look(obj: WorldObject) -> bool:
    """Whether an object has the reserved object's kind, colour name and pattern."""
    kind, pattern, _, pattern_rgb = RESERVED_OBJECT
    return (obj.kind, obj.colour, obj.pattern, obj.pattern_rgb) == (
        kind, "orange", pattern, pattern_rgb)


def object_words(obj: WorldObject, *, with_size: bool = True, with_colour: bool = True,
                 word: str | None = None, fine: tuple[str, ...] = ()) -> list[str]:
    """['a', 'big', 'red', 'circle', 'on', 'the', 'left']: an object's phrase as words.

    `word` replaces colour and kind (a learned concept); `fine` names fine features."""
    words = ["a"]
    if with_size:
        words.append(obj.size)
    if word is not None:
        words.append(word)
    else:
        if "hue" in fine and obj.features is not None:
            words.append(fine_hue_name(obj.features.hue))
        elif with_colour:
            words.append(obj.colour)
        adjectives, trailing = fine_words(obj, fine)
        words += adjectives + [obj.kind] + trailing
    return words + POSITION_PHRASES[obj.position].split()


def full_description(obj: WorldObject) -> str:
    """Everything the world's words say of one object, without size or place: "teal wideeyed
    pointyeared gaping spotted creature", "orange diamond with blue stripes".

    Never a training caption (those name at most MAX_FINE_FEATURES of a character's features
    and never the reserved object whole), so the model has not learned these words together:
    learning a new word starts from them and finds what they miss."""
    adjectives, _ = fine_words(obj, nameable_features(obj))
    colour = fine_hue_name(obj.features.hue) if obj.features is not None else obj.colour
    words = [colour, *adjectives, obj.kind]
    if obj.pattern:
        words += ["with", colour_word(obj.pattern_rgb), PATTERN_WORDS[obj.pattern]]
    return " ".join(words)


def nameable_features(obj: WorldObject) -> tuple[str, ...]:
    """The fine features a caption could name for an object (a face has no ears or marks)."""
    if obj.features is None:
        return ("pattern",) if obj.pattern else ()
    names = ["hue"]
    f = obj.features
    for name, table in CHARACTER_WORDS.items():
        if name in (CREATURE_ONLY if obj.kind == "face" else FACE_ONLY):
            continue
        if name in FACE_ONLY and not has_identity(f):
            continue
        if name == "hair_colour" and f.hair == "bald" and f.beard == "none":
            continue  # no hair to see the colour of
        if getattr(f, name) in table:
            names.append(name)
    return tuple(names)


def pick_fine(obj: WorldObject, rng: random.Random, rate: float = FINE_RATE) -> tuple[str, ...]:
    """A random choice of fine features to name: none with probability 1 - rate, else one to
    MAX_FINE_FEATURES of those the object has."""
    options = nameable_features(obj)
    if not options or rng.random() >= rate:
        return ()
    count = rng.randint(1, min(MAX_FINE_FEATURES, len(options)))
    return tuple(sorted(rng.sample(options, count), key=options.index))


def caption(scene: Scene, rng: random.Random | None = None,
            words: dict[str, str] | None = None) -> str:
    """The scene's caption in the grammar.

    With `rng`, a training variant: objects may be shuffled, sizes or colours left out and fine
    features named, so that short prompts such as "a <concept> on the left with sky background"
    are in-distribution. `words` maps a position to a word that replaces that object's colour
    and kind.
    """
    return grounded_caption(scene, rng, words)[0]


def grounded_caption(scene: Scene, rng: random.Random | None = None,
                     words: dict[str, str] | None = None,
                     fine: dict[str, tuple[str, ...]] | None = None,
                     ) -> tuple[str, dict[str, list[int]]]:
    """`caption` plus, per object position, the indices (in `text.split()`) of the words that
    name that object: its size, colour, fine features and kind (or its replacing word).
    Training grounds these words' cross-attention in the object's mask; the model card
    measures the same words. `fine` chooses the fine features to name per position (with an
    rng and without `fine`, they are drawn at random)."""
    objects = list(scene.objects)
    if rng is not None and rng.random() < 0.3:
        rng.shuffle(objects)
    choices = dict(fine or {})
    if rng is not None and fine is None:
        choices = {obj.position: pick_fine(obj, rng) for obj in objects}
    phrases, grounding, offset = [], {}, 0
    for obj in objects:
        with_size = rng is None or rng.random() > 0.3
        with_colour = rng is None or rng.random() > 0.15
        phrase = object_words(obj, with_size=with_size, with_colour=with_colour,
                              word=(words or {}).get(obj.position),
                              fine=choices.get(obj.position, ()))
        naming = len(phrase) - len(POSITION_PHRASES[obj.position].split())
        grounding[obj.position] = list(range(offset + 1, offset + naming))  # after "a"
        phrases.append(" ".join(phrase))
        offset += len(phrase) + 1  # the phrase and the "and" after it
    text = " and ".join(phrases) + f" with {scene.background} background"
    if scene.style in NAMED_STYLES or (
            scene.style in FINE_STYLES and rng is not None and rng.random() < FINE_RATE):
        text += f" in {scene.style} style"
    if rng is not None and fine is None and len(text.split()) > MAX_CAPTION_WORDS:
        return grounded_caption(scene, None, words)  # too long for the model: the plain one
    return text, grounding


def base_vocabulary() -> list[str]:
    """The coarse grammar's words: the tokenizer's first words, in a fixed order."""
    words = {"a", "and", "with", "background", "in", "style", "on", "the", "picture", "of"}
    words.update(KINDS, COLOURS, SIZES, POSITIONS, BACKGROUNDS, NAMED_STYLES)
    return sorted(words)


def fine_vocabulary() -> list[str]:
    """The fine-feature words, appended after the base words so that a model trained on the
    coarse grammar keeps its token ids and can be warm-started."""
    words = {word for _, word in FINE_HUES} | set(FINE_STYLES)
    for table in (EYE_WORDS, EAR_WORDS, MOUTH_WORDS, MARK_WORDS, PATTERN_WORDS):
        words.update(table.values())
    return sorted(words - set(base_vocabulary()))


def person_vocabulary() -> list[str]:
    """The words of a face's identity, appended after the fine words (a third tier, so that
    a model trained before faces had an identity keeps its token ids)."""
    words = set()
    for table in (HAIR_WORDS, HAIR_COLOUR_WORDS, GLASSES_WORDS, BEARD_WORDS):
        words.update(table.values())
    return sorted(words - set(base_vocabulary()) - set(fine_vocabulary()))


def vocabulary() -> list[str]:
    """Every word the grammar can produce."""
    return base_vocabulary() + fine_vocabulary() + person_vocabulary()
