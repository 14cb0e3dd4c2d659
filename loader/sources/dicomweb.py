"""A DICOMweb server (a PACS) as a source: `dicomweb+http(s)://HOST/ROOT`.

QIDO-RS lists the studies, page by page (filters `since` → StudyDate, `modality` →
ModalitiesInStudy, given as query parameters of the source URL); each study is one
listed object, so shards are study batches and the ledger and `--resume` work as
for files. Processing a study asks QIDO-RS for its series and WADO-RS for each
series' metadata (DICOM JSON, never pixel data), a few series at a time, with
retries and backoff on 5xx, 429, timeouts and dropped connections.

Options come as storage options (`--storage-option`): `timeout` (seconds, default
30), `concurrency` (series requests in flight per study, default 4), `studies_ahead`
(studies a worker fetches while it parses earlier ones, default 32, as long as
those fetched hold less than `--read-ahead-mb`), `page_size`
(QIDO-RS limit, default 500), `token_file`. Credentials come from the environment:
DICOMWEB_TOKEN (a bearer token), or DICOMWEB_USER and DICOMWEB_PASSWORD (basic);
they are never logged or written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from loader.core.errors import ConfigError, ListingError, ObjectReadError, Transient
from loader.sources.storage import retry_transient

SCHEMES = ("dicomweb+http://", "dicomweb+https://")
FILTERS = {"since": "StudyDate", "modality": "ModalitiesInStudy"}
_UID = "0020000D"
_SERIES_UID = "0020000E"
_SOP_UID = "00080018"


def is_dicomweb(url: str) -> bool:
    return url.startswith(SCHEMES)


class TransientHttpError(Transient, ConnectionError):
    """A status worth retrying: 5xx or 429."""


@dataclass(frozen=True)
class Server:
    """A DICOMweb root and how to talk to it."""

    root: str  # http(s)://host/root, no trailing slash
    timeout: float = 30.0
    concurrency: int = 4
    page_size: int = 500
    studies_ahead: int = 32
    token_file: str | None = None

    @classmethod
    def of(cls, url: str, options: dict[str, Any] | None = None) -> Server:
        parts = urlsplit(url.removeprefix("dicomweb+"))
        root = f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")
        root = root.split("/studies/", 1)[0]
        settings = dict(options or {})
        try:
            return cls(
                root=root,
                timeout=float(settings.get("timeout", cls.timeout)),
                concurrency=max(1, int(settings.get("concurrency", cls.concurrency))),
                page_size=max(1, int(settings.get("page_size", cls.page_size))),
                studies_ahead=max(1, int(settings.get("studies_ahead", cls.studies_ahead))),
                token_file=settings.get("token_file"),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"DICOMweb option: {exc}") from None

    def session(self) -> requests.Session:
        session = requests.Session()
        session.headers["Accept"] = "application/dicom+json"
        token = os.environ.get("DICOMWEB_TOKEN")
        if self.token_file:
            token = Path(self.token_file).read_text(encoding="utf-8").strip()
        if token:
            session.headers["Authorization"] = f"Bearer {token}"
        elif os.environ.get("DICOMWEB_USER"):
            session.auth = (os.environ["DICOMWEB_USER"], os.environ.get("DICOMWEB_PASSWORD", ""))
        return session

    def get(
        self, session: requests.Session, path: str, params: dict[str, Any] | None = None
    ) -> tuple[Any, int]:
        """The JSON of GET `path` under the root, and its size in bytes; retried when
        worth it."""
        url = f"{self.root}/{path}"

        def attempt() -> Any:
            response = session.get(url, params=params, timeout=(self.timeout, self.timeout))
            if response.status_code >= 500 or response.status_code == 429:
                raise TransientHttpError(f"HTTP {response.status_code} from {url}")
            if response.status_code in (401, 403):
                raise PermissionError(f"HTTP {response.status_code} from {url}")
            if response.status_code == 404:
                raise FileNotFoundError(f"HTTP 404 from {url}")
            if response.status_code == 204 or not response.content:
                return [], 0
            if response.status_code >= 400:
                raise ValueError(f"HTTP {response.status_code} from {url}")
            return response.json(), len(response.content)

        return retry_transient(attempt)


def with_filters(source: str, since: str | None, modality: str | None) -> str:
    """`source` with the QIDO-RS filters of `--since` and `--modality` added."""
    wanted = {name: value for name, value in (("since", since), ("modality", modality)) if value}
    if not wanted:
        return source
    if not is_dicomweb(source):
        raise ConfigError("--since and --modality apply to dicomweb+http(s):// sources only")
    if "since" in wanted and not re.fullmatch(r"\d{4}-?\d{2}-?\d{2}", wanted["since"]):
        raise ConfigError(f"--since {wanted['since']!r} is not a date (YYYYMMDD or YYYY-MM-DD)")
    return source + ("&" if "?" in source else "?") + urlencode(wanted)


def _value(attributes: dict[str, Any], tag: str) -> str | None:
    values = (attributes.get(tag) or {}).get("Value")
    return str(values[0]) if values else None


def _study_pages(
    source: str, options: dict[str, Any] | None, fields: tuple[str, ...] = ()
) -> Iterator[list[dict[str, Any]]]:
    """The QIDO-RS pages of the studies the source's filters select, with `fields`
    included, until an empty page (a server may cap a page below `page_size`); a
    server that answers a later offset with a page it sent before stops the listing
    with a ListingError."""
    server = Server.of(source, options)
    query = parse_qs(urlsplit(source).query)
    params: dict[str, Any] = {"includefield": ",".join((_UID, *fields))}
    for name, tag in FILTERS.items():
        if name in query:
            value = query[name][-1]
            params[tag] = f"{value.replace('-', '')}-" if name == "since" else value
    session = server.session()
    offset = 0
    pages_seen: set[int] = set()  # a hash per page: a few thousand ints for a big PACS
    try:
        while True:
            page_params = {**params, "limit": server.page_size, "offset": offset}
            try:
                page, _ = server.get(session, "studies", page_params)
            except Exception as exc:  # requests' and the server's many failures
                raise ListingError(f"cannot list studies of {server.root}: {exc}") from exc
            uids = tuple(uid for uid in (_value(study, _UID) for study in page) if uid)
            if uids and hash(uids) in pages_seen:
                # A server that ignores `offset` answers every page with the first
                # one: paging on would loop, and stopping would load part of the PACS.
                raise ListingError(
                    f"{server.root} answered studies at offset {offset} with a page it had "
                    "already sent: it ignores QIDO-RS offset; raise --storage-option "
                    "page_size above its number of studies, or list it by --since ranges"
                )
            pages_seen.add(hash(uids))
            if not page:
                return
            yield page
            offset += len(page)
    finally:
        session.close()


def study_urls(source: str, options: dict[str, Any] | None = None) -> Iterator[str]:
    """The URL of every study the source's filters select (see `_study_pages`)."""
    root = Server.of(source, options).root
    scheme = source.split("://", 1)[0]
    for page in _study_pages(source, options):
        for study in page:
            uid = _value(study, _UID)
            if uid:
                yield f"{scheme}://{root.split('://', 1)[1]}/studies/{uid}"


