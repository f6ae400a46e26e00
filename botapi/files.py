"""In-memory file storage with Telegram's file objects (PhotoSize, Document, Sticker, File).

Every byte string that enters the world — an upload by the bot or a file sent by a user —
gets a ``file_id``/``file_unique_id`` and a ``file_path`` for the download route, and can be
re-sent by ``file_id`` afterwards, which is how bots usually forward media.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass, field
from typing import Any

from . import images
from .errors import FILE_TOO_BIG, WRONG_FILE_ID, bad_request
from .ids import IdFactory

MAX_DOWNLOAD = 20 * 1024 * 1024
FOLDERS = {
    "photo": "photos",
    "document": "documents",
    "sticker": "stickers",
    "animation": "animations",
    "thumbnail": "thumbnails",
}


@dataclass
class StoredFile:
    """One stored file and the metadata needed to describe it in API objects."""

    file_id: str
    file_unique_id: str
    kind: str
    data: bytes
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    siblings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Size in bytes as reported in ``file_size``."""
        return len(self.data)

    def file_json(self) -> dict[str, Any]:
        """The ``File`` object returned by ``getFile`` / ``uploadStickerFile``."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.size,
            "file_path": self.file_path,
        }

    def photo_size_json(self) -> dict[str, Any]:
        """A ``PhotoSize`` object for this (image) file."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "width": self.width,
            "height": self.height,
            "file_size": self.size,
        }


class FileStore:
    """All files of the world, addressable by ``file_id`` and by ``file_path``."""

    def __init__(self, ids: IdFactory) -> None:
        self._ids = ids
        self._by_id: dict[str, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, kind: str, data: bytes, **meta: Any) -> StoredFile:
        """Store bytes as a new file of ``kind`` and return its record."""
        file_id, unique_id = self._ids.file_ids(kind)
        extension = _extension(meta.get("file_name"), meta.get("mime_type"), kind)
        path = f"{FOLDERS.get(kind, 'documents')}/{unique_id}{extension}"
        stored = StoredFile(file_id, unique_id, kind, data, path, **meta)
        self._by_id[file_id] = stored
        self._by_path[path] = stored
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        """The file with this id, or ``None``."""
        return self._by_id.get(file_id)

    def require(self, file_id: str) -> StoredFile:
        """The file with this id or Telegram's "wrong file identifier" 400."""
        stored = self._by_id.get(file_id.strip())
        if stored is None:
            raise bad_request(WRONG_FILE_ID)
        return stored

    def by_path(self, path: str) -> StoredFile | None:
        """The file served at ``/file/bot<token>/<path>``."""
        return self._by_path.get(path)

    def get_file(self, file_id: str) -> dict[str, Any]:
        """``getFile``: the File object, refusing files above the 20 MB download limit."""
        stored = self.require(file_id)
        if stored.size > MAX_DOWNLOAD:
            raise bad_request(FILE_TOO_BIG)
        return stored.file_json()

    def add_photo(self, data: bytes) -> list[dict[str, Any]]:
        """Store a photo as its ladder of sizes and return the ``photo`` array (small first).

        Raises ``images.ImageProblem`` (a ``ValueError``) when the bytes are not a whole image.
        """
        renditions = images.photo_renditions(data)
        stored = [
            self.add("photo", r.data, width=r.width, height=r.height, mime_type="image/jpeg")
            for r in renditions
        ]
        ids = [s.file_id for s in stored]
        for item in stored:
            item.siblings = ids
        return [s.photo_size_json() for s in stored]

    def photo_sizes(self, file_id: str) -> list[dict[str, Any]]:
        """The full ``photo`` array of the photo one of whose sizes is ``file_id``."""
        stored = self.require(file_id)
        if stored.kind != "photo":
            raise bad_request("type of file mismatch")
        return [self._by_id[i].photo_size_json() for i in stored.siblings or [stored.file_id]]

    def add_thumbnail(
        self, data: bytes, side: int = images.THUMBNAIL_SIDE
    ) -> dict[str, Any] | None:
        """Store a JPEG preview of image bytes; returns its PhotoSize or ``None``."""
        preview = images.thumbnail(data, side)
        return None if preview is None else self.add_rendition("thumbnail", preview)

    def add_rendition(self, kind: str, rendition: images.Rendition) -> dict[str, Any]:
        """Store an encoded JPEG size; returns its PhotoSize."""
        stored = self.add(
            kind, rendition.data, width=rendition.width, height=rendition.height,
            mime_type="image/jpeg",
        )
        return stored.photo_size_json()


def _extension(file_name: str | None, mime_type: str | None, kind: str) -> str:
    """A file extension for the download path, from the name, the MIME type or the kind."""
    if file_name and "." in file_name:
        return "." + file_name.rsplit(".", 1)[1].lower()
    if mime_type:
        guessed = mimetypes.guess_extension(mime_type)
        if guessed:
            return guessed
    return {"photo": ".jpg", "thumbnail": ".jpg", "sticker": ".webp"}.get(kind, "")
