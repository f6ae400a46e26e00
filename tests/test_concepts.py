"""Concept files (our layout, AUTOMATIC1111, emb_params, diffusers) and installing concepts."""

from __future__ import annotations

import os

import pytest
import safetensors.torch
import torch
from safetensors import safe_open

from engine.concept_tokens import concepts_in_use, expand_prompt
from engine.concepts import Concept, check_width, concept_name, load_concept, save_concept
from engine.errors import ConceptFileError, ConceptNameError, ConceptWidthError, PromptError
from engine.model import load_model


@pytest.fixture
def fresh_model(tiny_model_dir):
    """A private copy of the tiny model, so a test that went wrong cannot leave it changed."""
    return load_model(tiny_model_dir, device="cpu")


def vectors(n: int, width: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn((n, width), generator=torch.Generator().manual_seed(seed))


def embedding_rows(model, tokens: list[str]) -> torch.Tensor:
    ids = model.tokenizer.convert_tokens_to_ids(tokens)
    return model.text_encoder.get_input_embeddings().weight[ids].detach()


class RunsCode:
    """A pickle payload that would create a folder if it were ever unpickled unsafely."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


# ---------------------------------------------------------------------------------------------
# Files


def test_round_trip_keeps_vectors_and_metadata(tmp_path):
    concept = Concept("Teddy", "person", vectors(3), steps=120, base_model="some/model",
                      extra={"source": "telegram"})
    path = save_concept(concept, tmp_path / "teddy.safetensors")
    loaded = load_concept(path)
    assert loaded.name == "teddy" and loaded.token == "<teddy>"
    assert torch.equal(loaded.vectors, concept.vectors)
    assert (loaded.kind, loaded.steps, loaded.base_model) == ("person", 120, "some/model")
    assert loaded.extra == {"source": "telegram"}
    with safe_open(path, "pt") as f:  # the diffusers layout: one key, the token
        assert list(f.keys()) == ["<teddy>"]
        assert f.metadata()["name"] == "teddy" and f.metadata()["vectors"] == "3"


def test_safetensors_whose_first_byte_looks_like_a_pickle(tmp_path):
    # the header size's low byte is 0x80, a pickle's first byte: the layout must not be guessed
    # from that byte alone
    for pad in range(0, 256, 8):
        path = save_concept(Concept("pad", "object", vectors(1), extra={"pad": "x" * pad}),
                            tmp_path / "pad.safetensors")
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    assert load_concept(path).extra["pad"] == "x" * pad


def test_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = save_concept(Concept("mug", "object", vectors(2)), tmp_path / "mug.safetensors")

    def broken_save(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken_save)
    with pytest.raises(OSError):
        save_concept(Concept("mug", "object", vectors(2, seed=1)), path)
    assert torch.equal(load_concept(path).vectors, vectors(2))
    assert [p.name for p in tmp_path.iterdir()] == ["mug.safetensors"]


def test_loads_automatic1111_pt(tmp_path):
    path = tmp_path / "whatever.pt"
    torch.save({"string_to_token": {"*": 265},
                "string_to_param": {"*": torch.nn.Parameter(vectors(2))},
                "name": "My Style", "step": 1500, "sd_checkpoint": None,
                "sd_checkpoint_name": None}, path)
    concept = load_concept(path)
    assert concept.name == "my-style" and concept.steps == 1500 and concept.kind == "object"
    assert torch.equal(concept.vectors, vectors(2)) and not concept.vectors.requires_grad


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_loads_emb_params_named_after_the_file(tmp_path, suffix):
    path = tmp_path / f"Old Toy{suffix}"
    if suffix == ".pt":
        torch.save({"emb_params": vectors(4)}, path)
    else:
        safetensors.torch.save_file({"emb_params": vectors(4)}, path)
    concept = load_concept(path)
    assert concept.name == "old-toy" and torch.equal(concept.vectors, vectors(4))


def test_loads_a_diffusers_single_vector_bin(tmp_path):
    path = tmp_path / "learned_embeds.bin"
    torch.save({"<cat-toy>": vectors(1)[0]}, path)
    concept = load_concept(path)
    assert concept.name == "cat-toy" and concept.vectors.shape == (1, 32)


def test_never_runs_code_from_a_pickle(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"emb_params": RunsCode(str(marker))}, path)
    with pytest.raises(ConceptFileError, match="evil.pt"):
        load_concept(path)
    assert not marker.exists()


def write_unusable(kind: str, folder):
    """A file that is not a concept file, of the given kind."""
    path = folder / {"random": "noise.pt", "empty": "empty.safetensors", "sdxl": "xl.pt",
                     "truncated": "cut.safetensors", "two-keys": "two.safetensors",
                     "list": "list.pt", "3d": "cube.pt", "integer": "int.pt",
                     "missing": "missing.safetensors"}[kind]
    if kind == "random":
        path.write_bytes(os.urandom(300))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        save_concept(Concept("x", "object", vectors(2)), path)
        path.write_bytes(path.read_bytes()[:150])
    elif kind == "two-keys":
        safetensors.torch.save_file({"a": vectors(1), "b": vectors(1)}, path)
    elif kind == "list":
        torch.save([1, 2, 3], path)
    elif kind == "3d":
        torch.save({"emb_params": torch.ones(2, 3, 4)}, path)
    elif kind == "integer":
        torch.save({"emb_params": torch.ones(2, 3, dtype=torch.long)}, path)
    elif kind == "sdxl":
        torch.save({"clip_l": vectors(1), "clip_g": vectors(1)}, path)
    return path


@pytest.mark.parametrize("kind", ["random", "empty", "truncated", "two-keys", "list", "3d",
                                  "integer", "sdxl", "missing"])
def test_unusable_files_raise_concept_file_error(tmp_path, kind):
    path = write_unusable(kind, tmp_path)
    with pytest.raises(ConceptFileError, match=path.name):
        load_concept(path)


def test_names():
    assert concept_name("My_Mug-2") == "my_mug-2"
    assert concept_name("<Teddy>") == "teddy"
    for bad in ["", "two words", "x" * 33, "émile", "<>", "a.b"]:
        with pytest.raises(ConceptNameError):
            concept_name(bad)
    with pytest.raises(ConceptNameError):
        Concept("no way", "object", vectors(1))


# ---------------------------------------------------------------------------------------------
# Models


def test_width_mismatch_names_both_widths(fresh_model):
    wide = Concept("wide", "object", vectors(2, width=48))
    with pytest.raises(ConceptWidthError, match="48") as info:
        check_width(wide, fresh_model)
    assert "32" in str(info.value) and (info.value.file_width, info.value.model_width) == (48, 32)
    tokenizer = fresh_model.tokenizer
    with pytest.raises(ConceptWidthError), concepts_in_use(fresh_model, [wide]):
        pass
    assert fresh_model.tokenizer is tokenizer  # refused before touching the model


def test_diffusers_loader_accepts_our_file(tiny_model_dir, tmp_path):
    from diffusers import StableDiffusionPipeline

    concept = Concept("teddy", "object", vectors(3))
    path = save_concept(concept, tmp_path / "teddy.safetensors")
    pipe = StableDiffusionPipeline.from_pretrained(tiny_model_dir, safety_checker=None,
                                                   feature_extractor=None,
                                                   requires_safety_checker=False)
    pipe.load_textual_inversion(str(path))
    tokens = ["<teddy>", "<teddy>_1", "<teddy>_2"]
    assert all(t in pipe.tokenizer.get_vocab() for t in tokens)
    rows = pipe.text_encoder.get_input_embeddings().weight[
        pipe.tokenizer.convert_tokens_to_ids(tokens)]
    assert torch.equal(rows.detach(), concept.vectors)
    # and our prompt expansion agrees with theirs on a tokenizer diffusers filled
    assert expand_prompt(pipe.tokenizer, "a <teddy>") == pipe.maybe_convert_prompt(
        "a <teddy>", pipe.tokenizer)


def test_expand_multi_vector_concepts_in_use(fresh_model):
    concept = Concept("teddy", "object", vectors(3))
    with concepts_in_use(fresh_model, [concept, Concept("sun", "style", vectors(1, seed=1))]):
        prompt = expand_prompt(fresh_model, "a photo of <Teddy> and a dog in <sun>")
        assert prompt == "a photo of <teddy> <teddy>_1 <teddy>_2 and a dog in <sun>"
        assert expand_prompt(fresh_model, prompt) == prompt  # idempotent
        assert fresh_model.tokens(prompt)[4:7] == ["<teddy>", "<teddy>_1", "<teddy>_2"]
        with pytest.raises(PromptError, match=r"<mug> \(known: <sun>, <teddy>\)"):
            expand_prompt(fresh_model, "a <teddy> next to a <mug>")


def test_concept_vectors_drive_the_text_encoding(fresh_model):
    cat_row = embedding_rows(fresh_model, ["cat</w>"])
    with concepts_in_use(fresh_model, [Concept("kitty", "object", cat_row),
                                       Concept("teddy", "object", vectors(2))]):
        prompts = [expand_prompt(fresh_model, p) for p in ("a photo of a <teddy>",
                                                           "a photo of a <kitty>")]
        with_concept, as_concept = fresh_model.encode_text(prompts).split(1)
    assert not torch.allclose(with_concept, fresh_model.encode_text(["a photo of a"]), atol=1e-3)
    # a concept whose vector is the word "cat" encodes exactly as the word does
    torch.testing.assert_close(as_concept, fresh_model.encode_text(["a photo of a cat"]))


def test_nested_blocks_the_innermost_word_wins_then_the_outer_returns(fresh_model):
    def encoded() -> torch.Tensor:
        return fresh_model.encode_text([expand_prompt(fresh_model, "a <teddy> on grass")])

    with concepts_in_use(fresh_model, [Concept("teddy", "object", vectors(2))]):
        outer = encoded()
        with concepts_in_use(fresh_model, [Concept("teddy", "object", vectors(3, seed=7))]):
            assert expand_prompt(fresh_model, "<teddy>") == "<teddy> <teddy>_1 <teddy>_2"
            assert not torch.allclose(encoded(), outer, atol=1e-3)
        assert expand_prompt(fresh_model, "<teddy>") == "<teddy> <teddy>_1"
        torch.testing.assert_close(encoded(), outer)


def test_concepts_in_use_encode_as_diffusers_loads_them_and_leave_no_trace(
        fresh_model, tiny_model_dir, tmp_path):
    from diffusers import StableDiffusionPipeline

    concepts = [Concept("kitty", "object", vectors(1, seed=2)),
                Concept("teddy", "object", vectors(2))]
    prompts = ["a photo of a <kitty>", "a <teddy> and a <kitty> on grass"]
    tokenizer = fresh_model.tokenizer
    embedding = fresh_model.text_encoder.get_input_embeddings()
    weight = embedding.weight.detach().clone()
    with concepts_in_use(fresh_model, concepts):
        in_use = fresh_model.encode_text([expand_prompt(fresh_model, p) for p in prompts])
    assert fresh_model.tokenizer is tokenizer
    with pytest.raises(PromptError, match="none yet"):  # no concept is installed any more
        expand_prompt(fresh_model, "<kitty>")
    assert torch.equal(embedding.weight, weight) and len(tokenizer) == weight.shape[0]
    assert not embedding._forward_hooks and not embedding._forward_pre_hooks
    with pytest.raises(PromptError, match="<teddy>"):
        expand_prompt(fresh_model, "a <teddy>")
    pipe = StableDiffusionPipeline.from_pretrained(tiny_model_dir, safety_checker=None,
                                                   feature_extractor=None,
                                                   requires_safety_checker=False)
    for concept in concepts:  # diffusers writes the vectors into new embedding rows
        path = save_concept(concept, tmp_path / f"{concept.name}.safetensors")
        pipe.load_textual_inversion(str(path))
    ids = pipe.tokenizer([pipe.maybe_convert_prompt(p, pipe.tokenizer) for p in prompts],
                         padding="max_length", max_length=fresh_model.max_tokens,
                         return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(in_use, pipe.text_encoder(ids)[0])
