"""Every tunable default of the engine, in one place.

The defaults aim at chat latency; the papers' reference settings are one call away
(`InversionSettings.reference()`, `ConceptSettings.reference()`) for benchmarks and for
users who prefer fidelity over speed.
"""

from __future__ import annotations

from dataclasses import dataclass

from oneword.limits import LEARN_PHOTOS
from oneword.modes import INVERSION_MODES  # noqa: F401 - named there, implemented in inversion.py


@dataclass(frozen=True)
class InversionSettings:
    """DDIM / null-text / negative-prompt inversion of a photo."""

    steps: int = 50
    guidance: float = 7.5
    inner_steps: int = 10  # null-text: Adam steps per timestep, at most
    learning_rate: float = 1e-2  # null-text: decays linearly to half over the trajectory
    early_stop: float = 1e-5  # null-text: stop a timestep's optimisation below this loss ...
    early_stop_growth: float = 1e-3  # ... plus this times the fraction of the trajectory done

    @classmethod
    def reference(cls) -> InversionSettings:
        """Null-text inversion as published: 50 steps, guidance 7.5, 10 inner steps, lr 1e-2,
        stop under 1e-5 + 2e-5 per step."""
        return cls(steps=50, guidance=7.5, inner_steps=10, learning_rate=1e-2, early_stop=1e-5,
                   early_stop_growth=50 * 2e-5)


@dataclass(frozen=True)
class EditSettings:
    """Prompt-to-prompt editing."""

    cross_replace: float = 0.8  # fraction of steps whose cross-attention comes from the source
    # replace with a learned word: the replaced words' maps place it only early on, then its own
    # attention draws its own shape (its tokens would otherwise trace the old object's outline)
    concept_cross_replace: float = 0.4
    self_replace: float = 0.4  # fraction of steps whose self-attention comes from the source
    blend_threshold: float = 0.3  # LocalBlend: mask where normalised attention exceeds this
    # ... and where a learned word comes in (add, replace): its several tokens' summed attention
    # is flatter than one word's and its shape is not the old object's, so at 0.3 the mask cut
    # off what it drew outside the old outline (a patterned object's bands and body, replaced
    # with the photo's pixels). Bundled model, four learning seeds, replaces and adds of scenes
    # 20-39: 0.3 / 0.2 / 0.15 / 0.1 right in 48 / 58 / 59 / 58%; 0.15 on 40-59: 38 -> 43%.
    concept_blend_threshold: float = 0.15
    # ... and lower still where a learned word replaces a thing, whose outline the new shape
    # leaves. Bundled model, ddim inversion (the replace's), four learning seeds, 40 replaces
    # per concept, 0.15 -> 0.1: right in 50 -> 58 of 80 on the benchmark's scenes and 45 -> 48
    # on scenes 20-39; the patterned object's shape and pattern 69 -> 73 of 80 on both. The
    # wider mask costs background: 35.3 -> 34.0 dB (seed 0, the benchmark's 20 replaces).
    concept_replace_blend_threshold: float = 0.1
    blend_start: float = 0.2  # LocalBlend: applied after this fraction of steps
    # restyle: the source's attention, at every layer, for this fraction of the steps only. The
    # layout is set early; held longer, the attention also keeps the photo's own tint and the
    # new style does not take (0.8 -> 0.2: 45% -> 85% of held-out restyles on the bundled
    # model; the model card has the sweep). Some hold stays for larger models, whose inversions
    # drift further from the photo's layout without it.
    restyle_cross_replace: float = 0.2
    restyle_self_replace: float = 0.2
    # restyle: the restyled branch starts from the inverted noise without its per-channel mean.
    # SD's schedule leaves a picture's mean colour in its latent even at the last step, so the
    # inverted noise of a dark photo is dark and the new style came out dark and brown there;
    # without the mean, the tint is the style's to set and the layout stays in the noise.
    # Bundled model, four style seeds, ddim restyles: 68 -> 86% on scenes 20-39, 72 -> 86% on
    # 40-59, 65 -> 76% on the benchmark's scenes. Only after ddim and direct inversion: null-text's
    # and fast's unconditional branch is fitted to the photo and pulls its tint back (benchmark,
    # seed 0: null-text 65 -> 60%, fast 65 -> 20%).
    restyle_neutral_start: bool = True
    # add: the caption's other words keep the source's maps only early on. Held longer, the
    # background's map holds the free place as background and the new thing comes out small or
    # not at all (LocalBlend keeps the rest of the photo anyway). Bundled model, four learning
    # seeds, 40 adds of scenes 20-39 (ddim inversion, 15 steps): held 0.8 / 0.4 / 0.2 / 0.1 / 0
    # of the steps, right in 53 / 63 / 66 / 66 / 63%; 0.2 on scenes 40-59: 41 -> 50%. At the
    # default 50 steps after direct inversion (OneWord's default) 0.2 still beats 0.4 (61%
    # against 56%), although after ddim inversion there 0.4 did better (60% against 52.5%).
    add_cross_replace: float = 0.2
    remove_self_replace: float = 0.0  # remove: the source's self-attention would redraw it
    # remove: the removed word's mask, grown by this many latent pixels, and the other words'
    # source maps not held at all. The word's attention at the blend threshold misses the
    # object's rim, and a rim left in the photo's latents comes back as specks of the object's
    # colour around a ghost of its outline; the other words' maps, held, kept that ghost too.
    # Bundled model, 15 steps, removals read as gone: ddim inversion, scenes 20-59, 87.5% as
    # held 0.3 ungrown, 90% held 0, 92.5% grown 1 and held 0.3, 100% grown 1 and held 0 (also
    # after direct inversion, and on the benchmark's scenes 0-19 after both, against 80% / 75%);
    # after direct inversion at 50 steps, scenes 0-59: 85% -> 100%.
    remove_mask_growth: int = 1
    remove_cross_replace: float = 0.0
    # A subject the caption does not name (the user's word, added to the source prompt) must
    # find something: its attention's share on its own top quarter of the pixels (0.25 for an
    # even map, near 1 on one object) at least this, else the edit is refused with advice.
    subject_min_focus: float = 0.4
    # ... and the caption's words whose attention lies where its does (cosine of the maps at
    # least this) name the same thing: the edited branch stops drawing them there.
    subject_overlap: float = 0.8
    seed: int = 0  # 0: the edit as planned; others: variations of it
    variation: float = 0.3  # how far a non-zero seed moves the edited branch's start
    # direct inversion: also add the source branch's per-step correction to the edited branch
    # (off, as published: on 30 bundled-model edits it cost 1.4 dB of background PSNR)
    anchor_edited: bool = False