_STUDY_INSTANCES = "00201208"  # NumberOfStudyRelatedInstances
_SERIES_INSTANCES = "00201209"  # NumberOfSeriesRelatedInstances
SHORT_EXAMPLES = 100  # studies that fall short, listed with their series


def incomplete_studies(
    source: str,
    options: dict[str, Any] | None,
    loaded: Callable[[list[str]], dict[str, int]],
    loaded_series: Callable[[str], dict[str, int]],
    stored_uid: Callable[[str], str] = str,
) -> dict[str, Any]:
    """Studies whose loaded instances fall short of the count the server reports
    (NumberOfStudyRelatedInstances): how many, and the first SHORT_EXAMPLES with
    the series that fall short (NumberOfSeriesRelatedInstances). `loaded` gives the
    loaded instances of a page's study UIDs, `loaded_series` those of a study's
    series, both by UID as stored; `stored_uid` turns the server's UID into it (a
    keyed UID with --pseudonymize-uids), and the report names stored UIDs only. The
    server is listed again, a page at a time, so nothing grows with the PACS."""
    count, examples = 0, list[dict[str, Any]]()
    server = Server.of(source, options)
    for page in _study_pages(source, options, (_STUDY_INSTANCES,)):
        reported = {
            uid: int(_value(study, _STUDY_INSTANCES) or 0)
            for study in page
            if (uid := _value(study, _UID))
        }
        found = loaded([stored_uid(uid) for uid in reported])
        for uid, expected in reported.items():
            stored = stored_uid(uid)
            if found.get(stored, 0) >= expected:
                continue
            count += 1
            if len(examples) < SHORT_EXAMPLES:
                series = _short_series(server, uid, loaded_series(stored), stored_uid)
                examples.append(
                    {
                        "study": stored,
                        "reported": expected,
                        "loaded": found.get(stored, 0),
                        "series": series,
                    }
                )
    return {"count": count, "examples": examples}


def _short_series(
    server: Server, study: str, loaded: dict[str, int], stored_uid: Callable[[str], str]
) -> list[dict[str, Any]]:
    """The series of a short study whose loaded instances fall short of the count the
    server reports, by stored UID."""
    session = server.session()
    try:
        listed, _ = server.get(
            session, f"studies/{study}/series", {"includefield": _SERIES_INSTANCES}
        )
    except Exception:  # noqa: BLE001 - the study's shortfall is reported all the same
        return []
    finally:
        session.close()
    reported = {
        uid: int(_value(s, _SERIES_INSTANCES) or 0)
        for s in listed
        if (uid := _value(s, _SERIES_UID))
    }
    stored = {uid: stored_uid(uid) for uid in reported}
    return [
        {"series": stored[uid], "reported": n, "loaded": loaded.get(stored[uid], 0)}
        for uid, n in sorted(reported.items())
        if loaded.get(stored[uid], 0) < n
    ]


