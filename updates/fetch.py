"""Taking a release from the central, trusting nothing on the way: TUF metadata, then a resumable download.

:class:`ReleaseSource` refreshes the signed metadata with python-tuf's client (``tuf.ngclient.Updater``), which
refuses what the trusted keys did not sign, metadata older than what it saw before (a replayed timestamp),
and expired metadata (a central that stopped re-signing, or this clock weeks off). It then downloads the
bundle itself, because the client's downloader cannot resume (a bus's 4G link drops mid-download): the
bytes go to ``<name>.part``, a cut download continues with ``Range``, a server that ignores the range starts
it again, and nothing is kept unless its length and SHA-256 are the ones the targets key signed.

Policy (:func:`choose`) stays apart: never a version already rolled back, never a downgrade unless it is
published as a newer version; time must be synchronised first (the caller checks, since expiry depends on it).
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from tuf.api.exceptions import DownloadError, RepositoryError
from tuf.api.metadata import TargetFile
from tuf.ngclient import Updater
from tuf.ngclient.requests_fetcher import RequestsFetcher

from updates.guard import fsync_directory

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024


class FetchError(Exception):
    """No release was taken: ``reason`` says why, in English, for the log and the report."""


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def choose(desired: str | None, running: str, bad: list[str]) -> str | None:
    """The version to fetch, or None: only one newer than ``running`` and never one rolled back."""
    if not desired or desired == running or desired in bad:
        return None
    try:
        if version_key(desired) <= version_key(running):
            logger.warning("Desired version %s is not newer than %s: publish a downgrade as a new version", desired,
                           running)  # fmt: skip
            return None
    except ValueError:
        logger.warning("Desired version %r is not a release version", desired)
        return None
    return desired


def this_arch() -> str:
    """This machine's architecture, as Debian and the release bundles name it."""
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


class ReleaseSource:
    """The central's signed releases, seen from one terminal whose update files live in ``directory``.

    ``root`` is the first root metadata this terminal trusts, or a function giving it when first needed
    (:func:`updates.agent.pinned_root`: the image's, else the central's the first time);
    ``base_url`` the central (``https://…``); ``session`` the ``requests`` session for bundles; ``arch`` the
    bundle this machine takes.
    """

    def __init__(self, base_url: str, directory: Path, root: bytes | Callable[[], bytes],
                 session: requests.Session | None = None, timeout: tuple[float, float] = (5.0, 30.0),
                 arch: str | None = None) -> None:  # fmt: skip
        self.base_url = base_url.rstrip("/")
        self.arch = arch or this_arch()
        self.metadata_dir = directory / "tuf"
        self.downloads = directory / "downloads"
        self.root = root
        self.session = session or requests.Session()
        self.timeout = timeout
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        self.downloads.mkdir(parents=True, exist_ok=True)

    def target(self, version: str) -> TargetFile:
        """The signed description of release ``version`` (length, hashes), after a full metadata refresh."""
        try:
            root = self.root if isinstance(self.root, bytes) else self.root()
            # requests, as for every other call to the central: the same TLS trust (REQUESTS_CA_BUNDLE, where a
            # site's own CA is given) — python-tuf's default urllib3 fetcher would only know certifi's.
            updater = Updater(str(self.metadata_dir), f"{self.base_url}/tuf/metadata/", str(self.downloads),
                              f"{self.base_url}/tuf/targets/", bootstrap=root,
                              fetcher=RequestsFetcher(app_user_agent="aptic-terminal"))  # fmt: skip
            updater.refresh()
            info = updater.get_targetinfo(f"aptic-terminal-{version}-{self.arch}.tar")
        except (RepositoryError, DownloadError, OSError, requests.RequestException, ValueError) as error:
            # a bad signature, a replay, expiry, unreachable, truncated, no root to trust yet
            raise FetchError(f"signed metadata refused: {type(error).__name__}: {error}") from error
        finally:
            fsync_directory(self.metadata_dir)  # the client renames without it: keep the rollback floor
        if info is None:
            raise FetchError(f"release {version} is not published for {self.arch}")
        if (info.custom or {}).get("version") != version or info.custom.get("arch") != self.arch:
            raise FetchError(f"release {version}: its signed version says {info.custom!r}")
        return info

    def download(self, info: TargetFile) -> Path:
        """The bundle, complete and verified, as ``downloads/<sha256>.tar``; resumes a ``.part`` left by a cut."""
        digest = info.hashes["sha256"]
        final = self.downloads / f"{digest}.tar"
        if final.exists():
            return final
        part = self.downloads / f"{digest}.part"
        have = part.stat().st_size if part.exists() else 0
        if have > info.length:
            part.unlink()
            have = 0
        if have < info.length:
            self._fetch(f"{self.base_url}/tuf/targets/{digest}.{info.path}", part, have, info.length)
        with part.open("rb") as f:
            try:
                info.verify_length_and_hashes(f)
            except Exception as error:  # LengthOrHashMismatchError: a tampered or corrupt bundle
                part.unlink()
                raise FetchError(f"bundle refused: {error}") from error
        os.replace(part, final)
        fsync_directory(self.downloads)
        return final

    def _fetch(self, url: str, part: Path, have: int, length: int) -> None:
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with self.session.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
                if response.status_code == 416:  # what we have is all there is: the hash decides
                    return
                if response.status_code not in (200, 206):
                    raise FetchError(f"bundle download: HTTP {response.status_code}")
                resumed = response.status_code == 206 and _range_start(response) == have
                with part.open("ab" if resumed else "wb") as out:
                    written = have if resumed else 0
                    for chunk in response.iter_content(CHUNK):
                        written += len(chunk)
                        if written > length:
                            raise FetchError("bundle download: longer than its signed length")
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
        except requests.RequestException as error:
            logger.info("Bundle download cut at %d bytes (%s): resumes next time", _size(part), error)
            raise FetchError(f"bundle download cut: {type(error).__name__}") from error


def _range_start(response: requests.Response) -> int | None:
    value: Any = response.headers.get("Content-Range", "")  # "bytes 1000-1999/2000"
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
