"""The model card's measuring scenes ask for what their figures say they ask for."""

from __future__ import annotations

from collections import Counter

from world.evaluate import feature_value_cases
from world.scene import CHARACTER_WORDS, grounded_caption


def test_feature_value_cases_name_each_value_alone_or_beside_two_others():
    tables = CHARACTER_WORDS
    for company in (0, 2):
        cases = feature_value_cases(3, company)
        assert Counter((feature, value) for feature, value, _, _ in cases) == {
            (feature, value): 3 for feature, table in tables.items() for value in table}
        for feature, value, scene, named in cases:
            (creature,) = scene.objects
            assert creature.kind == "creature" and scene.style is None
            assert getattr(creature.features, feature) == value
            assert feature in named and len(named) == 1 + company
            text = grounded_caption(scene, fine={creature.position: named})[0]
            assert tables[feature][value] in text.split()
            other_words = [w for f, t in tables.items() if f != feature and f not in named
                           for w in t.values()]
            assert not set(other_words) & set(text.split())
