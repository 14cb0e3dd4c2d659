"""A listing that names an object more than once: every entry accounted for, each
object read once."""

import random

import numpy as np

from loader.core.count import Count
from loader.jobs.incremental import to_process
from loader.jobs.pipeline import run
from loader.jobs.settings import RunSettings, Target
from loader.sources.listed_parts import BATCH, listed_of
from loader.sources.listing import ObjectRef
from loader.sources.repeats import SeenKeys


def test_repeats_within_and_across_batches_are_dropped_and_counted():
    urls = [f"s3://bucket/object-{n}.dcm" for n in range(3 * BATCH + 17)]
    rng = random.Random(5)
    listing = urls + rng.sample(urls, 2_000) + urls[:10] + urls[-10:]
    rng.shuffle(listing)
    repeated = Count()
    refs = [ObjectRef(u, 1, None) for u in listing]
    parts = [listed_of(refs[i : i + BATCH], False) for i in range(0, len(refs), BATCH)]
    kept = [ref.url for ref in to_process(parts, SeenKeys(), repeated, None, Count())]
    first_seen = list(dict.fromkeys(listing))  # each URL at its first entry, in order
    assert kept == first_seen
    assert repeated.value == len(listing) - len(urls)


def test_seen_keys_merge_into_few_sorted_runs():
    seen = SeenKeys()
    for start in range(0, 100_000, 1_000):
        seen.add(np.arange(start, start + 1_000, dtype=np.uint64))
    assert len(seen) == 100_000 and len(seen.runs) <= 17  # log2(100) + 1 runs at most
    assert all((run[1:] > run[:-1]).all() for run in seen.runs)
    # Equal runs merge like a binary counter: 100 adds leave runs of 64, 32 and 4 adds.
    assert [len(run) for run in seen.runs] == [64_000, 32_000, 4_000]
    asked = np.array([0, 63_999, 64_000, 99_999, 100_000, 2**64 - 1], dtype=np.uint64)
    assert seen.seen(asked).tolist() == [True, True, True, True, False, False]


def test_a_manifest_naming_every_file_five_times(synth_archive, tmp_path):
    """Five entries per file: the same tables, objects read and shards as one entry
    per file; the four repeats of each are counted, and the accounting balances."""
    root, summary = synth_archive
    files = sorted(str(p) for p in root.rglob("*") if p.is_file())
    manifest = tmp_path / "manifest.txt"
    manifest.write_text("\n".join(files * 5) + "\n")
    once = tmp_path / "once.txt"
    once.write_text("\n".join(files) + "\n")

    def settings(source, name):
        return RunSettings(
            source=str(source),
            out=tmp_path / f"{name}-pq",
            workers=0,
            shard_size=50,
            target=Target.parse(f"duckdb:///{tmp_path / name}.duckdb"),
        )

    five = run(settings(manifest, "five"))
    single = run(settings(once, "single"))
    assert five["listed"] == 5 * len(files) == 5 * summary.files
    assert five["repeated_entries"] == 4 * len(files)
    for key in ("loaded", "new_instances", "duplicates", "error_files", "errors", "rows"):
        assert five[key] == single[key], key
    assert five["bytes_read"] == single["bytes_read"]  # each object read once
    assert five["shards"] == single["shards"]
    assert five["validation"]["accounting"]["balanced"] and five["validation_passed"]
