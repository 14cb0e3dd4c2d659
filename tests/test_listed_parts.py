"""A large folder is walked by processes: the same objects, in the same order, as the
walk in one process, with unreadable folders and zips' members found in the walking
processes too; an --incremental run over it skips and finds what one walk does."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from loader.core.count import Count
from loader.core.errors import ListingError
from loader.jobs.incremental import to_process
from loader.jobs.pipeline import run
from loader.jobs.settings import RunSettings, Target
from loader.sources import listed_parts
from loader.sources.listed_parts import list_parts, listed_of
from loader.sources.listing import ObjectRef, list_source
from loader.sources.repeats import SeenKeys
from loader.synth import synthesize


def identity_of(ref: ObjectRef) -> bytes:
    """One object's identity, as a part of the listing makes it."""
    digests = listed_of([ref], True).digests
    assert digests is not None
    return digests


@pytest.fixture
def archive(tmp_path) -> Path:
    """A synth archive with a zip deep in it, a dangling link and an unreadable folder."""
    root = tmp_path / "archive"
    synthesize(root, patients=6, seed=3, duplicate_fraction=0.1)
    files = sorted(p for p in root.rglob("*.dcm"))
    deep = files[len(files) // 2].parent
    with zipfile.ZipFile(deep / "bundle.zip", "w") as bundle:
        for path in files[:3]:
            bundle.write(path, f"in-zip/{path.name}")
    os.symlink(deep / "nowhere.dcm", deep / "dangling.dcm")
    return root


@pytest.fixture
def parallel(monkeypatch):
    """The pool takes every folder after the first, in tasks of two folders."""
    monkeypatch.setattr(listed_parts, "PARALLEL_FROM", 1)
    monkeypatch.setattr(listed_parts, "FOLDERS_PER_TASK", 2)
    monkeypatch.setattr(listed_parts, "WALK_PROCESSES", 2)


def _processed(parts) -> list:
    return list(to_process(parts, SeenKeys(), Count(), None, Count()))


def test_walking_processes_list_what_one_walk_lists_in_its_order(archive, parallel, monkeypatch):
    """The parts hold what one walk lists, in its order, zips' members and the
    dangling link included. A folder that goes between the plan and its walk (as
    under a live archive) is reported unreadable by the process that walked it."""
    planned = listed_parts._plan
    gone: list[str] = []

    def plan_then_remove_a_folder(root, unreadable):
        items = planned(root, unreadable)
        last = [item.path for item in items if isinstance(item, listed_parts._Folder)][-1]
        shutil.rmtree(last)
        gone.append(last)
        return items

    monkeypatch.setattr(listed_parts, "_plan", plan_then_remove_a_folder)
    walked: list[str] = []
    parts = list(list_parts(str(archive), None, walked, identities=True))
    assert walked == gone
    assert len(parts) > 2  # made by the pool's tasks, not in one piece
    expected = list(list_source(str(archive)))  # one walk, of what is left
    got = _processed(parts)
    assert got == expected
    assert sum(".zip" in ref.url for ref in got) == 3  # the zip's members
    assert any(ref.url.endswith("dangling.dcm") and ref.modified is None for ref in got)
    assert b"".join(p.digests for p in parts) == b"".join(identity_of(r) for r in expected)


@pytest.mark.slow
def test_an_incremental_run_over_walking_processes(archive, tmp_path, parallel):
    """Unchanged objects skipped, a new one read, a deleted one stamped: as one walk."""
    settings = RunSettings(
        source=str(archive),
        out=tmp_path / "pq",
        target=Target.parse(f"duckdb:///{tmp_path / 'w.duckdb'}"),
        workers=0,
        incremental=True,
    )
    first = run(settings)
    assert first["unchanged"] == 0 and first["listed"] > 20
    victim = sorted(archive.rglob("*.dcm"))[-1]
    shutil.copy(victim, victim.with_name("copied-in.dcm"))
    sorted(archive.rglob("*.dcm"))[0].unlink()
    again = run(settings)
    assert again["listed"] == first["listed"]
    assert again["unchanged"] == first["listed"] - 1 - first["error_files"]
    assert again["deleted"]["objects"] == 1
    quiet = run(settings)
    assert quiet["unchanged"] == quiet["listed"] - quiet["error_files"]
    assert quiet["deleted"]["objects"] == 0


def test_a_walking_process_that_dies_fails_the_listing_in_one_line(archive, parallel, monkeypatch):
    """A walking process killed mid-walk (here it ends itself, as `kill -9` would end
    it) leaves parts no one will list: the listing fails, saying so, rather than
    handing on the parts it has as if they were all."""
    monkeypatch.setenv("DICOM_LOADER_FAIL_AT", "mid-walk:crash")
    with pytest.raises(ListingError) as failed:
        list(list_parts(str(archive), None, [], identities=False))
    assert str(failed.value) == "a process walking the folder stopped: the listing is incomplete"


def _listed_in_a_daemon(root: str, queue) -> None:
    listed_parts.PARALLEL_FROM = 1  # as the fixture sets it: this process starts anew
    listed_parts.FOLDERS_PER_TASK = 2
    listed_parts.WALK_PROCESSES = 2
    parts = list(list_parts(root, None, [], identities=False))
    queue.put([ref.url for ref in _processed(parts)])


def test_a_daemonic_process_walks_in_one_process(archive):
    """A daemonic process may start no child (a Celery worker's task calling `run`):
    there the walk stays in the process, and lists the same objects."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    daemon = context.Process(target=_listed_in_a_daemon, args=(str(archive), queue), daemon=True)
    daemon.start()
    urls = queue.get(timeout=60)
    daemon.join(timeout=30)
    assert daemon.exitcode == 0
    assert urls == [ref.url for ref in list_source(str(archive))]


def test_a_walk_in_one_process_hands_its_parts_on_as_it_goes(archive, monkeypatch):
    """Without a pool the parts stream: the first is handed on when the walk has read
    the first folders, not the whole tree (the driver holds a part, not the listing)."""
    monkeypatch.setattr(listed_parts, "WALK_PROCESSES", 1)
    monkeypatch.setattr(listed_parts, "BATCH", 2)
    walked: list[str] = []
    real_walk = listed_parts.walk

    def counted(folder, unreadable):
        walked.append(folder)
        return real_walk(folder, unreadable)

    monkeypatch.setattr(listed_parts, "walk", counted)
    parts = list_parts(str(archive), None, [], identities=False)
    next(parts)
    so_far = len(walked)
    rest = list(parts)
    assert rest and so_far < len(walked)
