"""Local-disk storage: objects under `storage_dir`, presigned URLs served by the gateway.

Layout: `objects/<key>` holds the bytes, `meta/<key>.json` the content type where the key's
extension does not imply it, `tmp/` the files being written (each write lands with one
atomic rename). The URLs point at
`{public_url}/files...`, which `local_http.local_files_blueprint` serves.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode

from shared.errors import Conflict, DependencyUnavailable, NotFound, PayloadTooLarge
from shared.storage.base import (
    ObjectInfo,
    Storage,
    StoredObject,
    require_delete_prefix,
    validate_key,
    validate_prefix,
)
from shared.storage.local_signing import LocalSigner

DEFAULT_CONTENT_TYPE = "application/octet-stream"


class ObjectWriter:
    """Streams one object into a temporary file; `LocalStorage.open_writer` installs it."""

    def __init__(self, tmp_dir: Path, max_bytes: int | None) -> None:
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.max_bytes = max_bytes
        self.size = 0

    @property
    def etag(self) -> str:
        """The MD5 of what was written, quoted like S3's ETag."""
        return f'"{self._md5.hexdigest()}"'

    def write(self, chunk: bytes) -> None:
        """Append `chunk`; PayloadTooLarge as soon as the total passes `max_bytes`."""
        self.size += len(chunk)
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise PayloadTooLarge(f"the upload is over its limit of {self.max_bytes} bytes")
        self._md5.update(chunk)
        self._file.write(chunk)

    def finish(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class LocalStorage(Storage):
    """Objects as files under `root`; URLs signed with a key derived from `secret`."""

    def __init__(self, root: str | Path, *, public_url: str, secret: str) -> None:
        self.root = Path(root).resolve()  # absolute: send_file would resolve a relative path against the app
        self.public_url = public_url.rstrip("/")
        self.signer = LocalSigner(secret)
        self._objects = self.root / "objects"
        self._meta = self.root / "meta"
        self._tmp = self.root / "tmp"

    # -- paths -------------------------------------------------------------------------

    def path_for(self, key: str) -> Path:
        """The file that holds `key`'s bytes (whether or not it exists)."""
        return self._objects / validate_key(key)

    def _meta_path(self, key: str) -> Path:
        return self._meta / f"{key}.json"

    # -- reading -----------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        with self._reading(key) as path:
            return path.read_bytes()

    def read_within(self, key: str, max_bytes: int) -> tuple[int, bytes | None]:
        with self._reading(key) as path, path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            return (size, None) if size > max_bytes else (size, file.read())

    def read_start(self, key: str, length: int) -> tuple[int, bytes]:
        with self._reading(key) as path, path.open("rb") as file:
            return os.fstat(file.fileno()).st_size, file.read(length)

    @contextmanager
    def _reading(self, key: str) -> Iterator[Path]:
        """The object's file, to read: no file there is NotFound, another OS error a 503."""
        path = self.path_for(key)
        try:
            yield path
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"no object stored under key {key!r}", field="key") from None
        except OSError as exc:
            raise _unavailable(exc, key) from exc

    def exists(self, key: str) -> bool:
        try:
            return self.path_for(key).is_file()
        except OSError as exc:
            raise _unavailable(exc, key) from exc

    def head(self, key: str) -> ObjectInfo | None:
        path = self.path_for(key)
        try:
            if not path.is_file():
                return None
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _unavailable(exc, key) from exc
        return ObjectInfo(size=size, content_type=self._content_type(key))

    def _content_type(self, key: str) -> str:
        try:
            return str(json.loads(self._meta_path(key).read_text())["content_type"])
        except (OSError, ValueError, KeyError, TypeError):
            return _guessed_type(key)

    def list(self, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        start = self._objects / prefix.rpartition("/")[0]
        keys: list[str] = []
        try:
            for folder, _dirs, files in os.walk(start):
                for name in files:
                    key = (Path(folder) / name).relative_to(self._objects).as_posix()
                    if key.startswith(prefix):
                        keys.append(key)
        except OSError as exc:
            raise _unavailable(exc, prefix) from exc
        return sorted(keys)

    def list_objects(self, prefix: str = "") -> Iterator[StoredObject]:
        for key in self.list(prefix):
            try:
                stat = self.path_for(key).stat()
            except FileNotFoundError:  # deleted since the listing
                continue
            except OSError as exc:
                raise _unavailable(exc, key) from exc
            yield StoredObject(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))

    # -- writing -----------------------------------------------------------------------

    def put(self, key: str, data: bytes, content_type: str) -> None:
        with self.open_writer(key, content_type) as writer:
            writer.write(bytes(data))

    @contextmanager
    def open_writer(self, key: str, content_type: str, *, max_bytes: int | None = None) -> Iterator[ObjectWriter]:
        """Write an object in chunks; it appears only if the block ends without an error."""
        validate_key(key)
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
            writer = ObjectWriter(self._tmp, max_bytes)
        except OSError as exc:
            raise _unavailable(exc, key) from exc
        try:
            yield writer
            writer.finish()
            self._install(key, writer.path, content_type)
        except BaseException:
            writer.discard()
            raise

    def _install(self, key: str, tmp_path: Path, content_type: str) -> None:
        """Meta first, then the bytes, each by an atomic rename. A content type the key's
        extension implies (a .png as image/png) needs no meta file: a stale one is removed."""
        path, meta = self.path_for(key), self._meta_path(key)
        meta_tmp: Path | None = None
        try:
            if content_type == _guessed_type(key):
                meta.unlink(missing_ok=True)
            else:
                fd, name = tempfile.mkstemp(dir=self._tmp, prefix="meta-")
                meta_tmp = Path(name)
                with os.fdopen(fd, "w") as file:
                    file.write(json.dumps({"content_type": content_type}))
                meta.parent.mkdir(parents=True, exist_ok=True)
                os.replace(meta_tmp, meta)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_path, path)
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
            raise Conflict(f"key {key!r} clashes with another key's folder: {exc.strerror}", field="key") from exc
        except OSError as exc:
            raise _unavailable(exc, key) from exc
        finally:
            if meta_tmp is not None:
                meta_tmp.unlink(missing_ok=True)  # gone already unless something failed

    def delete(self, key: str) -> None:
        path = self.path_for(key)
        try:
            path.unlink(missing_ok=True)
            self._meta_path(key).unlink(missing_ok=True)
        except IsADirectoryError:
            return
        except OSError as exc:
            raise _unavailable(exc, key) from exc
        for base, leaf in ((self._objects, path), (self._meta, self._meta_path(key))):
            _prune_empty_parents(leaf.parent, base)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(require_delete_prefix(prefix))
        for key in keys:
            self.delete(key)
        return len(keys)

    # -- presigning --------------------------------------------------------------------

    def _presign_put(self, key: str, content_type: str, max_bytes: int, expires_at: datetime, expires_s: int) -> str:
        params = self.signer.url_params("PUT", key, int(expires_at.timestamp()), content_type, max_bytes)
        return f"{self.public_url}/files/{quote(key, safe='/')}?{urlencode(params)}"

    def _presign_post(
        self, key: str, content_type: str, max_bytes: int, expires_at: datetime, expires_s: int
    ) -> tuple[str, dict[str, str]]:
        return f"{self.public_url}/files", self.signer.policy(key, content_type, max_bytes, expires_at)

    def _presign_get(self, key: str, expires_at: datetime, expires_s: int) -> str:
        params = self.signer.url_params("GET", key, int(expires_at.timestamp()))
        return f"{self.public_url}/files/{quote(key, safe='/')}?{urlencode(params)}"

    def ping(self) -> None:
        try:
            for folder in (self._objects, self._meta, self._tmp):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _unavailable(exc, str(self.root)) from exc
        if not os.access(self._tmp, os.W_OK):
            raise DependencyUnavailable(f"local storage {str(self.root)!r} is not writable", field="storage_dir")


def _prune_empty_parents(folder: Path, base: Path) -> None:
    """Remove now-empty folders from `folder` up to (not including) `base`."""
    while folder != base and base in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _unavailable(exc: OSError, what: str) -> DependencyUnavailable:
    return DependencyUnavailable(f"local storage failed on {what!r}: {exc.strerror or exc}", field="storage_dir")


def _guessed_type(key: str) -> str:
    """The content type a key's extension implies (what is shown when no meta file says otherwise)."""
    return mimetypes.guess_type(key)[0] or DEFAULT_CONTENT_TYPE
