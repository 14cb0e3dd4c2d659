"""`make mutate`: mutation testing of the modules that carry the loader's promises,
each against the tests that cover it, with cosmic-ray.

Why cosmic-ray and not mutmut: many of the tests run the code under test in Dask
worker processes and CLI subprocesses. mutmut 3 switches its mutants on through
trampolines inside the test process and decides which tests to run from what that
process executed, so a mutant reached only in a worker or a subprocess is reported
as surviving or untested when it is neither. cosmic-ray writes each mutant into the
source file itself, so every process that imports the module runs the mutant.

Each module is mutated in a scratch copy of the repository (never in this tree: an
interrupted run would leave a mutant behind), with PYTHONPATH pointing at the copy so
subprocesses and Dask workers import it too. A mutant is killed when its tests fail
or time out, survives when they pass; `docs/TESTING.md` lists the surviving mutants
judged equivalent (the code behaves the same), with the reason, and they are left out
of the score. The scores go to `benchmarks/results/<date>-mutation.json` and the
table of `docs/TESTING.md`.

    python scripts/mutate.py                  # every module (hours)
    python scripts/mutate.py loader/dicom/pseudonymize.py   # one (make mutate MODULE=…)
    python scripts/mutate.py MODULE --jobs 2  # its mutants dealt to 2 copies (JOBS=2)
    python scripts/mutate.py --rescore        # every result, equivalents judged again
    python scripts/mutate.py --recheck MODULE [JOBS]  # its latest survivors, tests as now
    python scripts/mutate.py --relocate MODULE REV  # equivalents rows judged at REV, moved
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTING = ROOT / "docs" / "TESTING.md"
RESULTS = ROOT / "benchmarks" / "results"
PYTEST = "-m pytest -x -q -p no:cacheprovider"
# Module → the tests that cover it (the ones a developer would run after editing it).
MODULES: dict[str, list[str]] = {
    "loader/dicom/pseudonymize.py": ["tests/test_pseudonymize.py"],
    "loader/sources/containers.py": [
        "tests/test_ranged_file.py",
        "tests/test_container_members.py",
        "tests/test_options.py::test_the_readme_states_the_defaults_that_run",
        "tests/test_containers.py",
    ],
    "loader/jobs/deleted_objects.py": ["tests/test_deletions.py"],
    "loader/warehouse/deletions.py": ["tests/test_deletions.py"],
    "loader/warehouse/successors.py": [
        "tests/test_deletions.py::test_an_entity_row_passes_to_the_newest_live_object_as_a_fresh_load_gives",
        "tests/test_deletions.py::test_deletions_failing_inside_their_transaction_change_nothing",
    ],
    "loader/jobs/rebuild.py": ["tests/test_rebuild.py"],
    "loader/dicom/stored_headers.py": ["tests/test_stored_headers.py"],
    "loader/cli/html_report.py": ["tests/test_html_report.py"],
    "loader/core/credentials.py": ["tests/test_credentials.py"],
    "loader/cli/settings_file.py": ["tests/test_config_file.py"],
    "loader/cli/init_wizard.py": ["tests/test_init.py"],
    "loader/warehouse/merge.py": [
        "tests/test_merge.py",
        "tests/test_batched_load.py",
        "tests/test_pipeline.py",
    ],
    # The embedded warehouse's batch transaction, staging and memory limit; its
    # deletions' transaction.
    "loader/warehouse/duckdb.py": [
        "tests/test_batched_load.py",
        "tests/test_deletions.py::test_deletions_failing_inside_their_transaction_change_nothing[duckdb]",
        "tests/test_deletions.py::test_deleted_objects_are_stamped_and_instances_follow_their_copies[duckdb]",
        "tests/test_deletions.py::test_a_warehouse_made_before_deletions_gains_their_columns[duckdb]",
        "tests/test_pipeline.py",
    ],
    # Statements (COPY, PUT, stages), COPY results checked, the load's transaction.
    "loader/warehouse/snowflake.py": [
        "tests/test_snowflake_statements.py",
        "tests/test_snowflake.py",
        "tests/test_deletions.py::test_a_warehouse_made_before_deletions_gains_their_columns[snowflake]",
    ],
    # Its offset tables (NumberOfFrames, the Extended Offset Table) are what the frame
    # offsets' tests read: a developer editing them runs those too.
    "loader/headers/reader.py": ["tests/test_headers.py", "tests/test_frame_offsets.py"],
    "loader/sources/read_ahead.py": [
        "tests/test_read_ahead.py",
        "tests/test_read_ahead_bounds.py",
        "tests/test_options.py::test_the_readme_states_the_defaults_that_run",
    ],
    "loader/sources/repeats.py": ["tests/test_repeats.py"],
    "loader/sources/listed_parts.py": [
        "tests/test_listed_parts.py",
        "tests/test_incremental.py",
        "tests/test_repeats.py",
    ],
    "loader/jobs/incremental.py": ["tests/test_incremental.py"],
    "loader/sources/identity.py": ["tests/test_incremental.py", "tests/test_listed_parts.py"],
    "loader/jobs/validate.py": ["tests/test_validate.py", "tests/test_pipeline.py"],
    "loader/extract/sr_tree.py": ["tests/test_content_tables.py"],
    "loader/extract/sr_content.py": ["tests/test_content_tables.py"],
    "loader/extract/measurements.py": ["tests/test_content_tables.py"],
    "loader/extract/dose_events.py": ["tests/test_content_tables.py"],
    "loader/extract/rt.py": ["tests/test_content_tables.py"],
    "loader/cli/options.py": ["tests/test_options.py", "tests/test_config_file.py"],
    "loader/core/flags.py": ["tests/test_options.py"],
}
# One mutant per operator site that changes its meaning: a + b becomes a - b, not also
# a * b, a ** b, a << b …; a comparison is negated (== → !=, < → >=) or moved across
# its boundary (< → <=). The other replacements of a site are killed by whatever kills
# these in nearly every case, and would multiply the run's hours.
_KEPT_BINARY = (
    "Add_Sub|Sub_Add|Mul_Div|Div_Mul|FloorDiv_Mul|Mod_Mul|Pow_Mul|"
    "BitOr_BitAnd|BitAnd_BitOr|BitXor_BitOr|LShift_RShift|RShift_LShift"
)
_KEPT_COMPARISON = (
    "Eq_NotEq|NotEq_Eq|Lt_GtE|Lt_LtE|LtE_Gt|LtE_Lt|Gt_LtE|Gt_GtE|GtE_Lt|GtE_Gt|"
    "Is_IsNot|IsNot_Is|In_NotIn|NotIn_In"
)
EXCLUDED_OPERATORS = (
    rf"core/ReplaceBinaryOperator_(?!({_KEPT_BINARY})$)",
    rf"core/ReplaceComparisonOperator_(?!({_KEPT_COMPARISON})$)",
    r"core/ReplaceUnaryOperator_(?!(Delete_Not|USub_UAdd)$)",
)
_EQUIVALENT_ROW = re.compile(r"^\| `([^`]+)` \| (\d+) \| `([^`]+)` \| (.+) \|$")
TABLE_START = "<!-- mutation scores: written by make mutate -->\n"
TABLE_END = "<!-- end of mutation scores -->\n"


def equivalents() -> set[tuple[str, int, str]]:
    """(module, line, operator) of the mutants docs/TESTING.md judges equivalent."""
    found = set()
    for line in TESTING.read_text().splitlines():
        if match := _EQUIVALENT_ROW.match(line):
            found.add((match.group(1), int(match.group(2)), match.group(3)))
    return found


def _scratch_copy() -> Path:
    """The tracked files of this tree, copied: cosmic-ray edits files in place."""
    scratch = Path(tempfile.mkdtemp(prefix="dicom-loader-mutate-"))
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (scratch / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, scratch / name)
    return scratch


def _config(module: str, tests: list[str], timeout: float) -> str:
    command = f"{sys.executable} {PYTEST} {' '.join(tests)}"
    return (
        "[cosmic-ray]\n"
        f'module-path = "{module}"\n'
        f"timeout = {timeout:.0f}\n"
        "excluded-modules = []\n"
        f'test-command = "{command}"\n\n'
        '[cosmic-ray.distributor]\nname = "local"\n\n'
        "[cosmic-ray.filters.operators-filter]\n"
        f"exclude-operators = {json.dumps(list(EXCLUDED_OPERATORS))}\n"
    )


def _baseline_seconds(scratch: Path, tests: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *PYTEST.split(), *tests],
        cwd=scratch, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the tests of {tests} fail unmutated:\n{done.stdout[-3000:]}")
    return time.perf_counter() - started


def mutate(module: str, tests: list[str], jobs: int = 1) -> dict:
    """Run every mutant of `module` against `tests`; the counts. With `jobs` > 1 the
    mutants are dealt out to that many scratch copies, each with its own session, run
    side by side: cosmic-ray's own runner takes one mutant at a time."""
    scratches = [_scratch_copy() for _ in range(jobs)]
    bin_dir = Path(sys.executable).parent
    try:
        baseline = _baseline_seconds(
            scratches[0], tests, {**os.environ, "PYTHONPATH": str(scratches[0])}
        )
        running = []
        for index, scratch in enumerate(scratches):
            env = {**os.environ, "PYTHONPATH": str(scratch)}
            config, session = scratch / "mutate.toml", scratch / "session.sqlite"
            # A mutant that loops or waits is killed by the timeout: three baselines.
            config.write_text(_config(module, tests, max(60.0, 3 * baseline)))
            for command in (
                [bin_dir / "cosmic-ray", "init", config, session],
                [bin_dir / "cr-filter-operators", session, config],
                [bin_dir / "cr-filter-pragma", session],  # `# pragma: no mutate` lines
            ):
                subprocess.run(
                    [str(c) for c in command], cwd=scratch, env=env, check=True,
                    capture_output=True,
                )  # fmt: skip
            _deal(session, index, jobs)
            running.append(
                subprocess.Popen(
                    [str(bin_dir / "cosmic-ray"), "exec", str(config), str(session)],
                    cwd=scratch,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for process in running:
            if process.wait() != 0:
                raise SystemExit(f"cosmic-ray exec failed for {module}")
        return _counts(module, [s / "session.sqlite" for s in scratches], baseline)
    finally:
        for scratch in scratches:
            shutil.rmtree(scratch, ignore_errors=True)


def _deal(session: Path, index: int, jobs: int) -> None:
    """Leave this session the `index`-th of every `jobs` mutants still to run, marking
    the others skipped as cosmic-ray's own filters do. Every copy's session holds the
    same mutants under job ids of its own: they are dealt in the order of what each
    one is (operator, occurrence, place), the same in every copy."""
    if jobs == 1:
        return
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    def what(item) -> tuple:
        return tuple((m.operator_name, m.occurrence, m.start_pos) for m in item.mutations)

    with use_db(str(session), WorkDB.Mode.open) as db:
        pending = [item.job_id for item in sorted(db.pending_work_items, key=what)]
        others = [job for n, job in enumerate(pending) if n % jobs != index]
        db.set_multiple_results(
            others, WorkResult(output="dealt to another copy", worker_outcome=WorkerOutcome.SKIPPED)
        )


def _counts(module: str, sessions: list[Path], baseline: float) -> dict:
    judged = equivalents()
    rows = []
    for session in sessions:
        with sqlite3.connect(session) as con:
            rows += con.execute(
                "SELECT m.start_pos_row, m.operator_name, m.occurrence, r.test_outcome, "
                "r.worker_outcome, r.diff, r.output FROM mutation_specs m "
                "JOIN work_results r USING (job_id)"
            ).fetchall()
    killed = survived = incompetent = equivalent = timed_out = 0
    surviving = []
    # Outcomes are stored by their enum names (NORMAL, KILLED …).
    rows = [(*r[:3], str(r[3]).lower(), str(r[4]).lower(), r[5], r[6]) for r in rows]
    rows = [r for r in rows if r[4] != "skipped"]  # filtered operators and pragmas
    for line, operator, occurrence, outcome, worker, diff, output in rows:
        if worker != "normal" or outcome == "incompetent":
            incompetent += 1  # the mutant could not run (a syntax the parser refuses)
        elif outcome == "killed":
            killed += 1
            # cosmic-ray counts a timeout as killed: a loop, or a machine too busy.
            timed_out += output == "timeout"
        elif (module, line, operator) in judged:
            equivalent += 1
        else:
            survived += 1
            surviving.append(
                {"line": line, "operator": operator, "occurrence": occurrence, "diff": diff}
            )
    return {
        "module": module,
        "mutants": len(rows),
        "killed": killed,
        "survived": survived,
        "equivalent": equivalent,
        "incompetent": incompetent,
        "killed_by_timeout": timed_out,
        "score": _score(killed, survived),
        "baseline_seconds": round(baseline, 1),
        "surviving": sorted(surviving, key=lambda s: (s["line"], s["operator"])),
    }


def _score(killed: int, survived: int) -> float | None:
    """Killed / (killed + survived); None when no mutant counts (all equivalent)."""
    scored = killed + survived
    return round(killed / scored, 4) if scored else None


def _table(results: list[dict]) -> str:
    lines = [
        "| module | mutants | killed | survived | equivalent | score |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        score = "—" if r["score"] is None else f"{100 * r['score']:.1f} %"
        if r.get("not_run"):  # a run stopped before its end: its score is of those run
            score += f" of those run; {r['not_run']} not run"
        lines.append(
            f"| `{r['module']}` | {r['mutants']} | {r['killed']} | {r['survived']} | "
            f"{r['equivalent']} | {score} |"
        )
    return "\n".join(lines) + "\n"


def _measured() -> dict[str, dict]:
    """Each module's latest result, over every day's file (named by date, so their
    order is the days')."""
    latest: dict[str, dict] = {}
    for path in sorted(RESULTS.glob("*-mutation.json")):
        latest.update(json.loads(path.read_text()).get("modules", {}))
    return latest


def _record(results: list[dict]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{dt.date.today().isoformat()}-mutation.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    today = {**previous.get("modules", {}), **{r["module"]: r for r in results}}
    machine = {"cores": os.cpu_count(), "python": sys.version.split()[0]}
    path.write_text(json.dumps({"machine": machine, "modules": today}, indent=2) + "\n")
    _write_table()
    print(f"wrote {path.relative_to(ROOT)} and docs/TESTING.md's table")


def _write_table() -> None:
    text = TESTING.read_text()
    head, _, rest = text.partition(TABLE_START)
    _, _, tail = rest.partition(TABLE_END)
    measured = _measured()
    ordered = [measured[m] for m in MODULES if m in measured]
    TESTING.write_text(head + TABLE_START + _table(ordered) + TABLE_END + tail)


def rescore() -> None:
    """Every recorded result (each in the day's file it was measured in) with
    docs/TESTING.md's equivalents applied again to its survivors: after judging a
    survivor (or moving a judged line), no rerun. The table is written anew."""
    judged = equivalents()
    for path in sorted(RESULTS.glob("*-mutation.json")):
        document = json.loads(path.read_text())
        for module, result in document["modules"].items():
            kept = [
                s for s in result["surviving"] if (module, s["line"], s["operator"]) not in judged
            ]
            moved = len(result["surviving"]) - len(kept)
            document["modules"][module] = {
                **result,
                "surviving": kept,
                "survived": len(kept),
                "equivalent": result["equivalent"] + moved,
                "score": _score(result["killed"], len(kept)),
            }
        path.write_text(json.dumps(document, indent=2) + "\n")
    _write_table()


def relocate(module: str, revision: str) -> tuple[int, list[int]]:
    """Move docs/TESTING.md's equivalents rows of `module`, judged against its source
    at git `revision`, to the lines that source's lines have now (a run keys its
    survivors by line: rows left at old lines stop matching). Rows whose line was
    changed or removed since are left, and returned, to be judged again."""
    import difflib

    old = subprocess.run(
        ["git", "show", f"{revision}:{module}"], cwd=ROOT, capture_output=True, text=True,
        check=True,
    ).stdout.splitlines()  # fmt: skip
    new = (ROOT / module).read_text().splitlines()
    moved_to: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for kind, old_start, old_end, new_start, _ in matcher.get_opcodes():
        if kind == "equal":
            for offset in range(old_end - old_start):
                moved_to[old_start + offset + 1] = new_start + offset + 1
    moved, lost, lines = 0, [], []
    for line in TESTING.read_text().splitlines(keepends=True):
        match = _EQUIVALENT_ROW.match(line.rstrip("\n"))
        if match and match.group(1) == module:
            at = int(match.group(2))
            if at not in moved_to:
                lost.append(at)
            elif moved_to[at] != at:
                moved += 1
                line = f"| `{module}` | {moved_to[at]} | `{match.group(3)}` | {match.group(4)} |\n"
        lines.append(line)
    TESTING.write_text("".join(lines))
    return moved, lost


def _mutated_now(patch: str, source: str) -> tuple[int, str] | None:
    """A survivor's diff applied to `source` as it is now: the line it changes (its
    recorded line moves when lines above it change) and the mutated text; None when
    the code it mutated is gone. The lines it removes must be found whole; its context
    only chooses among several places (lines near it may have changed since)."""
    before: list[str] = []
    removed: list[str] = []
    added: list[str] = []
    after: list[str] = []
    for line in patch.splitlines():
        if line.startswith(("---", "+++", "@@")) or not line:
            continue
        kind, text = line[0], line[1:]
        if kind == "-":
            removed.append(text)
        elif kind == "+":
            added.append(text)
        else:
            (after if removed else before).append(text)
    lines = source.splitlines(keepends=True)
    bare = [line.rstrip("\n") for line in lines]

    def fit(at: int) -> int:
        above = bare[max(0, at - len(before)) : at]
        below = bare[at + len(removed) : at + len(removed) + len(after)]
        return sum(a == b for a, b in zip(reversed(above), reversed(before), strict=False)) + sum(
            a == b for a, b in zip(below, after, strict=False)
        )

    places = [
        at
        for at in range(len(bare) - len(removed) + 1)
        if removed and bare[at : at + len(removed)] == removed
    ]
    if not places:
        return None
    at = max(places, key=fit)
    mutated = [*lines[:at], *(text + "\n" for text in added), *lines[at + len(removed) :]]
    return at + 1, "".join(mutated)


def recheck(module: str, jobs: int = 1) -> dict:
    """The survivors of `module`'s latest recorded run (of any day) run again, each
    alone, against its tests as they are now: after writing the tests a run asked
    for, without running every mutant again. Each survivor's recorded diff is
    applied to a scratch copy (one per job) and the tests run; one they now fail is
    counted killed. The result is recorded as today's."""
    from concurrent.futures import ThreadPoolExecutor
    from queue import Queue

    result = _measured()[module]
    copies: Queue[Path] = Queue()
    for _ in range(jobs):
        copies.put(_scratch_copy())

    now = (ROOT / module).read_text()

    def survives(mutant: dict) -> bool | None:
        """True: it survives; False: killed; None: the code it mutated is gone."""
        patch = mutant.get("diff", "").partition("--- mutation diff ---\n")[2]
        if not patch:
            return True  # recorded before diffs were: cannot be run again
        found = _mutated_now(patch, now)
        if found is None:
            return None
        mutant["line"], mutated = found
        scratch = copies.get()
        source = scratch / module
        original = source.read_bytes()
        try:
            source.write_text(mutated)
            env = {**os.environ, "PYTHONPATH": str(scratch)}
            # Every survivor ran its tests to the end once: a timeout here is a busy
            # (or paused) machine, not a loop, unless it happens twice.
            for _ in range(2):
                try:
                    done = subprocess.run(
                        [sys.executable, *PYTEST.split(), *MODULES[module]],
                        cwd=scratch, env=env, capture_output=True,
                        timeout=max(600.0, 10 * result["baseline_seconds"]),
                    )  # fmt: skip
                    return done.returncode == 0
                except subprocess.TimeoutExpired:
                    continue
            return False
        finally:
            source.write_bytes(original)
            copies.put(scratch)

    try:
        with ThreadPoolExecutor(jobs) as pool:
            alive = list(pool.map(survives, result["surviving"]))
    finally:
        while not copies.empty():
            shutil.rmtree(copies.get(), ignore_errors=True)
    kept = [m for m, left in zip(result["surviving"], alive, strict=True) if left]
    gone = alive.count(None)
    killed = len(result["surviving"]) - len(kept) - gone
    return {
        **result,
        "mutants": result["mutants"] - gone,
        "killed": result["killed"] + killed,
        "survived": len(kept),
        "surviving": kept,
        "score": _score(result["killed"] + killed, len(kept)),
        "rechecked": f"{killed} survivors killed by the tests as of the recheck"
        + (f", {gone} gone with the code they mutated" if gone else ""),
    }


def main(argv: list[str]) -> int:
    if argv == ["--rescore"]:
        rescore()
        return 0
    if len(argv) == 3 and argv[0] == "--relocate":
        moved, lost = relocate(argv[1], argv[2])
        print(f"{argv[1]}: {moved} rows moved; lines changed since {argv[2]}: {lost or 'none'}")
        return 0
    if len(argv) in (2, 3) and argv[0] == "--recheck":
        result = recheck(argv[1], int(argv[2]) if len(argv) == 3 else 1)
        print(f"{argv[1]}: {result['rechecked']}; {result['survived']} survive")
        _record([result])
        return 0
    jobs = 1
    if "--jobs" in argv:
        at = argv.index("--jobs")
        jobs = int(argv[at + 1])
        argv = argv[:at] + argv[at + 2 :]
    chosen = argv or list(MODULES)
    unknown = [m for m in chosen if m not in MODULES]
    if unknown:
        print(f"not a mutated module: {', '.join(unknown)} (see MODULES)", file=sys.stderr)
        return 2
    results = []
    for module in chosen:
        started = time.perf_counter()
        result = mutate(module, MODULES[module], jobs)
        results.append(result)
        score = "—" if result["score"] is None else f"{100 * result['score']:.1f} %"
        seconds = time.perf_counter() - started
        print(
            f"{module}: {result['killed']} of {result['killed'] + result['survived']} killed "
            f"({score}), {result['equivalent']} equivalent, in {seconds:.0f} s"
        )
        for mutant in result["surviving"]:
            print(f"  survived: line {mutant['line']} {mutant['operator']} #{mutant['occurrence']}")
    _record(results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
