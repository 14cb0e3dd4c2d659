"""Each run option is declared once, on the settings field that carries it: the
option, its variable, its settings-file key and the shard's copy all follow from
that declaration, so a field without an option, an option without a field, or a
shard setting the run does not pass on fails here."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from loader.cli.app import main
from loader.cli.inspect_commands import scan
from loader.cli.options import StorageGiven, flag_options, flag_values
from loader.cli.run_commands import rebuild, run
from loader.cli.settings_file import default_map
from loader.core.flags import flag, flagged
from loader.jobs.settings import DuckDBOptions, RunSettings, Target
from loader.jobs.shard import RESOLVED, ShardSettings
from loader.warehouse.patterns.names import Names

# `run`'s parameters that several options or an argument make one value of.
GROUPED = {
    "source",  # SOURCE, with --since and --modality folded in
    "since",
    "modality",
    "out",
    "target",  # --target with Target's and DuckDBOptions' flags
    "storage_option",
    "anon",
    "scheduler_file",  # the other way to name RunSettings.scheduler
    "report_path",
}

# A value unlike any default for each flagged field of RunSettings, as typed on the
# command line, and the field's value it must become.
GIVEN = {
    "workers": ("3", 3),
    "cluster_min_objects": ("11", 11),
    "shard_size": ("7", 7),
    "scheduler": ("tcp://127.0.0.1:1", "tcp://127.0.0.1:1"),
    "dashboard": (None, True),
    "run_id": ("r-1", "r-1"),
    "resume": (None, True),
    "incremental": (None, True),
    "header_bytes": ("4096", 4096),
    "element_limit": ("99", 99),
    "read_concurrency": ("5", 5),
    "read_ahead_bytes": ("2.5", int(2.5 * 1024 * 1024)),  # --read-ahead-mb
    "member_limit": ("0.5", 512 * 1024),  # --member-limit-mb
    "frame_offsets": (None, True),
    "pseudonymize_key_file": ("key.bin", "key.bin"),
    "shift_dates": (None, True),
    "pseudonymize_uids": (None, True),
}


def _option_names(command: click.Command) -> dict[str, str]:
    """Parameter name → its first long flag, for each option of `command`."""
    return {
        p.name: next(o for o in p.opts if o.startswith("--"))
        for p in command.params
        if isinstance(p, click.Option) and p.name
    }


def test_every_run_setting_a_user_sets_is_one_option_of_run():
    declared = {f.name for f in flagged(RunSettings)}
    assert declared == set(GIVEN)  # a new flagged field needs its case here
    parameters = {p.name for p in run.params}
    target_fields = {f.name for f in flagged(Target)} | {f.name for f in flagged(DuckDBOptions)}
    assert parameters == declared | target_fields | GROUPED


def test_each_option_becomes_its_field_in_the_fields_unit(tmp_path: Path):
    options = _option_names(run)
    args = ["SRC"]
    for name, (text, _) in GIVEN.items():
        args += [options[name]] + ([text] if text is not None else [])
    params = run.make_context("run", args).params

    values = flag_values(RunSettings, dict(params))
    assert values == {name: value for name, (_, value) in GIVEN.items()}
    settings = RunSettings(source="SRC", **values)
    for name, (_, value) in GIVEN.items():
        assert getattr(settings, name) == value


def test_unit_options_take_their_unit_from_the_file_and_the_environment(tmp_path: Path):
    path = tmp_path / "dicom-loader.toml"
    path.write_text("[run]\nread-ahead-mb = 3\n")
    found = default_map(main, path, {"DICOM_LOADER_MEMBER_LIMIT_MB": "0.25"})
    params = run.make_context("run", ["SRC"], default_map=found["run"]).params

    values = flag_values(RunSettings, dict(params))
    assert values["read_ahead_bytes"] == 3 * 1024 * 1024
    assert values["member_limit"] == 256 * 1024


def test_commands_sharing_a_setting_share_its_declaration():
    run_options, rebuild_options = _option_names(run), _option_names(rebuild)
    for name in ("workers", "shard_size"):
        (field,) = flagged(RunSettings, name)
        assert run_options[name] == rebuild_options[name] == field.flag.name(name)
        shared = [p for p in (*run.params, *rebuild.params) if p.name == name]
        assert {p.help for p in shared} == {field.flag.help}


@pytest.mark.parametrize("cls", [RunSettings, Target, DuckDBOptions, Names])
def test_a_flag_is_declared_on_a_field_with_a_plain_default(cls):
    for field in flagged(cls):
        assert field.default is not dataclasses.MISSING, field.name
        assert field.flag.help.strip(), field.name


def test_the_shard_receives_every_setting_it_shares_with_the_run(tmp_path: Path):
    run_fields = typing.get_type_hints(RunSettings)
    shard_fields = typing.get_type_hints(ShardSettings)
    shared = set(shard_fields) - RESOLVED
    for name in shared:
        assert run_fields.get(name) == shard_fields[name], name
    key = tmp_path / "key.bin"
    key.write_bytes(b"k" * 32)
    settings = RunSettings(
        source="/archive",
        header_bytes=4096,
        element_limit=99,
        storage_options={"anon": True},
        pseudonymize_key_file=str(key),
        shift_dates=True,
        pseudonymize_uids=True,
        read_concurrency=5,
        read_ahead_bytes=12345,
        member_limit=678,
        frame_offsets=True,
    )
    slice_ = ShardSettings.of(settings, "/out", "r-1")
    for name in shared:
        assert getattr(slice_, name) == getattr(settings, name), name
    defaults = ShardSettings(out="/out", run_id="r-1", source="/archive")
    assert all(getattr(slice_, n) != getattr(defaults, n) for n in shared - {"source"})
    assert (slice_.out, slice_.run_id, slice_.pseudonymize_key) == ("/out", "r-1", b"k" * 32)


# Options that are unset unless given (refused where they do not apply), by name.
SHOWN_UNSET = {"stage_file_mb"}


def test_the_help_shows_each_declared_default():
    """What --help says each option defaults to is the field's default, in the
    option's unit; an option refused where it does not apply shows none."""
    context = click.Context(run)
    shown = {p.name: p.get_help_record(context) for p in run.params if isinstance(p, click.Option)}
    for cls in (RunSettings, Target, DuckDBOptions):
        for field in flagged(cls):
            help_text = shown[field.name][1]
            assert help_text.startswith(field.flag.help), field.name
            added = help_text[len(field.flag.help) :]  # what click appends: default, range
            bounded = field.flag.minimum is not None or field.flag.maximum is not None
            assert bounded == ("x>" in added or "x<" in added or "<x" in added), (field, added)
            if field.name in SHOWN_UNSET or field.default is None:
                assert "default" not in added, (field.name, added)
                continue
            value = field.default / field.flag.per if field.flag.per != 1 else field.default
            if isinstance(field.flag.show_default, str):
                value = f"({field.flag.show_default})"
            elif isinstance(value, bool):
                continue  # a flag shows no default
            assert f"[default: {value}" in added, (field.name, added)  # "; x>=0" may follow


