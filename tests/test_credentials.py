"""Every credential form the loader accepts, in every position and spelling: kept out
of every line printed or logged, every report and page, refused by the settings file.

The list of forms is built from the parsers' own lists (the Snowflake target's
connector parameters, the storage options' credential names, the environment
variables the SDKs read), so a form added there is tested here.
"""

from __future__ import annotations

import html
import logging
import sys
from pathlib import Path

import pytest

from loader.cli import html_report
from loader.cli.app import main
from loader.cli.settings_file import default_map
from loader.core.credentials import (
    MASK,
    SECRET_VARIABLES,
    SNOWFLAKE_SECRETS,
    STORAGE_SECRETS,
    RedactingFilter,
    Redaction,
    redact,
    secret_names,
    secret_values,
)
from loader.core.errors import ConfigError
from loader.warehouse.snowflake_target import CONNECTOR_PARAMETERS, parse_snowflake_target
from tests.test_html_report import report_of_a_gone_run

SECRET = "Sx-5d7e21c0_never.print="  # base64 padding, as keys and tokens end
BASE = "snowflake://loader@acct/DB/SCHEMA"


def _spellings(name: str) -> list[str]:
    return sorted({name, name.upper(), name.replace("_", "-")})


def _target_forms() -> list[str]:
    """A Snowflake target holding the secret: as the URL's password, and as each
    secret parameter first, last and alone in the query."""
    forms = [f"snowflake://loader:{SECRET}@acct/DB/SCHEMA?warehouse=WH"]
    for name in sorted(SNOWFLAKE_SECRETS):
        forms += [
            f"{BASE}?{name}={SECRET}&warehouse=WH",
            f"{BASE}?warehouse=WH&{name}={SECRET}",
            f"{BASE}?{name}={SECRET}",
        ]
    return forms


def _storage_forms() -> list[str]:
    """A storage option holding the secret, by each credential name in each spelling,
    at the top level and inside a JSON value."""
    forms = []
    for name in sorted(STORAGE_SECRETS):
        for spelled in _spellings(name):
            forms.append(f"{spelled}={SECRET}")
        forms.append(f'client_kwargs={{"{name}": "{SECRET}", "region_name": "x"}}')
    return forms


ARGVS = (
    [["run", "s3://b/p", "--target", form] for form in _target_forms()]
    + [["run", "s3://b/p", f"--target={form}"] for form in _target_forms()]
    + [["run", "s3://b/p", "--storage-option", form] for form in _storage_forms()]
    + [["scan", "s3://b/p", f"--storage-option={form}"] for form in _storage_forms()]
    + [["run", f"dicomweb+https://user:{SECRET}@pacs.example/dicom-web"]]
)


def test_every_secret_parameter_the_target_parser_accepts_is_listed():
    assert CONNECTOR_PARAMETERS | {"password"} >= SNOWFLAKE_SECRETS
    accepted = 0
    for form in _target_forms():
        try:
            target = parse_snowflake_target(form)
        except ConfigError as refused:  # `?password=`: the URL's user info holds it
            assert SECRET not in str(refused)
            continue
        accepted += 1
        assert SECRET not in target.description and SECRET not in repr(target)
        assert SECRET in target.connect_kwargs.values()  # still given to the connector
    assert accepted == 1 + 3 * len(SNOWFLAKE_SECRETS & CONNECTOR_PARAMETERS)


@pytest.mark.parametrize("argv", ARGVS, ids=lambda a: a[-1][:60])
def test_no_output_shows_a_secret_given_on_the_command_line(argv):
    redaction = Redaction.of(argv, {})
    assert SECRET not in " ".join(redaction.argv(argv))
    # A library's message may quote it in any wrapping: replaced all the same.
    message = f"connect failed for {SECRET!r}: {' '.join(argv)}"
    assert SECRET not in redaction(message)
    assert SECRET not in " ".join(html_report.redacted(["dicom-loader", *argv]))
    record = logging.LogRecord("loader", logging.WARNING, __file__, 1, "%s", (message,), None)
    RedactingFilter(redaction).filter(record)
    assert SECRET not in record.getMessage()


@pytest.mark.parametrize("variable", SECRET_VARIABLES)
def test_no_output_shows_a_secret_from_the_environment(variable):
    redaction = Redaction.of(["run", "s3://b/p"], {variable: SECRET})
    assert SECRET not in redaction(f"refused: {SECRET} (from {variable})")