@dataclass
class StudyContents:
    """What a study's metadata requests gave: every instance served (WADO-RS URL,
    DICOM JSON), the bytes read, and the objects that could not be read with why
    (an instance's URL, or a series' when its instances cannot be known)."""

    instances: list[tuple[str, dict[str, Any]]]
    read: int
    unread: list[tuple[str, str]]
    # instances read one by one, their series' metadata not served (see study_instances)
    fallbacks: int = 0


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def study_instances(study_url: str, options: dict[str, Any] | None = None) -> StudyContents:
    """Every instance of a study, in series and SOP Instance UID order, each once.

    A series is read with one WADO-RS series metadata request. When the server does
    not serve that (Orthanc answers 404 for a series whose UID it holds twice, in two
    patients), the series' instances are listed with QIDO-RS and each is read with
    its own instance metadata request (both defined by PS3.18 for every server); an
    instance that cannot be read either is unread, once, with both reasons. Raises
    ObjectReadError naming the study when its series cannot be listed."""
    server = Server.of(study_url, options)
    study = study_url.rstrip("/").rsplit("/studies/", 1)[1]
    session = server.session()

    def metadata(uid: str) -> tuple[Any, int] | BaseException:
        try:
            return server.get(session, f"studies/{study}/series/{uid}/metadata")
        except Exception as exc:  # noqa: BLE001 - requests' and the server's many failures
            return exc

    contents = StudyContents([], 0, [])
    try:
        try:
            listed, contents.read = server.get(session, f"studies/{study}/series")
        except Exception as exc:  # requests' and the server's many failures
            raise ObjectReadError(
                study_url, f"study metadata not fetched: {_failure(exc)}"
            ) from exc
        # A server may list one series UID more than once (Orthanc: once per patient).
        series = sorted({uid for uid in (_value(s, _SERIES_UID) for s in listed) if uid})
        with ThreadPoolExecutor(server.concurrency) as pool:
            responses = list(pool.map(metadata, series))
        for uid, response in zip(series, responses, strict=True):
            if isinstance(response, BaseException):
                _instance_by_instance(server, session, study, uid, _failure(response), contents)
                continue
            instances, size = response
            contents.read += size
            _add_instances(server, study, uid, instances, contents)
    finally:
        session.close()
    return contents


def _add_instances(
    server: Server, study: str, series: str, instances: list[Any], contents: StudyContents
) -> None:
    """A series' instances, in SOP Instance UID order, each UID once."""
    series_url = f"{server.root}/studies/{study}/series/{series}"
    seen: set[str] = set()
    for instance in sorted(instances, key=lambda i: _value(i, _SOP_UID) or ""):
        sop = _value(instance, _SOP_UID) or ""
        if sop in seen:
            continue
        seen.add(sop)
        contents.instances.append((f"{series_url}/instances/{sop}", instance))


def _instance_by_instance(
    server: Server,
    session: requests.Session,
    study: str,
    uid: str,
    why: str,
    contents: StudyContents,
) -> None:
    """A series whose metadata failed: its instances, as QIDO-RS lists them (each UID
    once), read one by one; those that cannot be read are unread, and the series
    itself when its instances cannot be listed."""
    series_url = f"{server.root}/studies/{study}/series/{uid}"
    reason = f"series metadata not fetched: {why}"
    try:
        listed, size = server.get(session, f"studies/{study}/series/{uid}/instances")
    except Exception:  # noqa: BLE001 - the series is then one object
        contents.unread.append((series_url, reason))
        return
    contents.read += size
    sops = sorted({sop for sop in (_value(i, _SOP_UID) for i in listed) if sop})
    if not sops:
        contents.unread.append((series_url, reason))
        return
    found = []
    for sop in sops:
        try:
            instances, size = server.get(
                session, f"studies/{study}/series/{uid}/instances/{sop}/metadata"
            )
        except Exception as exc:  # noqa: BLE001 - requests' and the server's many failures
            contents.unread.append(
                (
                    f"{series_url}/instances/{sop}",
                    f"{reason}; instance metadata not fetched: {_failure(exc)}",
                )
            )
            continue
        contents.read += size
        served = [i for i in instances if _value(i, _SOP_UID) == sop][:1]
        if not served:
            contents.unread.append(
                (f"{series_url}/instances/{sop}", f"{reason}; instance metadata held no {sop}")
            )
            continue
        contents.fallbacks += 1
        found += served
    _add_instances(server, study, uid, found, contents)