@pytest.mark.parametrize("cls", [RunSettings, Target, DuckDBOptions])
def test_a_value_out_of_its_declared_bounds_is_refused_before_any_work(cls):
    options = _option_names(run)
    bounded = [f for f in flagged(cls) if f.flag.minimum is not None or f.flag.maximum is not None]
    assert bounded or cls is Target  # the bounds this test is about exist
    for field in bounded:
        outside = []
        if field.flag.minimum is not None:
            whole = field.base_type is int and field.flag.per == 1
            outside.append(field.flag.minimum - (1 if whole else 0.001))
        if field.flag.maximum is not None:
            outside.append(field.flag.maximum + 1)
        for value in outside:
            text = str(int(value)) if float(value).is_integer() else str(value)
            with pytest.raises(click.BadParameter):
                run.make_context("run", ["SRC", options[field.name], text])


def test_storage_options_are_the_pairs_given_and_anon_only_when_asked():
    pairs = ("endpoint_url=http://127.0.0.1:9", 'client_kwargs={"region_name": "x"}')
    given = StorageGiven(pairs, anon=False)
    assert given.options == {
        "endpoint_url": "http://127.0.0.1:9",
        "client_kwargs": {"region_name": "x"},
    }
    assert StorageGiven(pairs, anon=True).options == {**given.options, "anon": True}
    assert StorageGiven((), anon=False).options == {}


