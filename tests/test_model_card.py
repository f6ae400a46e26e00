"""The model card's figures section is rewritten in place by the measuring command."""

from __future__ import annotations

from world.evaluate import CARD_END, CARD_START, write_card_figures


def test_card_figures_replace_only_their_section(tmp_path):
    card = tmp_path / "README.md"
    card.write_text(f"# model\n\nbefore\n\n{CARD_START}\nold figures\n{CARD_END}\n\nafter\n")
    figures = {
        "vae": {"psnr_db": 31.25, "wall_seconds": 2.0},
        "checker": {"mean_field_agreement": 0.97, "caption_exact": 0.9,
                    "fields": {"background": 1.0, "mouth": 0.75},
                    "through_vae_fields": {"background": 1.0, "mouth": 0.5},
                    "through_vae_agreement": 0.75, "wall_seconds": 0.5},
        "concepts": {"concepts": {"creature": {"shown": 0.85, "seconds": 12.0,
                                               "elsewhere": {"right/grass": 0.5,
                                                             "center/sand": 0.25}}},
                     "wall_seconds": 30.0},
        "feature_values": {"n_per_value": 3,
                           "alone": {"ears": {"round": 1.0, "pointy": 1 / 3}},
                           "beside_two": {"ears": {"round": 2 / 3, "pointy": 0.0}},
                           "wall_seconds": 4.0},
        "plain_words": {"patterned_whole": 0.5,
                        "per_pattern": {"dots": 0.75, "stripes": 0.25},
                        "patterned_parts": {"colour": 0.75, "swapped": 0.25},
                        "n": 4, "samples": 2,
                        "reserved": {"object": {"words": "orange diamond", "shown": 0.5}},
                        "wall_seconds": 3.0},
        "styles": {"right": 0.5, "per_style": {"pixel": 1.0, "sepia": 0.0}, "wall_seconds": 9.0},
    }
    write_card_figures(card, figures, "python -m world.evaluate --count 7")
    text = card.read_text()
    assert text.startswith("# model\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert "old figures" not in text and text.count(CARD_START) == 1
    assert "| vae: psnr_db | 31.250 | >= 30 dB | 2.0 |" in text
    assert "| checker: mean_field_agreement | 0.970 | >= 0.98 | 0.5 |" in text
    assert "| concepts: creature shown | 0.850 | >= 0.80 | 12 (learning) |" in text
    assert "Checker agreement per field: background 1.000, mouth 0.750." in text
    assert ("The same after the VAE's round trip (what generated pictures can look like): "
            "background 1.000, mouth 0.500 (mean 0.750).") in text
    assert ("at other places and backgrounds, share shown whole: creature (right/grass 0.50, "
            "center/sand 0.25).") in text
    assert ("Creatures' feature values drawn right (3 generations each), named alone / beside "
            "two other fine features: ears (round 1.00 / 0.67, pointy 0.33 / 0.00).") in text
    assert "Styles named in the prompt drawn in that style: pixel 1.00, sepia 0.00." in text
    assert "`python -m world.evaluate --count 7`" in text
    assert ("From words alone: patterned shapes named in full drawn whole 0.50 (dots 0.75, "
            "stripes 0.25; per part colour 0.75, swapped 0.25); the reserved concepts asked for "
            "in their captioner's words, shown whole in 2 generations: the object in "
            "\"orange diamond\" 0.50.") in text
