"""Object-store and PACS reads under first-byte latency: does a worker still parse at
full speed while the network waits? (`make bench-latency`, part of `make bench`)

Each service runs on 127.0.0.1 behind a proxy that waits a fixed time before
forwarding every object read (S3 and GCS ranged GETs, Azure blob GETs, DICOMweb
series and metadata GETs); listings are not delayed. The same archive is loaded
from each with `dicom-loader run … --target none --workers 1` at 0 ms and at the
injected latency, and extraction files/s are compared within the run: the target
is a ratio ≥ 0.8 at 100 ms. A third run caps the reads in flight at 10 (botocore's
default pool), which is what a worker had before it read ahead.

Services: moto (S3), gcp-storage-emulator (GCS), Azurite (Azure Blob, `npm ci`),
Orthanc with its DICOMweb plugin (Debian's packages; `make test` installs them).

Environment: LATENCY_MS (default 100), LATENCY_OBJECTS (default 2,000),
LATENCY_SERVICES (any of s3,gcs,azure,dicomweb; default all), BENCH_WORK.
Results: benchmarks/results/DATE-latency.{json,md}.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))  # the tests' server helpers (Orthanc, ports, Azurite's key)

from loader.synth import synthesize  # noqa: E402
from tests.conftest import (  # noqa: E402
    azurite_connection,
    free_port,
    running_orthanc,
    stored_in_orthanc,
    wait_for_port,
)

OBJECTS_PER_PATIENT = 10.3  # what synth writes on average
TARGET_RATIO = 0.8
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


def is_object_read(method: str, path: str, headers: Any) -> bool:
    """Whether a request is one the latency applies to: a read of an object's bytes,
    or of a DICOMweb study's series or metadata (not a listing)."""
    if method != "GET":
        return False
    if headers.get("Range") or headers.get("x-ms-range") or "alt=media" in path:
        return True
    return "/studies/" in path and "/series" in path


STATS_PATH = "/__latency_stats"


def serve_proxy(upstream: str, delay: float, port: int) -> None:
    """A reverse proxy to `upstream` on 127.0.0.1:`port` that waits `delay` seconds
    before each object read and counts the reads in flight at once (GET STATS_PATH).
    asyncio, in a process of its own: it must not be what limits a run."""
    import asyncio

    import aiohttp
    from aiohttp import web

    stats: dict[str, Any] = {"reads": 0, "in_flight": 0, "most_in_flight": 0, "lists": 0}
    requested: dict[str, int] = {}  # every other GET or HEAD, by path (bench-reload-s3)

    async def forward(request: web.Request) -> web.StreamResponse:
        if request.path == STATS_PATH:
            return web.json_response({**stats, "requested": requested})
        path = request.path_qs
        reading = is_object_read(request.method, path, request.headers)
        if request.method == "GET" and "list-type=" in request.query_string:
            stats["lists"] += 1
        elif request.method in ("GET", "HEAD"):
            requested[request.path] = requested.get(request.path, 0) + 1
        if reading:
            stats["reads"] += 1
            stats["in_flight"] += 1
            stats["most_in_flight"] = max(stats["most_in_flight"], stats["in_flight"])
        try:
            if reading and delay:
                await asyncio.sleep(delay)
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers.pop("Host", None)
            body = await request.read()
            session: aiohttp.ClientSession = request.app["session"]
            async with session.request(
                request.method, upstream + path, headers=headers, data=body or None,
                allow_redirects=False, auto_decompress=False,
            ) as answer:  # fmt: skip
                data = await answer.read()
                kept = {
                    k: v
                    for k, v in answer.headers.items()
                    if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"
                }
                return web.Response(status=answer.status, body=data, headers=kept)
        finally:
            if reading:
                stats["in_flight"] -= 1

    async def start(app: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=0)
        app["session"] = aiohttp.ClientSession(connector=connector, skip_auto_headers=["Host"])

    async def stop(app: web.Application) -> None:
        await app["session"].close()

    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/{tail:.*}", forward)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


@dataclass
class Proxy:
    url: str
    process: subprocess.Popen[bytes]

    def stats(self) -> dict[str, Any]:
        """Object reads (and how many at once), LIST requests, and every other GET or
        HEAD by its (unquoted) path, since the proxy started."""
        with urllib.request.urlopen(self.url + STATS_PATH, timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]


