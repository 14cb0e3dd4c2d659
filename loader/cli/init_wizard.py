"""`dicom-loader init`: from four answers to a settings file and the next command.

A data engineer setting up a migration answers four questions before anything else:
where are the objects (and how many), where do they go, is this a one-time load, a
periodic reload or continuous ingestion, and must PHI be pseudonymised. `init` asks
them (the CLI prompts; `--yes` and flags answer them for scripts), checks what it can
(the source lists, the target opens), samples the source (a listing of up to
`LIST_LIMIT` objects and the headers of `READ_SAMPLE` of them, spread over it), and
from that estimates the time and bytes the whole job takes. It writes
`dicom-loader.toml` (settings_file.py) and returns the exact command to run next.
Pixels are never read. Where each object's pixels start is in `dicom_file_location`;
when a pixel pipeline will need them, `init` turns frame offsets on (`dicom_frame`
locates every frame: frame_offsets.py).
"""

from __future__ import annotations

import itertools
import shlex
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loader.cli.settings_file import CONFIG_NAME
from loader.core.credentials import secret_names
from loader.core.errors import ConfigError
from loader.core.units import duration_text, size_text
from loader.jobs.scan import ScanSettings, scan_shard
from loader.jobs.settings import Target, TargetKind
from loader.sources.listing import ObjectRef, Shard, list_source

LIST_LIMIT = 100_000  # objects the sample lists at most: past it, the total is "at least"
READ_SAMPLE = 50  # objects whose headers the sample reads
JOBS = {
    "one-time": "a one-time migration: `run` once",
    "periodic": "a periodic reload: `run --incremental`, which also records deletions",
    "continuous": "continuous ingestion: the Snowflake patterns (`sql --pattern`, `deploy`)",
}


@dataclass(frozen=True)
class Answers:
    source: str
    target: str
    job: str  # one of JOBS
    out: str = "./dicom-parquet"
    pseudonymize_key_file: str | None = None
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)
    frame_offsets: bool = False  # a pixel pipeline will fetch frames
    # The --storage-option KEY=VALUE pairs the source was sampled with, as given: the
    # settings file keeps those that are no credential, so `run` reaches the same
    # source the same way; credentials are never written (see `left_out`).
    storage_pairs: tuple[str, ...] = field(default=(), repr=False)
    anon: bool = False

    @property
    def kept_pairs(self) -> list[str]:
        return [pair for pair in self.storage_pairs if not secret_names(pair)]

    @property
    def left_out(self) -> list[str]:
        """The names of the credentials given as storage options (not written)."""
        return [p.partition("=")[0] for p in self.storage_pairs if secret_names(p)]


@dataclass(frozen=True)
class Sample:
    """What sampling a source found."""

    listed: int  # objects listed (all of them when `complete`)
    complete: bool  # the listing ended within LIST_LIMIT
    bytes_listed: int
    read: int  # objects whose headers were read
    bytes_read: int
    seconds: float  # reading and decoding them, in this process
    errors: dict[str, int]
    modalities: dict[str, int]

    @property
    def bytes_per_object(self) -> float:
        return self.bytes_read / self.read if self.read else 0.0

    def estimate(self, cores: int) -> tuple[float, float]:
        """(seconds, bytes read) for the whole source with `cores` workers, at the
        sample's rate (one process, no read-ahead: an upper bound on time)."""
        per_object = self.seconds / self.read if self.read else 0.0
        return self.listed * per_object / max(1, cores), self.listed * self.bytes_per_object


