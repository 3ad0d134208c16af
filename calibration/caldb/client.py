"""Fetch calibration files and index snapshots from a remote CALDB over HTTP.

The remote is any HTTP server that serves a svomflow CALDB tree (``index/latest.json``,
``index/v000042.json``, ``data/...``): ``python -m http.server`` in the CALDB root, nginx, an
object store. Transient failures (connection errors, timeouts, HTTP 5xx and 429) are retried
with exponential backoff and jitter, honouring ``Retry-After``; other 4xx errors are not
retried. A bearer token is read from ``$SVOMFLOW_CALDB_TOKEN_FILE`` (a runtime file, re-read at
every request so a rotated token works) or ``$SVOMFLOW_CALDB_TOKEN``; it is never logged,
stored on the client, or shown in errors. Credentials written in the URL
(``https://user:TOKEN@host/``) are masked in every log line, error and ``repr``; credentials
of either kind are sent over https only, or over plain http to loopback (a local mirror). Downloads go to a local cache (by checksum when it
is known, else by URL), are verified against their SHA-256 and are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time as _time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from svomflow.atomic import atomic_path, atomic_write_bytes, sha256_file
from svomflow.calibration.caldb.entry import CaldbEntry
from svomflow.calibration.caldb.redact import (
    check_transport,
    install_log_filter,
    redact,
    redact_url,
    split_credentials,
    url_secrets,
)
from svomflow.calibration.caldb.selection import choose_entry, filter_entries
from svomflow.errors import CalibrationNotFoundError, SvomflowError

__all__ = [
    "TOKEN_ENV",
    "TOKEN_FILE_ENV",
    "CaldbClient",
    "CaldbFetchError",
    "ChecksumMismatchError",
    "RemoteCaldb",
    "read_token",
]

log = logging.getLogger(__name__)
install_log_filter()  # httpx logs each request's full URL at INFO

TOKEN_ENV = "SVOMFLOW_CALDB_TOKEN"
TOKEN_FILE_ENV = "SVOMFLOW_CALDB_TOKEN_FILE"
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class CaldbFetchError(SvomflowError):
    """A calibration file or index could not be fetched from the remote CALDB."""


class ChecksumMismatchError(CaldbFetchError):
    """A downloaded file does not have the checksum the index records."""


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def read_token() -> str | None:
    """Return the bearer token (token file first, then environment), or ``None``.

    Raises
    ------
    CaldbFetchError
        If the token file is named but unreadable or holds more than one line (the message
        names the file, never its content).
    """
    file_name = os.environ.get(TOKEN_FILE_ENV, "").strip()
    if file_name:
        try:
            token = Path(file_name).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CaldbFetchError(
                f"cannot read the CALDB token file named by {TOKEN_FILE_ENV} "
                f"({file_name}): {exc.strerror or type(exc).__name__}"
            ) from None
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        return None
    if any(c.isspace() or ord(c) < 33 or ord(c) > 126 for c in token):
        where = TOKEN_FILE_ENV if file_name else TOKEN_ENV
        raise CaldbFetchError(f"the CALDB token from {where} has invalid characters")
    return token


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class CaldbClient:
    """HTTP client of a remote CALDB, with retries, bearer token and a local cache.

    Parameters
    ----------
    base_url
        Root URL of the remote CALDB tree (relative paths are resolved against it).
    cache_dir
        Download cache (default ``$SVOMFLOW_HOME/caldb-cache``).
    attempts
        Total tries per request for transient failures.
    backoff_s, max_backoff_s
        First retry delay and its cap; the delay doubles at each retry (with +-25 % jitter).
    timeout_s
        Connect/read timeout of one request.
    transport
        Optional httpx transport (tests).
    """

    def __init__(
        self,
        base_url: str,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        attempts: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"remote CALDB URL must start with http:// or https://: {redact(base_url)!r}"
            )
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.base_url = base_url.rstrip("/") + "/"
        if cache_dir is None:
            from svomflow.paths import data_home

            cache_dir = data_home() / "caldb-cache"
        self.cache_dir = Path(cache_dir).expanduser()
        self.attempts = int(attempts)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.timeout_s = float(timeout_s)
        self._transport = transport

    def __repr__(self) -> str:
        shown = redact_url(self.base_url)
        return f"CaldbClient(base_url={shown!r}, cache_dir={str(self.cache_dir)!r})"

    def url_for(self, url_or_relpath: str) -> str:
        """Return an absolute URL (relative paths are taken under ``base_url``)."""
        if url_or_relpath.startswith(("http://", "https://")):
            return url_or_relpath
        return urljoin(self.base_url, url_or_relpath.lstrip("/"))

    def cache_path(self, url_or_relpath: str, sha256: str | None = None) -> Path:
        """Return where a file is cached: by checksum if known, else by URL."""
        url = self.url_for(url_or_relpath)
        name = Path(urlsplit(url).path).name or "download"
        if not all(c.isalnum() or c in "._+-" for c in name) or name.startswith("."):
            name = "download"
        if sha256:
            sha = sha256.lower()
            return self.cache_dir / "by-sha256" / sha[:2] / sha / name
        key = hashlib.sha256(url.encode()).hexdigest()
        return self.cache_dir / "by-url" / key[:2] / key / name

    # -- requests -----------------------------------------------------------------------------
    def _request(self, url: str, sink: Any) -> None:
        """GET ``url`` with retries; ``sink(response)`` consumes a 2xx response body."""
        last = ""
        in_url = url_secrets(url)
        shown = redact(url)
        # user information goes as basic auth, not in the URL (that httpx would log)
        bare_url, basic = split_credentials(url)
        if in_url and (why := check_transport(url, "the credentials in the CALDB URL")):
            raise CaldbFetchError(why)
        for attempt in range(1, self.attempts + 1):
            token = read_token()  # re-read at every attempt: the token may have been rotated
            if token and (why := check_transport(url, "the CALDB bearer token")):
                raise CaldbFetchError(why)
            secrets = [*in_url, token]
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            try:
                # One short-lived connection per request: nothing (sockets, token) outlives it.
                with (
                    httpx.Client(
                        timeout=self.timeout_s, follow_redirects=True, transport=self._transport
                    ) as http,
                    http.stream("GET", bare_url, headers=headers, auth=basic) as resp,
                ):
                    if resp.status_code in _RETRY_STATUS:
                        raise _Transient(f"HTTP {resp.status_code}", _retry_after(resp))
                    if resp.status_code >= 400:
                        hint = " (check the CALDB token)" if resp.status_code in (401, 403) else ""
                        raise CaldbFetchError(
                            f"GET {shown} failed: HTTP {resp.status_code} "
                            f"{resp.reason_phrase}{hint}"
                        )
                    sink(resp)
                    return
            except _Transient as exc:
                last, wait = str(exc), exc.retry_after
            except httpx.TransportError as exc:
                last, wait = redact(f"{type(exc).__name__}: {exc}", secrets), None
            if attempt == self.attempts:
                break
            delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
            delay *= random.uniform(0.75, 1.25)
            if wait is not None:
                delay = min(self.max_backoff_s, max(delay, wait))
            log.warning(
                "CALDB fetch %s: %s (attempt %d/%d); retrying in %.2f s",
                shown,
                last,
                attempt,
                self.attempts,
                delay,
            )
            _time.sleep(delay)
        raise CaldbFetchError(f"GET {shown} failed after {self.attempts} attempt(s): {last}")

    def get_bytes(self, url_or_relpath: str) -> bytes:
        """Fetch a (small) resource into memory, uncached."""
        url = self.url_for(url_or_relpath)
        chunks: list[bytes] = []

        def sink(resp: httpx.Response) -> None:
            chunks.clear()
            chunks.extend(resp.iter_bytes())

        self._request(url, sink)
        return b"".join(chunks)

    def get_json(self, url_or_relpath: str) -> Any:
        """Fetch and decode a JSON resource, uncached."""
        url = self.url_for(url_or_relpath)
        try:
            return json.loads(self.get_bytes(url))
        except ValueError:
            raise CaldbFetchError(f"GET {redact(url)}: the response is not valid JSON") from None

    def fetch(
        self, url_or_relpath: str, *, sha256: str | None = None, refresh: bool = False
    ) -> Path:
        """Download a file into the cache (or reuse the cached copy) and return its path.

        With ``sha256`` the cached copy is verified before reuse (a corrupted one is fetched
        again) and a download with another checksum is rejected and not cached.

        Raises
        ------
        CaldbFetchError
            On a non-transient HTTP error, or when retries are exhausted.
        ChecksumMismatchError
            When the downloaded content does not match ``sha256``.
        """
        url = self.url_for(url_or_relpath)
        target = self.cache_path(url, sha256)
        if target.is_file() and not refresh:
            if sha256 is None or sha256_file(target) == sha256.lower():
                log.debug("CALDB cache hit %s", target)
                return target
            log.warning("cached %s is corrupted; fetching it again", target)

        with atomic_path(target) as tmp:

            def sink(resp: httpx.Response) -> None:
                h = hashlib.sha256()
                with open(tmp, "wb") as fh:
                    for chunk in resp.iter_bytes(1 << 20):
                        fh.write(chunk)
                        h.update(chunk)
                got = h.hexdigest()
                if sha256 is not None and got != sha256.lower():
                    raise ChecksumMismatchError(
                        f"GET {redact(url)}: checksum mismatch (got sha256 {got[:16]}..., index says "
                        f"{sha256[:16]}...); the download was discarded"
                    )

            self._request(url, sink)
        return target


class RemoteCaldb:
    """A read-only mirror of a remote CALDB: same ``select``/``list`` as the local one.

    The index snapshot is downloaded from the remote (``index/latest.json`` for the newest
    version; ``index/vNNNNNN.json`` for a given one, cached because versions never change);
    a selected file is fetched into the cache, verified against its recorded checksum, and
    returned with ``path`` pointing at the cached copy.
    """

    def __init__(
        self,
        base_url: str,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        client: CaldbClient | None = None,
        **client_options: Any,
    ) -> None:
        self.client = client or CaldbClient(base_url, cache_dir=cache_dir, **client_options)
        self._latest: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"RemoteCaldb(base_url={redact_url(self.client.base_url)!r})"

    def snapshot(self, index_version: int | None = None, *, refresh: bool = False) -> dict:
        """Return the index snapshot of a version (the newest one if ``None``)."""
        if index_version is None:
            if self._latest is None or refresh:
                self._latest = self._check(self.client.get_json("index/latest.json"))
                v = int(self._latest["index_version"])
                atomic_write_bytes(self._snapshot_cache(v), json.dumps(self._latest).encode())
            return self._latest
        path = self._snapshot_cache(int(index_version))
        if path.is_file():
            return json.loads(path.read_text())
        data = self._check(self.client.get_json(f"index/v{int(index_version):06d}.json"))
        if int(data["index_version"]) != int(index_version):
            raise CaldbFetchError(f"remote CALDB returned version {data['index_version']}")
        atomic_write_bytes(path, json.dumps(data).encode())
        return data

    def _snapshot_cache(self, version: int) -> Path:
        key = hashlib.sha256(self.client.base_url.encode()).hexdigest()[:16]
        return self.client.cache_dir / "snapshots" / key / f"v{version:06d}.json"

    @staticmethod
    def _check(data: Any) -> dict[str, Any]:
        if not isinstance(data, dict) or not str(data.get("format", "")).startswith(
            "svomflow-caldb-snapshot/"
        ):
            raise CaldbFetchError("the remote index is not a svomflow CALDB snapshot")
        return data

    @property
    def index_version(self) -> int:
        """The newest index version on the remote."""
        return int(self.snapshot(refresh=True)["index_version"])

    def entries(self, index_version: int | None = None) -> list[CaldbEntry]:
        """Return every entry of an index version; ``path`` is where the cache would hold it."""
        snap = self.snapshot(index_version)
        out = []
        for d in snap["entries"]:
            d = {**d, "index_version": snap["index_version"]}
            d["path"] = str(self.client.cache_path(d["relpath"], d.get("sha256")))
            out.append(CaldbEntry.from_dict(d))
        return out

    def list(
        self,
        *,
        instrument: str | None = None,
        codename: str | None = None,
        telescope: str | None = None,
        detector: str | None = None,
        all_qualities: bool = False,
        index_version: int | None = None,
    ) -> list[CaldbEntry]:
        """Return matching entries (quality 0 unless ``all_qualities``), as ``Caldb.list``."""
        return filter_entries(
            self.entries(index_version),
            instrument=instrument,
            codename=codename,
            telescope=telescope,
            detector=detector,
            all_qualities=all_qualities,
        )

    def select(
        self,
        codename: str,
        *,
        instrument: str,
        time: object,
        telescope: str | None = None,
        detector: str = "NONE",
        filter: str = "NONE",
        index_version: int | None = None,
        verify: bool = True,
        **boundary_values: object,
    ) -> CaldbEntry:
        """Select by HEASARC rules in the remote index and fetch the file into the cache."""
        entry = choose_entry(
            self.entries(index_version),
            codename,
            instrument=instrument,
            time=time,
            telescope=telescope,
            detector=detector,
            filter=filter,
            boundary_values=boundary_values,
        )
        if not entry.relpath:
            raise CalibrationNotFoundError(f"remote entry {entry.id} has no file path")
        local = self.client.fetch(entry.relpath, sha256=entry.sha256)
        return entry.with_(path=local)

    def fetch_many(self, entries: Mapping[str, CaldbEntry]) -> dict[str, Path]:
        """Fetch several entries' files (e.g. to prepare an offline run)."""
        return {k: self.client.fetch(e.relpath, sha256=e.sha256) for k, e in entries.items()}