@contextmanager
def proxied(upstream: str, delay: float) -> Iterator[Proxy]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "proxy", upstream, str(delay), str(port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        yield Proxy(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        process.wait()


# Each service: a context manager that starts it, uploads the archive and yields
# (upstream URL, source URL template with {root} for the proxy's URL, storage options
# template likewise).
Service = Callable[[Path, list[Path]], Any]


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 server in a process of its own on 127.0.0.1: its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait()


@contextmanager
def s3_service(archive: Path, files: list[Path]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    import s3fs

    with moto_server() as upstream:
        credentials = {"key": "bench", "secret": "bench"}
        fs = s3fs.S3FileSystem(endpoint_url=upstream, **credentials)
        fs.mkdir("bench")
        fs.put(str(archive) + "/", "bench/archive/", recursive=True)
        yield upstream, "s3://bench/archive", {"endpoint_url": "{root}", **credentials}


# gcp-storage-emulator answers one request at a time (http.server.HTTPServer), closes
# every connection (HTTP/1.0) and queues 5 connections, where GCS serves many at once
# over kept-alive connections (https://cloud.google.com/storage/docs/request-rate):
# with 100 connections opening together, the rest wait for TCP's 1 s retransmission.
# Run it on the standard library's threading server with a deep queue and HTTP/1.1,
# or the emulator would bound every run.
_THREADED_GCS_EMULATOR = """
import sys, threading, http.server
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
http.server.HTTPServer = Server
from gcp_storage_emulator import server
server.RequestHandler.protocol_version = "HTTP/1.1"
server.RequestHandler.disable_nagle_algorithm = True
server.create_server("127.0.0.1", int(sys.argv[1]), in_memory=True).start()
threading.Event().wait()
"""


@contextmanager
def gcs_service(archive: Path, files: list[Path]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    import gcsfs

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", _THREADED_GCS_EMULATOR, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        upstream = f"http://127.0.0.1:{port}"
        fs = gcsfs.GCSFileSystem(endpoint_url=upstream, token="anon", project="bench")
        fs.mkdir("bench")
        fs.put(str(archive) + "/", "bench/archive/", recursive=True)
        options = {"endpoint_url": "{root}", "token": "anon", "project": "bench"}
        yield upstream, "gs://bench/archive", options
    finally:
        process.terminate()
        process.wait()


@contextmanager
def azure_service(archive: Path, files: list[Path]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    import adlfs

    binary = REPO / "node_modules" / ".bin" / "azurite-blob"
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        process = subprocess.Popen(
            [str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location",
             data, "--silent", "--skipApiVersionCheck", "--loose"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for_port(port, process)
            upstream = f"http://127.0.0.1:{port}"
            fs = adlfs.AzureBlobFileSystem(connection_string=azurite_connection(upstream))
            fs.mkdir("bench")
            fs.put(str(archive) + "/", "bench/archive/", recursive=True)
            yield (
                upstream,
                "az://bench/archive",
                {"connection_string": azurite_connection("{root}")},
            )
        finally:
            process.kill()
            process.wait()


@contextmanager
def dicomweb_service(archive: Path, files: list[Path]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    with tempfile.TemporaryDirectory() as folder, running_orthanc(Path(folder)) as root:
        stored_in_orthanc(root, files)
        yield root, "dicomweb+{root}/dicom-web", {}


SERVICES: dict[str, Service] = {
    "s3": s3_service,
    "gcs": gcs_service,
    "azure": azure_service,
    "dicomweb": dicomweb_service,
}


def _filled(template: Any, root: str) -> Any:
    if isinstance(template, str):
        return template.replace("{root}", root)
    return {k: _filled(v, root) for k, v in template.items()}


def load(source: str, options: dict[str, Any], extra: list[str]) -> dict[str, Any]:
    """One `dicom-loader run` with one worker and no warehouse; its report."""
    with tempfile.TemporaryDirectory() as out:
        report = Path(out) / "report.json"
        command = [
            str(REPO / ".venv" / "bin" / "dicom-loader"), "run", source, "--target", "none",
            "--workers", "1", "--cluster-min-objects", "0", "--out", f"{out}/pq",
            "--report", str(report), *extra,
        ]  # fmt: skip
        for key, value in options.items():
            command += ["--storage-option", f"{key}={value}"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return json.loads(report.read_text())  # type: ignore[no-any-return]


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    split = report["worker_time"]
    return {
        "files_per_second": report["files_per_second"],
        "listed": report["listed"],
        "error_files": report["error_files"],
        "bytes_read_per_object": report["bytes_read_per_object"],
        "read_wait_share": split["read_wait_share"],
        "worker_peak_rss_mb": round(report["peak_rss_bytes"]["worker"] / 2**20, 1),
    }


def measure(name: str, service: Service, archive: Path, files: list[Path], delay: float):
    print(f"{name}: starting and uploading {len(files):,} objects", flush=True)
    with service(archive, files) as (upstream, source_template, options_template):
        results: dict[str, Any] = {}
        runs = (
            ("no latency", 0.0, []),
            (f"{delay * 1000:.0f} ms", delay, []),
            (f"{delay * 1000:.0f} ms, 10 in flight", delay, ["--read-concurrency", "10"]),
        )
        for label, wait, extra in runs:
            if name == "dicomweb" and extra:
                extra = ["--storage-option", "studies_ahead=1"]  # a study at a time
            with proxied(upstream, wait) as proxy:
                source = _filled(source_template, proxy.url)
                report = load(source, _filled(options_template, proxy.url), extra)
                seen = proxy.stats()
                # The ratio means something only if the object reads went through the
                # proxy (which delays each one it counts) and every run loaded the same.
                assert seen["reads"] > 0 and report["loaded"] > 0, (label, seen)
                most = seen["most_in_flight"]
                results[label] = {
                    **_figures(report),
                    "loaded": report["loaded"],
                    "reads_through_proxy": seen["reads"],
                    "most_reads_in_flight": most,
                }
            print(f"  {label}: {results[label]}", flush=True)
        assert len({r["loaded"] for r in results.values()}) == 1, results  # same objects
        base = results["no latency"]["files_per_second"]
        for label in list(results)[1:]:
            results[label]["ratio"] = round(results[label]["files_per_second"] / base, 3)
        return results


def markdown(record: dict[str, Any]) -> str:
    delay = f"{record['latency_ms']} ms"
    lines = [
        f"# Reads under first-byte latency ({record['date']})",
        "",
        f"Machine: {record['machine']}. Archive: {record['objects']:,} synthesized objects "
        f"({record['modalities']}). One worker, `--target none`; {delay} injected before "
        "every object read by a proxy in front of each service. Ratio: files/s ÷ files/s "
        "of the same service with no latency, in this run.",
        "",
        f"| service | files/s, no latency | files/s, {delay} | ratio | waiting for reads "
        f"| most reads in flight | worker peak MB | ratio with 10 in flight |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, results in record["services"].items():
        base, late, capped = results.values()
        lines.append(
            f"| {name} | {base['files_per_second']:,.0f} | {late['files_per_second']:,.0f} "
            f"| **{late['ratio']:.2f}** | {late['read_wait_share']:.0%} "
            f"| {late['most_reads_in_flight']} | {late['worker_peak_rss_mb']:.0f} "
            f"| {capped['ratio']:.2f} |"
        )
    lines += [
        "",
        f"Target: ratio ≥ {TARGET_RATIO} at 100 ms. For DICOMweb the last column fetches "
        "one study at a time (`studies_ahead=1`) instead of 10 reads in flight.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    delay = float(os.environ.get("LATENCY_MS", "100")) / 1000
    objects = int(os.environ.get("LATENCY_OBJECTS", "2000"))
    wanted = os.environ.get("LATENCY_SERVICES", ",".join(SERVICES)).split(",")
    work = Path(os.environ.get("BENCH_WORK", REPO / "bench-work"))
    patients = max(1, round(objects / OBJECTS_PER_PATIENT))
    archive = work / f"latency-archive-{patients}"
    if not archive.exists():
        synthesize(archive, patients=patients, seed=29, duplicate_fraction=0)
    files = sorted(p for p in archive.rglob("*") if p.is_file())
    modalities = _modalities(files)
    record: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}",
        "latency_ms": round(delay * 1000),
        "objects": len(files),
        "modalities": modalities,
        "services": {},
    }
    for name in wanted:
        record["services"][name] = measure(name, SERVICES[name], archive, files, delay)
    results = HERE / "results"
    stem = results / f"{record['date']}-latency"
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))
    short = [
        name
        for name, runs in record["services"].items()
        if list(runs.values())[1]["ratio"] < TARGET_RATIO and delay <= 0.1
    ]
    if short:
        sys.exit(f"below {TARGET_RATIO} of the no-latency files/s: {', '.join(short)}")


def _modalities(files: list[Path]) -> str:
    import pydicom

    counts: dict[str, int] = {}
    for path in files:
        try:
            modality = str(pydicom.dcmread(path, stop_before_pixels=True).Modality)
        except Exception:  # noqa: BLE001 - a deliberately bad file counts as such
            modality = "other"
        counts[modality] = counts.get(modality, 0) + 1
    top = sorted(counts.items(), key=lambda item: -item[1])
    return ", ".join(f"{m} {n / len(files):.0%}" for m, n in top[:6])


if __name__ == "__main__":
    if sys.argv[1:2] == ["proxy"]:
        serve_proxy(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
