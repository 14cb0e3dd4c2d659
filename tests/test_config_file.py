"""dicom-loader.toml, driven as a user drives it: the command line wins over the
environment, which wins over the file, which wins over the defaults; what is wrong
in the file is one line naming it, and secrets are refused."""

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from loader.synth import synthesize

CLI = [sys.executable, "-m", "loader"]


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_LOADER_")}
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**clean, **(env or {})},
    )


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("config") / "archive"
    synthesize(root, patients=1, seed=9)
    return root


def test_command_line_then_environment_then_file_then_defaults(archive, tmp_path):
    (tmp_path / "dicom-loader.toml").write_text(
        'target = "duckdb:///from-file.duckdb"\n'
        'out = "out-from-file"\n'
        "[run]\n"
        "shard-size = 7\n"
        "workers = 0\n"
    )
    report = tmp_path / "report.json"
    done = _cli(
        "run",
        str(archive),
        "--target",
        f"duckdb:///{tmp_path / 'from-cli.duckdb'}",
        "--report",
        str(report),
        cwd=tmp_path,
        env={"DICOM_LOADER_OUT": str(tmp_path / "out-from-env")},
    )
    assert done.returncode == 0, done.stderr
    written = json.loads(report.read_text())
    assert written["target"].endswith("from-cli.duckdb")  # the command line wins
    assert written["out"] == str(tmp_path / "out-from-env")  # then the environment
    assert (
        not (tmp_path / "out-from-file").exists() and not (tmp_path / "from-file.duckdb").exists()
    )
    assert written["workers"] == 0  # the file's, where nothing else says
    con = duckdb.connect(str(tmp_path / "from-cli.duckdb"), read_only=True)
    sizes = [n for (n,) in con.execute("SELECT listed FROM dicom_load_history").fetchall()]
    con.close()
    assert len(sizes) > 1 and max(sizes) <= 7 < written["listed"]  # the file's shard size
    # Without the file, the defaults: one shard for so few objects.
    (tmp_path / "dicom-loader.toml").unlink()
    again = _cli(
        "run",
        str(archive),
        "--target",
        f"duckdb:///{tmp_path / 'defaults.duckdb'}",
        "--workers",
        "0",
        "--out",
        str(tmp_path / "pq"),
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr
    con = duckdb.connect(str(tmp_path / "defaults.duckdb"), read_only=True)
    (shards,) = con.execute("SELECT count(*) FROM dicom_load_history").fetchone()
    con.close()
    assert shards == 1  # 2,000 objects a shard by default


@pytest.mark.parametrize(
    "text, named",
    [
        ("shard-sise = 7\n", "shard-sise is not an option of any command"),
        ("[runn]\nworkers = 1\n", "[runn] is not a command"),
        ("[sql]\nworkers = 1\n", "[sql] workers is not an option of sql"),
        ('[run]\nworkers = "many"\n', "[run] workers: 'many' is not a valid integer"),
        ('target = "snowflake://me:hunter2@acct/DB/S"\n', "(password); name a connection of"),
        ('[run]\nstorage-option = ["secret=abc"]\n', "(secret); leave it to the cloud SDK"),
        ('[run]\nstage-url = "s3://k:hunter2@b/p/"\n', "; give it through the environment"),
        ("workers = \n", "not readable TOML"),
    ],
)
def test_what_is_wrong_in_the_file_is_one_line_naming_it(tmp_path, text, named):
    (tmp_path / "dicom-loader.toml").write_text(text)
    done = _cli("validate", cwd=tmp_path)
    assert done.returncode == 1
    assert named in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr
    assert "hunter2" not in done.stderr + done.stdout


def test_a_named_config_file_that_is_not_there(tmp_path):
    done = _cli("--config", "missing.toml", "validate", cwd=tmp_path)
    assert done.returncode == 1 and "missing.toml: no such file" in done.stderr


def test_the_variable_names_the_settings_file_the_flag_wins(archive, tmp_path):
    """DICOM_LOADER_CONFIG names a file outside the working folder; --config wins."""
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    named = elsewhere / "nightly.toml"
    named.write_text('[run]\nworkers = 0\nreport = "named.json"\n')
    target = f"duckdb:///{tmp_path / 'w.duckdb'}"
    env = {"DICOM_LOADER_CONFIG": str(named)}
    done = _cli("run", str(archive), "--target", target, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "named.json").read_text())["listed"] > 0
    overridden = _cli("--config", "missing.toml", "validate", cwd=tmp_path, env=env)
    assert overridden.returncode == 1 and "missing.toml: no such file" in overridden.stderr


