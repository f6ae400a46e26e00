"""The running service's settings, in one place: defaults < TOML file < environment.

    ONEWORD_CONFIG=oneword.toml        # optional file; its keys are the field names below
    TELEGRAM_TOKEN=123:abc             # the bot token (never logged)
    ONEWORD_MODEL=stable-diffusion-v1-5/stable-diffusion-v1-5   # a hub id or a diffusers folder;
                                                                # default: the bundled model
    ONEWORD_DATA_DIR=/var/lib/oneword
    ONEWORD_DATABASE_URL=postgresql://oneword:secret@db/oneword   # default: SQLite in the data dir
    ONEWORD_<FIELD>=...                # any other field, e.g. ONEWORD_EDITS_PER_DAY=50
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from oneword.limits import MAX_STORED_FILE_BYTES
from oneword.modes import INVERSION_MODES

ENV_PREFIX = "ONEWORD_"


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


@dataclass(frozen=True)
class Settings:
    token: str = ""
    model: str = ""  # diffusers folder or hub id; empty: the bundled model
    # an image-to-text model (hub id or folder) that words photos for edits, so nobody has to
    # type what a photo shows: e.g. Salesforce/blip-image-captioning-base (about 990 MB);
    # empty: the model folder's own captioner, if it ships one (the bundled model does)
    captioner: str = ""
    # how clearly a word the photo's caption lacks ("replace dog ..." on "a puppy on a sofa")
    # must attend to one part of the photo to be edited there: the share of its attention on
    # its top quarter of the pixels (0.25: spread evenly, nothing found; 1: one spot). Below
    # it the user is told the photo shows no such thing. 0.4 is a first guess, not yet
    # measured on a real model; 0 edits wherever the word attends.
    subject_min_focus: float = 0.4
    # transformers image-segmentation model (id or folder) cutting out stickers on real photos;
    # empty: the model folder's own segmenter, if any, else the attention cut-out; "none": off
    segmenter: str = ""
    # a face detector for learning people: a person's loss lies on the head and shoulders it
    # finds in each portrait (engine/faces.py). "opencv": OpenCV's frontal-face cascade (the
    # `faces` extra, opencv-python-headless); a path: a cascade file of one's own; "auto":
    # OpenCV's when installed; "none": off (the word's own attention, or the model's captioner)
    face_detector: str = "auto"
    # /pack on a model without a captioner's expression words: one sticker per expression
    pack_expressions: str = "happy,sad,angry,surprised,sleepy,laughing"
    data_dir: str = "data"
    # empty: the SQLite file in data_dir (one machine); postgresql://...: a database shared by
    # the bot and workers on any hosts, each with a data_dir of its own (a cache)
    database_url: str = ""
    # the largest file (photo, concept, inversion, result) stored
    max_file_mb: float = MAX_STORED_FILE_BYTES / 2**20
    retention_days: float = 30.0  # photos, results and cached inversions older than this go
    device: str = ""  # cuda / mps / cpu; empty: the best available
    base_url: str = "https://api.telegram.org/bot"  # a local Bot API server for tests and demos
    base_file_url: str = "https://api.telegram.org/file/bot"
    webhook_url: str = ""  # empty: long polling
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = 8443
    webhook_secret: str = ""
    inversion_mode: str = "direct"  # direct | null-text | fast | ddim (engine/inversion.py)
    # ... for a replace with a learned thing's word (empty: inversion_mode): after direct
    # inversion such a word came out right less often than after ddim (engine/operations.py
    # inversion_mode_for; bench/results/latest.md, "Edit quality" by mode, "Learning seeds")
    learned_replace_inversion_mode: str = "ddim"
    inversion_steps: int = 50
    learn_steps: int = 600
    # a transformers image model (hub id or folder) whose embeddings compare pictures: the
    # photos of a word with each other before learning, and the word's drawings with the
    # photos after (e.g. openai/clip-vit-base-patch32); empty: the model folder's own
    # captioner judges, if it ships one (the bundled model does), else no such checks
    likeness_model: str = ""
    self_check_tries: int = 8  # drawings of a new word judged after learning (0: none)
    compile_unet: int = 0  # 1: torch.compile the UNet on a CUDA GPU (slow first edits, then faster)
    max_concurrent_jobs: int = 2  # per user, queued or running
    max_concepts: int = 20  # per user
    edits_per_day: int = 100  # per user
    max_attempts: int = 3  # a job failing this often is reported to the user
    group_edit_interval: float = 3.0  # seconds between progress edits in groups
    private_edit_interval: float = 1.0
    worker_lease: float = 60.0  # seconds without a heartbeat before a job counts as abandoned
    worker_poll: float = 0.5  # seconds between looks at the queue when idle
    log_level: str = "INFO"  # DEBUG, INFO, WARNING, ERROR or CRITICAL
    # the port of this process's /livez, /readyz and /metrics (0: none; one port per process)
    health_port: int = 0
    health_listen: str = "0.0.0.0"
    # who may use the bot: Telegram user ids and chat ids, comma-separated (both empty:
    # everyone). A message passes when its sender or its chat is listed.
    allowed_users: str = ""
    allowed_chats: str = ""
    safety_checker: int = 0  # 1: run the model's safety checker on every picture (public bots)

    def __post_init__(self) -> None:
        for name in ("inversion_mode", "learned_replace_inversion_mode"):
            mode = getattr(self, name)
            if mode not in INVERSION_MODES and not (name != "inversion_mode" and mode == ""):
                raise SettingsError(f"{name} must be one of {', '.join(INVERSION_MODES)}, "
                                    f"not {mode!r}")
        if self.log_level.upper() not in _LOG_LEVELS:
            raise SettingsError(f"log_level must be one of {', '.join(_LOG_LEVELS)}, "
                                f"not {self.log_level!r}")
        for name in ("allowed_users", "allowed_chats"):
            _id_set(name, getattr(self, name))
        if not 0 <= self.health_port <= 65535:
            raise SettingsError(f"health_port must be 0-65535, not {self.health_port}")

    def __repr__(self) -> str:  # the token (and the database password) must never reach a log
        shown = {f.name: getattr(self, f.name) for f in fields(self)
                 if f.name not in ("token", "database_url")}
        shown["database_url"] = _without_password(self.database_url)
        return f"Settings(token={'***' if self.token else ''!r}, {shown})"

    @property
    def allowed_user_ids(self) -> frozenset[int]:
        return _id_set("allowed_users", self.allowed_users)

    @property
    def allowed_chat_ids(self) -> frozenset[int]:
        return _id_set("allowed_chats", self.allowed_chats)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    @property
    def retention_s(self) -> float:
        return self.retention_days * 24 * 3600


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _id_set(name: str, text: str) -> frozenset[int]:
    """Telegram ids written as ``"123, -100456"``; SettingsError names a part that is not one."""
    ids = set()
    for part in text.replace(";", ",").split(","):
        if part.strip():
            try:
                ids.add(int(part.strip()))
            except ValueError:
                raise SettingsError(f"{name} must list Telegram ids separated by commas; "
                                    f"{part.strip()!r} is not one") from None
    return frozenset(ids)


def _without_password(url: str) -> str:
    """``scheme://user:***@host/...``: a database URL fit for a log."""
    head, at, tail = url.rpartition("@")
    if not at or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}" if ":" in credentials else url


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Settings from an optional TOML file, then the environment, then explicit overrides."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    path = path or environ.get(f"{ENV_PREFIX}CONFIG")
    if path:
        try:
            values.update(tomllib.loads(Path(path).read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read the settings file {path}: {exc}") from exc
    if environ.get("TELEGRAM_TOKEN"):
        values["token"] = environ["TELEGRAM_TOKEN"]
    for f in fields(Settings):
        key = ENV_PREFIX + f.name.upper()
        if key in environ:
            values[f.name] = environ[key]
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(values) - {f.name for f in fields(Settings)}
    if unknown:
        raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
    return Settings(**{f.name: _typed(f.name, f.type, values[f.name])
                       for f in fields(Settings) if f.name in values})


def setting_names() -> list[str]:
    """Every environment variable the service reads (for .env.example and its test)."""
    return ["TELEGRAM_TOKEN", f"{ENV_PREFIX}CONFIG"] + [
        ENV_PREFIX + f.name.upper() for f in fields(Settings) if f.name != "token"]


def _typed(name: str, kind: str, value: Any) -> Any:
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {name} must be a {kind}, not {value!r}") from exc