@dataclass(frozen=True)
class ConceptSettings:
    """Textual inversion."""

    steps: int = 600
    learning_rate: float = 5e-3
    batch_size: int = 4
    # Tokens per word. Two held a patterned object's shape and pattern but not its colours
    # (a striped object of two colours came out black and white); four hold both more often.
    vectors: int = 4
    # A style's word sets one overall look, but it must hold it beside any caption of content:
    # learned from the two-tone samples and asked for beside the benchmark's 20 captions, two
    # tokens drew it in 0.15, four in 0.50, eight in 0.80 (0.65 and 0.60 with other seeds); the
    # longest caption of the bundled model's grammar still fits beside eight (a model that reads
    # fewer tokens gets fewer: `textual_inversion.word_length`).
    style_vectors: int = 8
    # A word started from a description (the captioner's words for the subject, or the user's)
    # gets one token per token of it, up to this many: each starts at one describing word.
    description_vectors: int = 8
    augment: int = 4  # cached latents per image: the image, its mirror and crops
    early_stop_window: int = 100  # stop when the probe loss has not improved for this many steps
    early_stop_tolerance: float = 0.01  # relative improvement that counts as improving
    check_every: int = 20  # steps between scorings of the fixed probe (at most the window)
    # A style's draws take timesteps from this fraction of the schedule up: a picture's overall
    # look (its tint above all) is set while it is still mostly noise, and at lower noise the
    # noisy latent itself shows the look, so those draws teach the word nothing about it.
    style_timesteps_from: float = 0.7
    # A style's draws add a per-channel constant of this std to the noise ("offset noise"): the
    # noisy latent's overall tint then no longer tells the photo's, so the word has to set it,
    # as it must when restyling a photo of another tint. On the two-tone samples (one seed, 20
    # edits, the bundled model trained with 0.1): benchmark restyles 25% -> 50-55%; the word
    # beside the benchmark's captions 1.00 (0.80 without, judged by the checker before its
    # VAE fine-tune); 0.3 lost the style (0.10).
    style_noise_offset: float = 0.1
    # A style's word learns faster and for all its steps. Its loss, drawn at high noise only,
    # barely tells the look it starts from (a brown tint, for the two-tone samples) from the
    # one it should find, so the probe levelled off while the word still drew brown on dark scenes
    # and early stopping kept it there. Over four seeds on the bundled model (ddim restyles):
    # 0.005 with early stop 38% of the benchmark's scenes and 36% of scenes 20-39; 0.015 to
    # the last step 65% and 68%; 0.03 did worse on the one seed tried (40%).
    style_learning_rate: float = 0.015
    style_early_stop_window: int = 0  # 0: a style never stops early
    preview_every: int = 0  # steps between preview images (0: none)
    preview_steps: int = 10  # DDIM steps of a preview image
    seed: int = 0
    # Candidate words learned together in one batch, each from its own draws (seed + k * 7919)
    # and start noise, each stopping on its own; the self-check keeps the one drawn most like
    # the photos (engine/self_check.py), else the lowest probe loss wins. K candidates cost K
    # times the steps' time. On the bundled model over learning seeds 0-3 (recognised in 12
    # drawings), 2 candidates judged by the captioner's 8 drawings each moved the character
    # from 0.875 mean (lowest 0.833) to 0.896 (0.750) and the object from 0.562 (0.417) to
    # 0.542 (0.417), at twice the time (24 s -> 49 s with the self-check): so one.
    candidates: int = 1
    # A word the self-check finds drawn like the photos in fewer than `redraw_below` of its
    # tries is learned once more from another draw (seed + 1000 * attempt), up to `redraws`
    # times, and the one drawn most like the photos is kept: only an unlucky draw pays twice.
    # On the bundled model it has not fired yet: over learning seeds 0-7 the self-check scored
    # the character's and the patterned thing's words 5-8 of 8, seed 5's character too, which
    # the benchmark's scene prompt shows in 0 of 12; the check draws the word alone, so it
    # cannot see a word that fails beside other words.
    redraws: int = 1
    redraw_below: float = 0.5
    # The share of training draws that pair a photo with one of the captioner's contexts for
    # its subject (engine.captioning.Subject.contexts: worded as an add words it, beside other
    # things) instead of its own caption. None by default: on the bundled model, over learning
    # seeds 0-7 (benchmark's seeds part), it cured the one word that held only beside a size
    # word (seed 5's character, recognised 0-17% -> 58-75%), but the mean of the six figures
    # fell with the share (0.25: 68%, 0.5: 66%, 0.75: 62%, against 64% and 71% for the same
    # learning from two other streams of draws, which shows how far the draw alone moves them).
    context_share: float = 0.0
    min_images: int = LEARN_PHOTOS.least  # the bot's rule too (oneword/limits.py)
    max_images: int = LEARN_PHOTOS.most
    consistency_threshold: float = 0.05  # typical colour overlap under which photos look unrelated
    strict: bool = False  # raise InconsistentImagesError instead of warning

    def vectors_for(self, kind: str) -> int:
        """How many tokens a word of this kind ("object", "person" or "style") gets."""
        return self.style_vectors if kind == "style" else self.vectors

    def learning_rate_for(self, kind: str) -> float:
        """The learning rate of a word of this kind."""
        return self.style_learning_rate if kind == "style" else self.learning_rate

    def early_stop_window_for(self, kind: str) -> int:
        """Steps without improvement after which a word of this kind stops (0: never)."""
        return self.style_early_stop_window if kind == "style" else self.early_stop_window

    @classmethod
    def reference(cls) -> ConceptSettings:
        """The reference recipe: 3000 steps, no early stop, no latent caching."""
        return cls(steps=3000, learning_rate=5e-3, style_learning_rate=5e-3, vectors=1,
                   style_vectors=1, description_vectors=1, augment=0, early_stop_window=0)


@dataclass(frozen=True)
class CheckSettings:
    """The photo check before learning and the self-check after it (engine/likeness.py,
    engine/self_check.py)."""

    tries: int = 8  # drawings of a learned word the self-check judges (0: no self-check)
    steps: int = 15  # DDIM steps of each drawing
    guidance: float = 7.5
    # Caption judge: the share of the photos' common subject words a drawing must show to count
    # as alike (1: all of them, as the benchmark's checker asks of a reserved concept), and
    # under which a photo shows something else than the other photos (1: one word of them
    # missing is enough, so the same thing in another colour is caught too).
    words_alike: float = 1.0
    words_odd: float = 1.0
    # Embedding judge: cosine to the photos' mean embedding, relative to the photos' own.
    embedding_alike: float = 0.9
    embedding_odd: float = 0.8
