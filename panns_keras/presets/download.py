"""Streamed downloads that resume (HTTP Range), retry on transient errors, and are checked.

:func:`download` writes ``<dest>.part``; :func:`verify` checks it; the caller renames it
into place, so a file under its final name is always whole and checked.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.metadata
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from panns_keras.errors import UserError
from panns_keras.progress import Progress


def _version() -> str:
    try:
        return importlib.metadata.version("panns-keras")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


RETRIES_ENV = "PANNS_KERAS_DOWNLOAD_RETRIES"  # attempts after the first (default 4)
TIMEOUT_ENV = "PANNS_KERAS_DOWNLOAD_TIMEOUT"  # seconds without data (default 60)
RETRY_WAIT = 1.0  # seconds before the first retry, doubled for each next one
CHUNK = 1 << 20
TRANSIENT_HTTP = (408, 425, 429, 500, 502, 503, 504)
MB = 1e6


class DownloadError(Exception):
    """The server could not be reached or kept failing (the caller says what to do offline)."""


class _Transient(Exception):
    pass


def _retries() -> int:
    return int(os.environ.get(RETRIES_ENV, "") or 4)


def _timeout() -> float:
    return float(os.environ.get(TIMEOUT_ENV, "") or 60)


def _attempt(url: str, part: Path, desc: str, show: bool) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"panns-keras/{_version()}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=_timeout()) as resp:
        status = getattr(resp, "status", 200)
        start = 0
        if have and status == 206:
            match = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
            start = int(match.group(1)) if match else -1
            if start != have:  # not the range asked for: start again
                raise _Transient(f"server resumed at byte {start}, not {have}")
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        with (
            open(part, "ab" if start else "wb") as f,
            Progress(total / MB if total else None, desc, unit="MB", enabled=show) as progress,
        ):
            progress.update(start / MB)
            done = start
            while True:
                chunk = resp.read(CHUNK)
                if not chunk:
                    break
                f.write(chunk)
                done += len(chunk)
                progress.update(len(chunk) / MB)
        if total is not None and done < total:
            raise _Transient(f"connection closed after {done} of {total} bytes")


def download(url: str, part: Path, *, desc: str | None = None, show: bool = True) -> Path:
    """Download ``url`` into ``part``, resuming what ``part`` already holds.

    Raises:
      DownloadError: no connection, or transient failures after every retry.
      UserError: the server refused (HTTP 4xx other than the transient ones).
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    desc = desc or f"download {part.name.removesuffix('.part')}"
    failures = 0
    while True:
        try:
            _attempt(url, part, desc, show)
            return part
        except urllib.error.HTTPError as e:
            if e.code == 416 and part.exists():  # the part is not a prefix we can resume
                part.unlink()
                reason = "HTTP 416 on resume"
            elif e.code in TRANSIENT_HTTP:
                reason = f"HTTP {e.code} {e.reason}"
            else:
                raise UserError(f"{url}: HTTP {e.code} {e.reason}") from None
        except urllib.error.URLError as e:
            reason = str(e.reason)
        except (TimeoutError, _Transient, http.client.HTTPException, ConnectionError) as e:
            reason = str(e) or type(e).__name__
        except OSError as e:
            if e.errno is None:  # e.g. an SSL error without errno: not the disk
                reason = str(e)
            else:
                raise
        failures += 1
        if failures > _retries():
            raise DownloadError(f"{reason} (after {failures} attempts)")
        time.sleep(RETRY_WAIT * 2 ** (failures - 1))


def copy_local(src: str | Path, part: Path) -> Path:
    """A local source (``file://`` / path) copied to ``part``, checked like a download."""
    src = Path(src)
    if not src.is_file():
        raise UserError(f"{src}: preset file not found")
    part.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, part)
    return part


def digests(path: Path) -> dict[str, str]:
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            md5.update(block)
            sha256.update(block)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def verify(
    path: Path,
    file: str,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
) -> dict[str, str]:
    """The file's digests; raises UserError (one line: file, expected and actual) on a mismatch."""
    actual = digests(path)
    nbytes = path.stat().st_size
    for algo, expected in (("sha256", sha256), ("md5", md5)):
        if expected and actual[algo] != expected.lower():
            extra = f"; {nbytes} bytes, expected {size}" if size and size != nbytes else ""
            raise UserError(
                f"{file}: checksum mismatch ({algo} expected {expected.lower()}, "
                f"got {actual[algo]}{extra}); not cached"
            )
    if size is not None and size != nbytes:
        raise UserError(
            f"{file}: {nbytes} bytes, expected {size} (sha256 {actual['sha256']}); not cached"
        )
    return actual
