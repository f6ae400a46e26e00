"""Settings: defaults < TOML file < environment < flags; bad values are named; the token hides."""

from __future__ import annotations

import pytest

from oneword.settings import Settings, SettingsError, load_settings


def test_layers_override_in_order(tmp_path):
    toml = tmp_path / "oneword.toml"
    toml.write_text('model = "from-file"\nedits_per_day = 5\ndata_dir = "file-data"\n')
    settings = load_settings(toml, environ={"ONEWORD_EDITS_PER_DAY": "7",
                                            "TELEGRAM_TOKEN": "123:secret"},
                             data_dir="flag-data")
    assert settings.model == "from-file"
    assert settings.edits_per_day == 7  # environment beats the file, typed
    assert settings.data_dir == "flag-data"  # a flag beats both
    assert settings.token == "123:secret"
    assert load_settings(environ={}) == Settings()


def test_the_token_never_appears_in_a_repr():
    settings = load_settings(environ={"TELEGRAM_TOKEN": "123456:very-secret"})
    assert "very-secret" not in repr(settings) and "very-secret" not in str(settings)


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(SettingsError, match="edits_per_day must be a int"):
        load_settings(environ={"ONEWORD_EDITS_PER_DAY": "many"})
    with pytest.raises(SettingsError, match="unknown settings: colour"):
        load_settings(environ={}, colour="red")
    with pytest.raises(SettingsError, match="learned_replace_inversion_mode must be one of"):
        load_settings(environ={"ONEWORD_LEARNED_REPLACE_INVERSION_MODE": "exact"})
    with pytest.raises(SettingsError, match="inversion_mode must be one of"):
        load_settings(environ={"ONEWORD_INVERSION_MODE": ""})
    unset = load_settings(environ={"ONEWORD_LEARNED_REPLACE_INVERSION_MODE": ""})
    assert unset.learned_replace_inversion_mode == ""  # empty: such replaces use the other
    broken = tmp_path / "broken.toml"
    broken.write_text("model = ")
    with pytest.raises(SettingsError, match="cannot read the settings file"):
        load_settings(broken, environ={})