def sample_source(source: str, options: dict[str, Any]) -> Sample:
    """List up to LIST_LIMIT objects of `source` and read the headers of READ_SAMPLE
    of them, spread over what was listed; ConfigError when it cannot be listed."""
    listed: list[ObjectRef] = list(itertools.islice(list_source(source, options), LIST_LIMIT + 1))
    complete = len(listed) <= LIST_LIMIT
    listed = listed[:LIST_LIMIT]
    if not listed:
        raise ConfigError(f"{source}: no objects found there")
    step = max(1, len(listed) // READ_SAMPLE)
    chosen = tuple(listed[::step][:READ_SAMPLE])
    started = time.perf_counter()
    profile = scan_shard(ScanSettings(None, options), Shard("init-sample", chosen))
    seconds = time.perf_counter() - started
    counters = profile.counters
    return Sample(
        listed=len(listed),
        complete=complete,
        bytes_listed=sum(r.size for r in listed),
        read=len(chosen),
        bytes_read=profile.bytes_read,
        seconds=seconds,
        errors=dict(counters["errors"]),
        modalities=dict(Counter(counters["modality"]).most_common(8)),
    )


def check_target(target_text: str) -> Target:
    """The target, parsed and opened once (a Snowflake connection is tested)."""
    from loader.jobs.targets import check_target_writable, open_warehouse

    target = Target.parse(target_text)
    if target.kind is TargetKind.NONE:
        return target
    check_target_writable(target)
    if target.kind is TargetKind.SNOWFLAKE:
        warehouse = open_warehouse(target)
        try:
            warehouse.query("SELECT 1")
        finally:
            warehouse.close()
    return target


def config_text(answers: Answers) -> str:
    """dicom-loader.toml for these answers: no secret ever goes in it."""

    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [
        "# Written by `dicom-loader init`. The command line and DICOM_LOADER_<OPTION>",
        "# variables win over it; secrets stay in connections.toml and the cloud SDKs'.",
        f"target = {quoted(answers.target)}",
        f"out = {quoted(answers.out)}",
    ]
    if answers.kept_pairs:
        pairs = ", ".join(quoted(pair) for pair in answers.kept_pairs)
        lines.append(f"storage-option = [{pairs}]")
    if answers.anon:
        lines.append("anon = true")
    lines += [
        "",
        "[run]",
        f"incremental = {'true' if answers.job == 'periodic' else 'false'}",
        f"frame-offsets = {'true' if answers.frame_offsets else 'false'}",
    ]
    if answers.pseudonymize_key_file:
        lines.append(f"pseudonymize-key-file = {quoted(answers.pseudonymize_key_file)}")
    return "\n".join(lines) + "\n"


def next_commands(answers: Answers) -> list[str]:
    """The commands to run next, exactly: the settings come from the file."""
    run = f"dicom-loader run {shlex.quote(answers.source)}"
    if answers.left_out:  # credentials: the user gives them again, as they did here
        flags = " ".join(f"--storage-option {name}=…" for name in answers.left_out)
        run = f"{run} {flags}"
    if answers.job != "continuous":
        return [run]
    if not answers.target.startswith("snowflake"):
        raise ConfigError("continuous ingestion runs in Snowflake: give a snowflake target")
    return [run, "dicom-loader deploy --pattern all"]


def write_config(answers: Answers, folder: Path, overwrite: bool) -> Path:
    path = folder / CONFIG_NAME
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} exists: answer yes to replace it, or remove it first")
    try:
        path.write_text(config_text(answers), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


def describe(sample: Sample, cores: int) -> list[str]:
    """The sample and the estimate, as lines to print."""
    seconds, read = sample.estimate(cores)
    count = f"{sample.listed:,}" if sample.complete else f"at least {sample.listed:,}"
    modalities = ", ".join(f"{m} {n}" for m, n in sample.modalities.items()) or "none read"
    lines = [
        f"objects: {count} ({size_text(sample.bytes_listed)} listed)",
        f"sampled {sample.read}: modalities {modalities}; "
        f"{sample.bytes_per_object:,.0f} bytes read per object (headers only)",
        f"estimate with {cores} workers: about {duration_text(seconds)} and "
        f"{size_text(read)} read" + ("" if sample.complete else " (for the objects listed)"),
    ]
    if sample.errors:
        lines.append("in the sample: " + ", ".join(f"{k} {v}" for k, v in sample.errors.items()))
    return lines
