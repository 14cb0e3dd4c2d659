"""Where a run's Parquet files and ledger live: a local folder or an object-store prefix.

Every file is published whole, so a reader (the ledger, a load, a crashed run's
resume) never sees half of one: locally it is written under a temporary name and
renamed into place; on an object store it is written to a local spool file and
uploaded with one PUT, and stores make an object visible only once it is complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import fsspec

from loader.core.credentials import refuse_url_password
from loader.sources.storage import filesystem, is_remote, path_of, retry_transient


@dataclass(frozen=True)
class OutputRoot:
    url: str  # an absolute local folder, or a URL such as s3://bucket/prefix
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, out: str | Path, storage_options: dict[str, Any] | None = None) -> OutputRoot:
        text = str(out)
        refuse_url_password(text, "--out")
        if not is_remote(text):
            text = str(Path(text.removeprefix("file://")).resolve())
        return cls(text.rstrip("/") or "/", dict(storage_options or {}))

    @property
    def remote(self) -> bool:
        return is_remote(self.url)

    def __str__(self) -> str:
        return self.url

    def location(self, relative: str) -> str:
        """The full path or URL of a file under the root."""
        return f"{self.url}/{relative}"

    def filesystem(self) -> fsspec.AbstractFileSystem:
        return filesystem(self.url, self.storage_options)[0]

    def spool(self, relative: str) -> Path:
        """Where a file is written before `publish`: next to its final place locally,
        a private temporary folder for an object store."""
        if self.remote:
            folder = Path(tempfile.mkdtemp(prefix="dicom-loader-spool-"))
            return folder / Path(relative).name
        final = Path(self.location(relative))
        final.parent.mkdir(parents=True, exist_ok=True)
        return final.with_name(final.name + ".tmp")

    def publish(self, spooled: Path, relative: str) -> int:
        """Move a finished spool file to its final place; return its size in bytes."""
        size = spooled.stat().st_size
        if self.remote:
            try:
                target = path_of(self.location(relative))
                retry_transient(lambda: self.filesystem().put_file(str(spooled), target))
            finally:
                shutil.rmtree(spooled.parent, ignore_errors=True)
        else:
            os.replace(spooled, self.location(relative))
        return size

    def discard(self, spooled: Path) -> None:
        if self.remote:
            shutil.rmtree(spooled.parent, ignore_errors=True)
        else:
            spooled.unlink(missing_ok=True)

    def write_bytes(self, relative: str, data: bytes) -> None:
        """Write a small file atomically (durably, locally: fsync before rename)."""
        if self.remote:
            target = path_of(self.location(relative))
            retry_transient(lambda: self.filesystem().pipe_file(target, data))
            return
        spooled = self.spool(relative)
        with spooled.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(spooled, self.location(relative))

    def read_bytes(self, relative: str) -> bytes | None:
        try:
            if self.remote:
                return bytes(self.filesystem().cat_file(path_of(self.location(relative))))
            return Path(self.location(relative)).read_bytes()
        except FileNotFoundError:
            return None

    def open(self, relative: str) -> BinaryIO:
        """A file under the root, open for reading as a stream (never read whole)."""
        if self.remote:
            return self.filesystem().open(path_of(self.location(relative)), "rb")  # type: ignore[no-any-return]
        return open(self.location(relative), "rb")

    def read_many(self, relatives: list[str]) -> Iterator[bytes]:
        """Several small files, fetched concurrently from an object store."""
        if not self.remote:
            for relative in relatives:
                yield Path(self.location(relative)).read_bytes()
            return
        paths = [path_of(self.location(r)) for r in relatives]
        fs = self.filesystem()
        for start in range(0, len(paths), 256):
            batch = paths[start : start + 256]
            fetched = fs.cat(batch, on_error="raise") if batch else {}
            for path in batch:
                yield bytes(fetched[path])

    def names(self, folder: str, prefix: str, suffix: str) -> list[str]:
        """Names of the files directly in `folder` that start and end as given, sorted."""
        if self.remote:
            fs = self.filesystem()
            target = path_of(self.location(folder))
            fs.invalidate_cache(target)  # other processes commit files here
            try:
                listed = fs.ls(target, detail=False)
            except FileNotFoundError:
                return []
            names = [str(p).rstrip("/").rsplit("/", 1)[-1] for p in listed]
        else:
            directory = Path(self.location(folder))
            names = [p.name for p in directory.iterdir()] if directory.is_dir() else []
        return sorted(n for n in names if n.startswith(prefix) and n.endswith(suffix))

    def remove_folder(self, folder: str) -> None:
        if self.remote:
            fs = self.filesystem()
            target = path_of(self.location(folder))
            if fs.exists(target):
                fs.rm(target, recursive=True)
            fs.invalidate_cache()
        else:
            shutil.rmtree(self.location(folder), ignore_errors=True)
