"""`dicom-loader init` driven as a user drives it: a terminal session answering the
questions, then the command it prints, run as printed."""

import json
import os
import pty
import re
import select
import shlex
import subprocess
import sys
import time
import tomllib
import warnings
from collections import Counter
from pathlib import Path

import duckdb
import pydicom
import pytest
from pydicom.errors import InvalidDicomError

from loader.cli.init_wizard import (
    READ_SAMPLE,
    Answers,
    Sample,
    check_target,
    config_text,
    describe,
    next_commands,
    sample_source,
    write_config,
)
from loader.core.errors import ConfigError
from loader.core.units import size_text
from loader.synth import synthesize

CLI = [sys.executable, "-m", "loader"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_LOADER_")}
    return {**env, "TERM": "xterm-256color", "COLUMNS": "200"}


class Terminal:
    """A command in a pseudo-terminal: wait for what it prints, type answers."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.primary, secondary = pty.openpty()
        self.process = subprocess.Popen(
            args, stdin=secondary, stdout=secondary, stderr=secondary, cwd=cwd, env=_env()
        )
        os.close(secondary)
        self.shown = ""

    def expect(self, text: str, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while text not in self.shown:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.primary], [], [], max(0.0, left))
            if not ready:
                raise AssertionError(f"never saw {text!r} in:\n{self.shown}")
            try:
                chunk = os.read(self.primary, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"ended before {text!r}:\n{self.shown}")
            self.shown += chunk.decode(errors="replace")

    def answer(self, text: str) -> None:
        os.write(self.primary, (text + "\n").encode())

    def finish(self) -> int:
        while True:
            ready, _, _ = select.select([self.primary], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(self.primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.shown += chunk.decode(errors="replace")
        return self.process.wait(60)


def _completed(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """A command run to its end outside a terminal, its output captured."""
    return subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)


def _as_run(command: str) -> list[str]:
    words = shlex.split(command)
    assert words[0] == "dicom-loader"
    return [*CLI, *words[1:]]


@pytest.mark.slow
def test_a_terminal_session_then_the_printed_command(tmp_path):
    synthesize(tmp_path / "archive", patients=2, seed=12)
    session = Terminal([*CLI, "init"], tmp_path)
    session.expect("Where are the DICOM objects?")
    session.answer("archive")
    session.expect("bytes read per object")
    session.expect("Where do they go?")
    session.answer("")  # the default: ./imaging.duckdb
    session.expect("What kind of job?")
    session.answer("periodic")
    session.expect("Pseudonymise names, IDs and dates")
    session.answer("n")
    session.expect("Will a pixel pipeline need the pixels?")
    session.answer("y")
    assert session.finish() == 0, session.shown
    assert "one ranged read fetches one frame" in session.shown
    assert "objects: " in session.shown and "estimate with" in session.shown
    settings = tomllib.loads((tmp_path / "dicom-loader.toml").read_text())
    assert settings["run"]["incremental"] is True
    assert settings["run"]["frame-offsets"] is True
    command = session.shown.split("Next:")[1].strip().splitlines()[0].strip()
    assert command == "dicom-loader run archive"
    for attempt in (1, 2):  # as printed: the file's settings make it incremental
        done = _completed(
            [*_as_run(command), "--workers", "0", "--report", f"r{attempt}.json"], tmp_path
        )
        assert done.returncode == 0, done.stderr
    first = json.loads((tmp_path / "r1.json").read_text())
    second = json.loads((tmp_path / "r2.json").read_text())
    assert second["unchanged"] > 0 and second["deleted"]["checked"]
    assert first["frame_offsets"]["requested"] and first["frame_offsets"]["frames_located"] > 0
    con = duckdb.connect(str(tmp_path / "imaging.duckdb"), read_only=True)
    images = con.execute("SELECT count(*) FROM dicom_image_pixel").fetchone()[0]
    located, with_frames = con.execute(
        "SELECT count(*), count(DISTINCT instance_key) FROM dicom_frame "
        "WHERE frame_offset IS NOT NULL"
    ).fetchone()
    con.close()
    # Every image has its frames located; the report counted those of every object
    # read, duplicates' included.
    assert with_frames == images > 0 and 0 < located <= first["frame_offsets"]["frames_located"]


# init as a script runs it: every answer given, the archive in the folder it runs in.
FOR_SCRIPTS = [*CLI, "init", "--yes", "--source", "archive", "--job", "one-time",
               "--target", "duckdb:///./w.duckdb"]  # fmt: skip


def test_init_for_scripts_asks_nothing(tmp_path):
    synthesize(tmp_path / "archive", patients=1, seed=12)
    done = _completed(FOR_SCRIPTS, tmp_path)
    assert done.returncode == 0, done.stderr
    assert tomllib.loads((tmp_path / "dicom-loader.toml").read_text())["target"] == (
        "duckdb:///./w.duckdb"
    )
    missing = _completed([*CLI, "init", "--yes", "--source", "nowhere"], tmp_path)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1, missing.stderr


def _pydicom_sample(archive: Path) -> tuple[int, int, Counter[str], int]:
    """What pydicom reads of every object of `archive`: how many there are, their
    bytes, the modalities of those it reads, and how many it refuses."""
    files = [p for p in archive.rglob("*") if p.is_file()]
    modalities: Counter[str] = Counter()
    refused = 0
    for path in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # what pydicom reads past is no refusal
                ds = pydicom.dcmread(path, stop_before_pixels=True)
        except InvalidDicomError:
            refused += 1
            continue
        modalities[str(ds.get("Modality") or "none")] += 1
    return len(files), sum(p.stat().st_size for p in files), modalities, refused


def test_the_sample_init_prints_is_what_pydicom_reads(tmp_path):
    """An archive smaller than the sample is read whole: the objects counted, the
    modalities and the objects that are not DICOM, as init prints them, are what
    pydicom reads of the same files."""
    synthesize(tmp_path / "archive", patients=2, seed=21, bad_fraction=0.15, duplicate_fraction=0)
    objects, size, modalities, refused = _pydicom_sample(tmp_path / "archive")
    assert objects <= READ_SAMPLE and refused > 0
    done = _completed(FOR_SCRIPTS, tmp_path)
    assert done.returncode == 0, done.stderr
    lines = {line.split(":")[0].strip(): line for line in done.stdout.splitlines() if ":" in line}
    assert lines["objects"].strip() == f"objects: {objects} ({size_text(size)} listed)"
    sampled = lines[f"sampled {objects}"].split("modalities ", 1)[1].split(";")[0]
    printed = {m: int(n) for m, n in (pair.rsplit(" ", 1) for pair in sampled.split(", "))}
    assert printed == dict(modalities.most_common(8))
    assert lines["in the sample"].strip() == f"in the sample: NOT_DICOM {refused}"


def test_the_settings_and_commands_follow_the_answers():
    answers = Answers(
        "s3://bucket/dicom", "snowflake:prod", "continuous", "s3://bucket/pq", "/keys/pseudonym.key"
    )
    text = config_text(answers)
    parsed = tomllib.loads(text)
    assert parsed == {
        "target": "snowflake:prod",
        "out": "s3://bucket/pq",
        "run": {
            "incremental": False,
            "frame-offsets": False,
            "pseudonymize-key-file": "/keys/pseudonym.key",
        },
    }
    assert next_commands(answers) == [
        "dicom-loader run s3://bucket/dicom",
        "dicom-loader deploy --pattern all",
    ]
    with pytest.raises(Exception, match="snowflake target"):
        next_commands(Answers("x", "duckdb:///w.duckdb", "continuous"))
    sample = Sample(1000, True, 10**9, 50, 50 * 4000, 0.5, {}, {"CT": 50})
    seconds, read = sample.estimate(2)
    assert (seconds, read) == (5.0, 4_000_000)  # 10 ms an object on two cores


def test_init_on_an_object_store_prints_a_command_that_reaches_it(s3, tmp_path):
    """Sampled from a bucket through an endpoint, anonymously: the settings file keeps
    the endpoint and the anonymous access, so the printed command, run as printed,
    lists the same bucket and loads every object pydicom reads there."""
    import s3fs

    options, _ = s3
    archive = tmp_path / "archive"
    synthesize(archive, patients=1, seed=12, bad_fraction=0.1)
    bucket = f"init-{time.time_ns()}"
    # A public bucket, as S3 serves one: anonymous requests may list and read it.
    fs = s3fs.S3FileSystem(**options, s3_additional_kwargs={"ACL": "public-read"})
    fs.mkdir(bucket, acl="public-read")
    fs.put(str(archive) + "/", f"{bucket}/archive/", recursive=True)
    env_without_credentials = {
        k: v for k, v in _env().items() if not k.startswith(("AWS_", "DICOM_LOADER_"))
    }
    endpoint = f"endpoint_url={options['endpoint_url']}"
    done = subprocess.run(
        [*CLI, "init", "--yes", "--source", f"s3://{bucket}/archive", "--job", "one-time",
         "--target", "duckdb:///./w.duckdb", "--storage-option", endpoint, "--anon"],
        cwd=tmp_path, env=env_without_credentials, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    settings = tomllib.loads((tmp_path / "dicom-loader.toml").read_text())
    assert settings["storage-option"] == [endpoint] and settings["anon"] is True
    command = done.stdout.split("Next:")[1].strip().splitlines()[0].strip()
    assert command == f"dicom-loader run s3://{bucket}/archive"
    ran = subprocess.run(
        [*_as_run(command), "--workers", "0", "--report", "r.json"],
        cwd=tmp_path, env=env_without_credentials, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    objects = len(fs.find(f"{bucket}/archive"))
    assert f"objects: {objects} " in done.stdout  # the sample listed the bucket whole
    assert report["listed"] == objects and report["validation"]["accounting"]["balanced"]
    assert report["loaded"] > 0


def test_init_writes_no_credential_and_says_which_to_give_again():
    answers = Answers(
        "s3://bucket/dicom", "duckdb:///w.duckdb", "one-time",
        storage_pairs=("endpoint_url=http://127.0.0.1:9000", "key=AKIA-init", "secret=Ss-init-1"),
    )  # fmt: skip
    text = config_text(answers)
    assert "AKIA-init" not in text and "Ss-init-1" not in text
    assert tomllib.loads(text)["storage-option"] == ["endpoint_url=http://127.0.0.1:9000"]
    (command,) = next_commands(answers)
    assert "Ss-init-1" not in command and "AKIA-init" not in command
    assert "--storage-option key=…" in command and "--storage-option secret=…" in command


def _readme_sample_sizes() -> tuple[int, int]:
    """What README.md promises of init's sample: objects listed at most, headers read."""
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    promise = r"lists the source \(up to ([\d,]+) objects\) and reads (\d+) headers"
    match = re.search(promise, readme)
    assert match, "README.md no longer says how much init samples"
    return int(match.group(1).replace(",", "")), int(match.group(2))


@pytest.mark.slow  # a hundred thousand files: make test only
def test_the_sample_lists_and_reads_what_the_readme_says(tmp_path):
    """Up to the README's count of objects is listed and the total is exact; one more
    and it is "at least" that count. The README's number of headers is read, spread
    over the listing; the seconds it reports are within the time the call took."""
    limit, read = _readme_sample_sizes()
    folder = tmp_path / "many"
    folder.mkdir()
    for number in range(limit):
        (folder / f"{number:06d}").write_bytes(b"x")
    started = time.perf_counter()
    whole = sample_source(str(folder), {})
    elapsed = time.perf_counter() - started
    assert (whole.listed, whole.complete, whole.read) == (limit, True, read)
    assert whole.bytes_listed == limit and whole.errors == {"NOT_DICOM": read}
    assert 0 < whole.seconds <= elapsed
    assert describe(whole, 2)[0] == f"objects: {limit:,} ({size_text(limit)} listed)"
    assert not describe(whole, 2)[2].endswith("(for the objects listed)")
    (folder / "one-more").write_bytes(b"x")
    partial = sample_source(str(folder), {})
    assert (partial.listed, partial.complete, partial.read) == (limit, False, read)
    lines = describe(partial, 2)
    assert lines[0].startswith(f"objects: at least {limit:,} (")
    assert lines[2].endswith(" (for the objects listed)")


def test_the_sample_names_the_eight_most_common_modalities(tmp_path):
    """Nine modalities in the sample: the eight most frequent are printed, by count."""
    source = pydicom.dcmread(_real_ct(), stop_before_pixels=True)
    modalities = ["CT", "MR", "US", "CR", "DX", "MG", "NM", "PT", "XA"]
    written = Counter()
    for index, modality in enumerate(modalities):
        for copy in range(len(modalities) - index):  # CT 9 times … XA once
            source.Modality = modality
            source.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{index}.{copy + 1}"
            source.save_as(tmp_path / f"{modality}-{copy}.dcm")
            written[modality] += 1
    sample = sample_source(str(tmp_path), {})
    assert sample.read == sum(written.values()) and sample.errors == {}
    assert sample.modalities == dict(written.most_common(8)) and "XA" not in sample.modalities


def _real_ct() -> str:
    from tests.conftest import real_file

    return real_file("CT_small.dcm")


def test_an_empty_sample_estimates_nothing_and_cores_divide_the_time():
    """No header read: no bytes per object and no time. The time is the sample's rate
    over the listing divided among the cores (at least one)."""
    nothing = Sample(10, True, 100, 0, 0, 0.0, {"NOT_DICOM": 0}, {})
    assert nothing.bytes_per_object == 0 and nothing.estimate(2) == (0, 0)
    sample = Sample(1000, True, 10**9, 50, 50 * 4000, 0.5, {}, {"CT": 50})
    assert sample.estimate(1) == (10.0, 4_000_000) == sample.estimate(0)
    assert sample.estimate(4) == (2.5, 4_000_000)


def test_answers_never_show_storage_credentials():
    """An Answers printed (a log line, a traceback's locals) shows no storage option."""
    answers = Answers(
        "s3://bucket/dicom", "duckdb:///w.duckdb", "one-time",
        storage_options={"secret": "Ss-repr-1"}, storage_pairs=("key=AKIA-repr",),
    )  # fmt: skip
    assert "Ss-repr-1" not in repr(answers) and "AKIA-repr" not in repr(answers)


def test_the_settings_file_is_replaced_only_when_asked(tmp_path):
    first = Answers("archive", "duckdb:///a.duckdb", "one-time")
    path = write_config(first, tmp_path, overwrite=False)
    with pytest.raises(ConfigError, match="exists: answer yes to replace it"):
        write_config(Answers("archive", "duckdb:///b.duckdb", "one-time"), tmp_path, False)
    assert tomllib.loads(path.read_text())["target"] == "duckdb:///a.duckdb"
    write_config(Answers("archive", "duckdb:///b.duckdb", "one-time"), tmp_path, True)
    assert tomllib.loads(path.read_text())["target"] == "duckdb:///b.duckdb"
    with pytest.raises(ConfigError, match=r"cannot write \(No such file or directory\)"):
        write_config(first, tmp_path / "missing", overwrite=False)


def test_checking_a_target_creates_nothing_and_refuses_an_unwritable_one(tmp_path):
    """A DuckDB target is checked without creating its warehouse; one whose folder
    cannot be made is refused; no target, nothing to check."""
    assert check_target("none").kind.value == "none"
    check_target(f"duckdb:///{tmp_path / 'w.duckdb'}")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot create"):
        check_target(f"duckdb:///{tmp_path / 'file' / 'w.duckdb'}")