def test_a_bad_grouped_option_is_one_line_not_a_traceback(tmp_path: Path):
    result = CliRunner().invoke(
        main,
        ["run", str(tmp_path), "--target", f"duckdb:///{tmp_path / 'w.duckdb'}",
         "--duckdb-memory-limit", "lots"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: --duckdb-memory-limit 'lots': give a size such as 512MB or 2GB"
    ]


def test_a_default_a_command_replaces_is_the_one_its_help_shows():
    context = click.Context(scan)
    (workers,) = [p for p in scan.params if p.name == "workers"]
    assert workers.default == 0
    assert "[default: 0]" in workers.get_help_record(context)[1]


def test_an_unset_option_reaches_its_field_only_when_given():
    options = _option_names(run)
    given = run.make_context("run", ["SRC", options["stage_file_mb"], "20"]).params
    assert flag_values(Target, dict(given))["stage_file_mb"] == 20.0
    unset = flag_values(Target, dict(run.make_context("run", ["SRC"]).params))
    assert "stage_file_mb" not in unset  # Target.parse then applies its own default


def test_anon_is_a_flag():
    assert run.make_context("run", ["SRC", "--anon"]).params["anon"] is True
    assert run.make_context("run", ["SRC"]).params["anon"] is False


@dataclasses.dataclass(frozen=True)
class _Example:
    """Settings declared the way the loader's are, in an order that puts an unset
    field before others."""

    first: int | None = flag(None, "Unset unless given.", unset=True)
    size: int = flag(10, "A plain option.")
    megabytes: int = flag(1 << 20, "Given in MB.", per=1 << 20, option="mb")


def test_flag_values_takes_each_field_given_and_only_those():
    values = flag_values(_Example, {"first": None, "size": 3, "megabytes": 0.5, "other": 1})
    assert values == {"size": 3, "megabytes": 512 * 1024}  # unset `first` left out
    assert flag_values(_Example, {"megabytes": 2.0}) == {"megabytes": 2 << 20}
    given = {"size": 4, "other": 1}
    assert flag_values(_Example, given) == {"size": 4} and given == {"other": 1}


def test_a_default_for_an_option_a_command_does_not_have_is_refused():
    with pytest.raises(TypeError, match="shard_sise"):
        flag_options(RunSettings, "workers", "shard_size", shard_sise=7)


README = Path(__file__).resolve().parent.parent / "README.md"


def _documented_defaults() -> dict[str, str]:
    """The run options table of README.md: each option's first name → its default
    column, as the user reads it."""
    rows: dict[str, str] = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `--"):
            continue
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        name = cells[0].split("`")[1].split()[0]
        rows.setdefault(name, cells[1])
    return rows


def test_the_readme_states_the_defaults_that_run():
    """Each default the README's table gives as a plain number or size is the one
    `run` applies (in the option's own unit): a default changed in code and not in
    the table, or the reverse, fails here."""
    documented = _documented_defaults()
    applied = {p.opts[0]: p.default for p in run.params if isinstance(p, click.Option)}
    for settings in (RunSettings, Target, DuckDBOptions):
        for field in flagged(settings):  # an unset option: its field's default applies
            if applied.get(field.flag.name(field.name), 0) is None and field.default:
                applied[field.flag.name(field.name)] = field.default / field.flag.per
    compared = {}
    for name, default in documented.items():
        text = default.strip("`")
        if name not in applied or not (text.isdigit() or text.endswith("MB")):
            continue
        value = applied[name]
        compared[name] = (text, str(int(value)) if isinstance(value, float) else str(value))
    assert {n: t for n, (t, _) in compared.items()} == {n: d for n, (_, d) in compared.items()}
    # the table's numeric defaults, every one of them compared
    assert set(compared) >= {
        "--cluster-min-objects",
        "--shard-size",
        "--element-limit",
        "--read-concurrency",
        "--read-ahead-mb",
        "--member-limit-mb",
        "--stage-file-mb",
        "--duckdb-memory-limit",
        "--load-batch-objects",
    }