@pytest.mark.slow
def test_an_option_given_many_times_takes_one_value_or_a_list_from_the_file(archive, tmp_path):
    """`report = "run.json"` is one report, not one per character; a list is several."""
    (tmp_path / "dicom-loader.toml").write_text(
        f'target = "duckdb:///{tmp_path / "w.duckdb"}"\n[run]\nworkers = 0\nreport = "run.json"\n'
    )
    assert _cli("run", str(archive), cwd=tmp_path).returncode == 0
    assert json.loads((tmp_path / "run.json").read_text())["listed"] > 0
    (tmp_path / "dicom-loader.toml").write_text(
        f'target = "duckdb:///{tmp_path / "w2.duckdb"}"\n[run]\nworkers = 0\n'
        'report = ["again.json", "again.html"]\n'
    )
    assert _cli("run", str(archive), cwd=tmp_path).returncode == 0
    assert (tmp_path / "again.json").exists()
    assert "<svg" in (tmp_path / "again.html").read_text()


@pytest.mark.slow  # over 4 s: make test only
def test_a_repeatable_option_from_its_variable_one_value_or_a_json_list(archive, tmp_path):
    """DICOM_LOADER_REPORT names one report, or several as a JSON list; a variable no
    option reads, or a list that is not one, is one line, never ignored."""
    target = f"duckdb:///{tmp_path / 'w.duckdb'}"
    one = _cli(
        "run", str(archive), "--target", target, "--workers", "0", cwd=tmp_path,
        env={"DICOM_LOADER_REPORT": "one.json"},
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    assert json.loads((tmp_path / "one.json").read_text())["listed"] > 0
    both = _cli(
        "run", str(archive), "--target", target, "--workers", "0", cwd=tmp_path,
        env={"DICOM_LOADER_REPORT": '["two.json", "two.html"]'},
    )  # fmt: skip
    assert both.returncode == 0, both.stderr
    assert (tmp_path / "two.json").exists() and "<svg" in (tmp_path / "two.html").read_text()
    for env, named in (
        ({"DICOM_LOADER_REPORTS": "r.json"}, "DICOM_LOADER_REPORTS is not an option"),
        ({"DICOM_LOADER_REPORT": '["a.json", 3]'}, "DICOM_LOADER_REPORT: one value, or a JSON"),
        ({"DICOM_LOADER_REPORT": '["a.json",'}, "DICOM_LOADER_REPORT: one value, or a JSON"),
        ({"DICOM_LOADER_WORKERS": "many"}, "DICOM_LOADER_WORKERS: 'many' is not a valid"),
    ):
        refused = _cli("validate", "--target", target, cwd=tmp_path, env=env)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
        assert named in refused.stderr, refused.stderr


def test_storage_options_from_the_variable_reach_the_store(s3, archive, tmp_path):
    """DICOM_LOADER_STORAGE_OPTION (one, or a JSON list) and DICOM_LOADER_ANON are the
    flags' equals: the endpoint they name is the one listed and read."""
    import s3fs

    options, traffic = s3
    bucket = f"env-{os.getpid()}-{tmp_path.name[-8:]}".lower().replace("_", "-")
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir(bucket)
    fs.put(str(archive) + "/", f"{bucket}/archive/", recursive=True)
    credentials = {"AWS_ACCESS_KEY_ID": options["key"], "AWS_SECRET_ACCESS_KEY": options["secret"]}
    endpoint = f"endpoint_url={options['endpoint_url']}"
    traffic.reset()
    done = _cli(
        "scan", f"s3://{bucket}/archive", cwd=tmp_path,
        env={**credentials, "DICOM_LOADER_STORAGE_OPTION": endpoint},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["objects"] == len(fs.find(f"{bucket}/archive")) > 0
    assert sum(traffic.gets.values()) > 0  # read from this endpoint
    listed = _cli(
        "scan", f"s3://{bucket}/archive", cwd=tmp_path,
        env={
            **credentials,
            "DICOM_LOADER_STORAGE_OPTION": json.dumps([endpoint, "default_block_size=65536"]),
        },
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["objects"] == json.loads(done.stdout)["objects"]


def test_the_settings_file_named_on_the_command_line_in_either_form(tmp_path):
    """`--config FILE` and `--config=FILE` name the file; a `--config` with nothing
    after it names none (click then says the option needs a value)."""
    from loader.cli.settings_file import config_path

    assert config_path(["run", "--config", "a.toml"], tmp_path, {}) == Path("a.toml")
    assert config_path(["--config=b.toml", "run"], tmp_path, {}) == Path("b.toml")
    assert config_path(["run", "--config"], tmp_path, {}) is None
    named = {"DICOM_LOADER_CONFIG": "c.toml"}
    assert config_path(["run", "--config"], tmp_path, named) == Path("c.toml")
    (tmp_path / "dicom-loader.toml").write_text("")
    assert config_path(["run"], tmp_path, {}) == tmp_path / "dicom-loader.toml"


def test_the_file_gives_options_never_a_commands_arguments(archive, tmp_path):
    """`source` is init's option: in the file it is init's default, never `run`'s
    SOURCE argument, which stays required."""
    (tmp_path / "dicom-loader.toml").write_text(f'source = "{archive}"\n')
    done = _cli("run", "--workers", "0", cwd=tmp_path)
    assert done.returncode == 2 and "Missing argument 'SOURCE'" in done.stderr, done.stderr