@pytest.mark.parametrize(
    "text",
    [f'target = "{form}"\n' for form in _target_forms()]
    + [f"[run]\ntarget = {form!r}\n" for form in _target_forms()[:3]]
    + [
        f"storage-option = [{form!r}]\n"
        for form in _storage_forms()
        if "'" not in form  # TOML's literal strings hold no single quote
    ]
    + [f"[scan]\nstorage-option = {form!r}\n" for form in _storage_forms()[:4]],
)
def test_the_settings_file_refuses_every_form(tmp_path: Path, text: str):
    path = tmp_path / "dicom-loader.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        default_map(main, path, {})
    assert "holds a credential" in str(refused.value) and SECRET not in str(refused.value)


def test_non_secrets_pass_untouched():
    argv = [
        "run", "s3://bucket/x", "--storage-option", "endpoint_url=http://127.0.0.1:9000",
        "--storage-option", "token_file=/run/secrets/pacs", "--target",
        "snowflake://loader@acct/DB/S?warehouse=WH&private_key_file=/keys/k.p8&role=LOADER",
    ]  # fmt: skip
    assert Redaction.of(argv, {}).argv(argv) == argv


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # Exactly the value goes, the rest of the text stays as it was.
        ("password=hunter22&user=me", f"password={MASK}&user=me"),
        ('{"token": "abc", "user": "me"}', f'{{"token": "{MASK}", "user": "me"}}'),
        ("s3://me:hunter22@host/x", f"s3://me:{MASK}@host/x"),
        # A value inside one already replaced, then a later one.
        ("token=apassword=b secret=zzzz", f"token={MASK} secret={MASK}"),
        # An empty value is no secret: nothing to replace.
        ("password=&user=me", "password=&user=me"),
    ],
)
def test_redaction_replaces_exactly_the_values(text, shown):
    assert redact(text) == shown


def test_names_and_values_are_read_exactly():
    assert secret_names("--password=hunter22") == ["password"]
    assert secret_names('{"token": "abc"}') == ["token"]
    assert secret_names(["password=", "user=me"]) == []
    assert secret_values("token=&password=pw") == ["pw"]


def test_literals_from_four_characters_longest_first():
    """A given secret of four characters is replaced in free text (a shorter one
    would mangle it and is left to the forms); one that holds another goes whole."""
    redaction = Redaction.of(["--password=abcd", "--token=xyz", "--secret=abcd1234"], {})
    assert redaction("key abcd1234 and abcd and xyz") == f"key {MASK} and {MASK} and xyz"


def test_a_logged_exception_is_redacted_and_the_record_kept():
    only = RedactingFilter(Redaction())
    try:
        raise ValueError("refused password=hunter22")
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, "f", 1, "load failed", None, sys.exc_info())
    assert only.filter(failed) is True
    assert failed.exc_info is None and failed.msg == f"load failed (refused password={MASK})"
    try:
        raise ValueError("no credential here")
    except ValueError:
        plain = logging.LogRecord("x", logging.ERROR, "f", 1, "load failed", None, sys.exc_info())
    assert only.filter(plain) is True
    assert plain.exc_info is not None and plain.msg == "load failed"


def test_the_page_never_shows_a_secret_as_rendered(tmp_path: Path, monkeypatch):
    """The page's text as a browser shows it (entities unescaped) holds none of the
    secrets of its command line, in any form."""
    argv = ["dicom-loader", *[a for argv in ARGVS for a in argv]]
    monkeypatch.setattr("sys.argv", argv)
    path = tmp_path / "page.html"
    html_report.write(str(path), report_of_a_gone_run(tmp_path / "gone"))
    shown = html.unescape(path.read_text())
    assert SECRET not in shown and html.escape(SECRET) not in path.read_text()
    assert "s3://b/p" in shown  # the command is there, without its secrets


@pytest.mark.parametrize(
    "url",
    [
        f"dicomweb+https://user:{SECRET}@pacs.example/dicom-web",
        f"s3://user:{SECRET}@bucket/prefix",
    ],
)
def test_a_url_with_a_password_is_refused_before_anything_is_read(url):
    """A password in a source or --out URL would reach every object's URL, row and
    report: one line says where credentials go instead, without the password."""
    from loader.output.location import OutputRoot
    from loader.sources.listing import list_source

    for attempt in (lambda: next(list_source(url)), lambda: OutputRoot.of(url)):
        with pytest.raises(ConfigError) as refused:
            attempt()
        assert "holds a password" in str(refused.value) and SECRET not in str(refused.value)
