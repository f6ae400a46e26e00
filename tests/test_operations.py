"""Edit requests -> prompt edits -> edited images, with learned concepts, on a tiny model."""

from __future__ import annotations

import gc

import pytest
import torch

from engine.concept_tokens import concepts_in_use
from engine.concepts import Concept
from engine.config import InversionSettings
from engine.errors import InversionError, PromptError
from engine.operations import Editor, EditRequest, plan_edit
from tests.pictures import test_photo

CAPTION = "a photo of a red dog sitting"


@pytest.mark.parametrize("fields, problem", [
    ({"action": "paint", "concept": "mochi"}, "unknown edit action"),
    ({"action": "replace", "concept": "mochi"}, "needs a subject"),
    ({"action": "remove"}, "needs a subject"),
    ({"action": "add"}, "needs a concept"),
    ({"action": "add", "concept": "mochi", "position": "above"}, "unknown position"),
])
def test_malformed_requests_are_typed_errors(fields, problem):
    with pytest.raises(PromptError, match=problem):
        EditRequest(**fields)


@pytest.fixture(scope="module")
def mochi(tiny_model):
    return Concept("mochi", "object", torch.randn(2, tiny_model.text_width), 10,
                   tiny_model.source)


def plan(model, caption, action, concepts=(), **fields):
    with concepts_in_use(model, concepts):
        return plan_edit(model, caption, EditRequest(action, **fields),
                         {c.name: c for c in concepts})


def test_captions_are_edited_word_by_word(tiny_model):
    caption = "a photo of a dog sitting"
    swap = plan(tiny_model, caption, "replace", subject="dog", concept="cat")
    assert swap.target == "a photo of a cat sitting"
    removal = plan(tiny_model, caption, "remove", subject="dog")
    assert removal.reweight == {"dog": -1.0} and removal.target == caption
    assert plan(tiny_model, caption, "add", concept="hat").target == caption + " and a hat"
    placed = plan(tiny_model, caption, "add", concept="hat", position="left")
    assert placed.target == caption + " and a hat on the left"
    assert plan(tiny_model, caption, "restyle", concept="painting").target == (
        caption + " in painting style")


def test_edits_that_cannot_be_planned_say_why(tiny_model):
    with pytest.raises(PromptError, match="neither a learned concept nor a word"):
        plan(tiny_model, "a photo of a dog", "add", concept="zorblax")
    with pytest.raises(PromptError, match="'horse' is not in the edit's source prompt"):
        plan(tiny_model, "a photo of a dog", "replace", subject="horse", concept="cat")


def live_tensor_bytes() -> int:
    gc.collect()
    return sum(t.numel() * t.element_size() for t in gc.get_objects()
               if isinstance(t, torch.Tensor))


def test_a_long_lived_model_is_the_same_after_every_edit(tiny_model):
    """A worker's model serves everyone's words, one edit at a time: 50 edits with 50
    different concepts leave its vocabulary, its embedding and its memory as they were."""
    editor = Editor(tiny_model, inversion_settings=InversionSettings(steps=2), mode="ddim")
    inversion = editor.prepare(test_photo(2, 32), "a photo of a dog sitting")
    embedding = tiny_model.text_encoder.get_input_embeddings()
    tokens, weight = len(tiny_model.tokenizer), embedding.weight.detach().clone()
    requests = [lambda name: EditRequest("add", concept=name),
                lambda name: EditRequest("replace", subject="dog", concept=name),
                lambda name: EditRequest("restyle", concept=name)]
    memory = []
    for i in range(50):
        concept = Concept(f"word{i}", "object", torch.randn(1 + i % 2, tiny_model.text_width))
        outcome = editor.run(inversion, requests[i % 3](concept.name), [concept], seed=i)
        assert concept.token in outcome.result.target_tokens  # the edit did read the word
        del outcome, concept  # what the test itself holds
        assert len(tiny_model.tokenizer) == tokens and embedding.weight.shape == weight.shape
        if i in (4, 49):
            memory.append(live_tensor_bytes())
    assert torch.equal(embedding.weight, weight)
    assert not embedding._forward_hooks and not embedding._forward_pre_hooks
    assert memory[1] <= memory[0], f"{memory[1] - memory[0]} bytes of tensors more"


def test_editor_runs_a_command_with_a_concept(tiny_model, mochi):
    editor = Editor(tiny_model, inversion_settings=InversionSettings(steps=6, inner_steps=2))
    photo = test_photo(2, 32)
    with pytest.raises(PromptError, match="caption"):
        editor.prepare(photo)  # no caption and no captioner
    inversion = editor.prepare(photo, CAPTION)
    outcome = editor.run(inversion, EditRequest("replace", subject="dog", concept="mochi"),
                         [mochi])
    assert outcome.image.size == (32, 32)
    # the result and one panel per word (photo, red, mochi, sitting): 3 columns, 2 rows
    assert outcome.maps.width == 3 * 256 and outcome.maps.height > 2 * 256
    assert "<mochi>" in outcome.result.target_tokens
    assert outcome.result.mask is not None


def test_a_replace_with_a_learned_thing_is_inverted_in_its_own_mode(tiny_model):
    editor = Editor(tiny_model, mode="direct", learned_replace_mode="ddim")
    add, replace = EditRequest("add", concept="mochi"), EditRequest("replace", subject="dog",
                                                                    concept="mochi")
    assert editor.inversion_mode(replace, "object") == "ddim"
    assert editor.inversion_mode(add, "object") == "direct"  # measured as good or better
    assert editor.inversion_mode(replace, None) == "direct"  # a word the model knows
    assert editor.inversion_mode(replace, "person") == "direct"
    assert editor.inversion_mode(EditRequest("restyle", concept="inky"), "style") == "direct"
    assert editor.inversion_mode(EditRequest("remove", subject="dog"), None) == "direct"
    assert Editor(tiny_model, mode="fast").inversion_mode(replace, "object") == "fast"
    inversion = editor.prepare(test_photo(2, 32), "a photo of a dog", mode="ddim")
    assert inversion.mode == "ddim" and editor.prepare(test_photo(2, 32), "a dog").mode == "direct"
    with pytest.raises(InversionError, match="unknown inversion learned_replace_mode 'exact'"):
        Editor(tiny_model, mode="direct", learned_replace_mode="exact")
