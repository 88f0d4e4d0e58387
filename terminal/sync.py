"""Talking to the central: the HTTP client, the sync worker, the online validity check.

The worker pushes the outbox, then pulls the snapshot (upload before download, so the snapshot it pulls
already counts this terminal's scans), then waits. A bus may be offline for a week, so every failure is
expected: network errors, timeouts, 5xx and 429 are retried with exponential backoff and jitter, capped at
5 minutes, and a ``Retry-After`` from the central is honoured. Nothing is ever dropped on the terminal's side
because of a transport failure; the central deduplicates by scan id, so a batch sent twice (a response lost,
a 500 after the commit) is counted once.

What is never retried: the central's per-scan answer. An accepted, flagged or rejected scan leaves the outbox
for history with the central's reason (``Terminal.apply_results``); a batch the central refuses as
malformed (400) is split until the faulty scan is found, and that scan is filed as rejected with the
central's message. A 401 means the token was revoked: the worker idles, the terminal shows the activation
screen (``activation`` event), and every scan stays in the outbox until the terminal is activated again.

Before a batch leaves, its scans are marked ``sent`` in the outbox (durably): from then on the médiateur can
no longer cancel them, since the central may have counted them even if no answer came back. Only a refused
connection (the request surely never left) takes the mark off.

One worker only: it holds an exclusive lock on ``sync.lock`` in the data directory while it runs.

::

    client = CentralClient(config.central_url, token=store.token)
    worker = SyncWorker(terminal, client)
    terminal.online_check = worker.check_validity
    worker.start()
    ...
    worker.stop()
"""

from __future__ import annotations

import email.utils
import fcntl
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
import urllib3

from aptic.passnumber import masked
from terminal.snapshot import SnapshotError, merge
from terminal.terminal import Terminal

logger = logging.getLogger(__name__)

API = "/api/v1"
# Scan fields the central's POST /scans takes (it refuses unknown ones).
SCAN_FIELDS = ("id", "pass_number", "service", "point", "entry_id", "scanned_at", "clock_synced", "seq", "boot_id",
               "monotonic")  # fmt: skip
RETRY_AFTER_MAX = 3600.0


class CentralError(Exception):
    """A call to the central that did not succeed."""


class Unavailable(CentralError):
    """Worth retrying later: network error, timeout, 5xx, 429. ``retry_after`` in seconds, if the central
    said; ``reached`` is False when the request surely never left (no connection could be made)."""

    def __init__(self, message: str, retry_after: float | None = None, *, reached: bool = True) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.reached = reached


def never_sent(error: requests.RequestException) -> bool:
    """True when no connection was made, so the central cannot have seen the request (refused, no route,
    unknown host, connect timeout). A reset or a read timeout may come after the central got it all."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    if isinstance(error, requests.ConnectionError) and error.args:
        return isinstance(getattr(error.args[0], "reason", None), urllib3.exceptions.NewConnectionError)
    return False


class Unauthorized(CentralError):
    """401: the token is missing, wrong or revoked."""


class Refused(CentralError):
    """Another 4xx: the request itself is wrong, and sending it again changes nothing."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {body.get('error')} {body.get('message')}")
        self.status = status
        self.code = str(body.get("error") or f"http_{status}")
        self.message_fr = str(body.get("message") or "Refusé par le central.")


class AlreadyRunning(RuntimeError):
    """Another sync worker holds the lock on this data directory."""


def worker_running(directory: os.PathLike[str] | str) -> bool:
    """True when a sync worker (``aptic-terminal run``) holds the lock on ``directory``."""
    try:
        fd = os.open(os.path.join(directory, "sync.lock"), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_MAX)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, min((when - datetime.now(UTC)).total_seconds(), RETRY_AFTER_MAX))


class CentralClient:
    """A small client of the central's device API (docs/contracts.md, "Central HTTP API").

    ``token`` is the bearer token or a function returning it (``Store.token``), read at every call so a
    re-activation takes effect at once. Each thread gets its own ``requests.Session``; urllib3 retries
    nothing: the worker decides when to try again.
    """

    def __init__(
        self,
        base_url: str,
        token: str | Callable[[], str | None] | None = None,
        *,
        timeout: tuple[float, float] = (3.05, 10.0),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["User-Agent"] = "aptic-terminal"
        return session

    def _auth(self) -> dict[str, str]:
        token = self._token() if callable(self._token) else self._token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | tuple[float, float] | None = None,
        auth: bool = True,
    ) -> Any:
        """One call; the decoded JSON body on 2xx, else one of this module's errors."""
        response = self._send(method, path, json=json, params=params, timeout=timeout, auth=auth)
        return self._decode(method, path, response)

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | tuple[float, float] | None = None,
        auth: bool = True,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> requests.Response:
        try:
            return self._session().request(
                method,
                self.base_url + API + path,
                json=json,
                data=data,
                params=params,
                headers={**(self._auth() if auth else {}), **(headers or {})},
                timeout=timeout or self.timeout,
            )
        except requests.RequestException as error:
            raise Unavailable(
                f"{method} {path}: {type(error).__name__}: {error}", reached=not never_sent(error)
            ) from error

    @staticmethod
    def _decode(method: str, path: str, response: requests.Response) -> Any:
        status = response.status_code
        if status == 429 or status >= 500:
            raise Unavailable(f"{method} {path}: HTTP {status}", parse_retry_after(response.headers.get("Retry-After")))
        try:
            body = response.json()
        except ValueError as error:
            if status < 300:
                raise Unavailable(f"{method} {path}: HTTP {status} with a body that is not JSON") from error
            body = {}
        if status == 401:
            raise Unauthorized(f"{method} {path}: {body.get('message', 'unauthorized')}")
        if status >= 400:
            raise Refused(status, body if isinstance(body, dict) else {})
        return body

    def activate(self, kit_number: str, activation_code: str, device: Mapping[str, str]) -> dict[str, Any]:
        body = {"kit_number": kit_number, "activation_code": activation_code, "device": dict(device)}
        return self.request("POST", "/activations", json=body, auth=False)

    def push_scans(self, scans: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        payload = [{k: scan.get(k) for k in SCAN_FIELDS if scan.get(k) is not None} for scan in scans]
        return list(self.request("POST", "/scans", json={"scans": payload})["results"])

    def snapshot(self, since: str | None = None) -> dict[str, Any]:
        return self.request("GET", "/snapshot", params={"since": since} if since else None)

    def heartbeat(self, status: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/heartbeat", json=dict(status))

    def desired_state(self, etag: str | None = None) -> tuple[str | None, dict[str, Any] | None]:
        """The desired state and its ETag; ``(etag, None)`` when it is unchanged since ``etag`` (a 304)."""
        response = self._send("GET", "/desired-state", headers={"If-None-Match": etag} if etag else None)
        if response.status_code == 304:
            return etag, None
        body = self._decode("GET", "/desired-state", response)
        return response.headers.get("ETag"), body

    def report(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """What this device applied of its desired state and where its commands stand."""
        return self.request("POST", "/report", json=dict(body))

    def put_artifact(self, command_id: str, data: bytes, content_type: str) -> dict[str, Any]:
        """The file a command brought back (a screenshot, logs); sent again, it replaces the first. The read
        timeout is long: a few MiB over a weak mobile link."""
        path = f"/commands/{quote(command_id, safe='')}/artifact"
        timeout = (self.timeout[0], max(self.timeout[1], 120.0))
        response = self._send("PUT", path, data=data, headers={"Content-Type": content_type}, timeout=timeout)
        return self._decode("PUT", path, response)

    def validity(self, number: str, service: int, point: int, *, timeout: float = 1.5) -> dict[str, Any]:
        """The central's verdict; the whole call (connect and read) bounded by about ``timeout`` seconds."""
        connect = min(0.5, timeout / 3)
        try:
            return self.request("GET", f"/passes/{number}/validity", params={"service": service, "point": point},
                                timeout=(connect, timeout - connect))  # fmt: skip
        except CentralError as error:  # its text names the URL, and ends up in a log: hide what makes it pay
            error.args = tuple(str(a).replace(number, masked(number)) for a in error.args)
            raise


class Backoff:
    """Exponential backoff with jitter: ``base`` × 2ⁿ, capped at ``cap``, each delay drawn between half and
    all of it ("equal jitter": terminals that lost the network together do not come back together), and
    never shorter than a ``Retry-After`` the central gave."""

    def __init__(self, *, base: float = 1.0, cap: float = 300.0, rng: Callable[[], float] = random.random) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self._rng = rng

    def failure(self, retry_after: float | None = None) -> float:
        """Note a failure; the seconds to wait before the next try."""
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** min(self.failures - 1, 30))
        delay = ceiling / 2 + self._rng() * ceiling / 2
        return max(delay, retry_after) if retry_after is not None else delay

    def success(self) -> None:
        self.failures = 0


@dataclass
class SyncReport:
    """What one sync round did."""

    pushed: int = 0
    rejected: int = 0
    snapshot_changed: bool = False


class SyncWorker:
    """The one thread that moves scans to the central and offline data back. See the module docstring.

    ``interval``: seconds between rounds while all is well (a submitted entry wakes the worker at once);
    ``heartbeat_interval``: seconds between heartbeats; ``scanners``: a function listing the douchettes, for
    the heartbeat; ``screen``: one saying how the kiosk page is doing; ``version``: the software version.
    """

    def __init__(
        self,
        terminal: Terminal,
        client: CentralClient,
        *,
        batch_size: int = 500,
        interval: float = 60.0,
        heartbeat_interval: float = 60.0,
        backoff: Backoff | None = None,
        check_timeout: float = 1.5,
        scanners: Callable[[], list[dict[str, Any]]] = list,
        screen: Callable[[], dict[str, Any] | None] = lambda: None,
        version: str = "dev",
    ) -> None:
        self.terminal = terminal
        self.store = terminal.store
        self.client = client
        self.batch_size = batch_size
        self.interval = interval
        self.heartbeat_interval = heartbeat_interval
        self.backoff = backoff or Backoff()
        self.check_timeout = check_timeout
        self.scanners = scanners
        self.screen = screen
        self.version = version
        self.online = False
        self.last_success: str | None = None
        self.last_error: str | None = None
        self.next_attempt_at: float | None = None
        self._started_at = time.monotonic()
        self._last_heartbeat: float | None = None
        self._last_housekeeping: float | None = None
        self._last_saved_success: float | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        self._round = threading.Lock()
        self._unsubscribe = terminal.bus.subscribe(self._on_event)
        self.fleet: Any = None  # a terminal.fleet.FleetAgent, polled after each good round

    # -- one round ---------------------------------------------------------------------------------------

    def sync_once(self) -> SyncReport:
        """Push every pending scan, then pull the snapshot. Raises :class:`CentralError` on failure; what was
        filed before the failure stays filed."""
        with self._round:
            report = SyncReport()
            while True:
                fresh = [scan["id"] for scan in self.store.pending(self.batch_size) if not scan.get("sent")]
                batch = self.store.claim(self.batch_size)
                if not batch:
                    break
                try:
                    rows = self._push(batch)
                except Unavailable as error:
                    if not error.reached:  # nothing left the terminal: the médiateur may still cancel these
                        self.store.unclaim(fresh)
                    raise
                if not rows:
                    raise Unavailable("the central answered none of the scans sent")
                report.pushed += len(rows)
                report.rejected += sum(1 for r in rows if r.get("status") == "rejected")
            report.snapshot_changed = self._pull()
            return report

    def _push(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send one batch; on a 400 split it to find and file the scan the central cannot read."""
        try:
            results = self.client.push_scans(batch)
        except Refused as error:
            if error.status != 400:
                raise
            if len(batch) > 1:
                half = len(batch) // 2
                return self._push(batch[:half]) + self._push(batch[half:])
            logger.error("Central refused scan %s as malformed (%s): filed as rejected", batch[0]["id"], error)
            results = [{"id": batch[0]["id"], "status": "rejected", "reason": error.code, "message": error.message_fr}]
        sent = {scan["id"] for scan in batch}
        return self.terminal.apply_results(r for r in results if r.get("id") in sent)

    def _pull(self) -> bool:
        saved = self.store.snapshot()
        since = saved.get("cursor") if saved else None
        received = self.client.snapshot(since)
        incremental = saved is not None and not received.get("full", True)
        if (
            incremental
            and received.get("cursor") == since
            and not any(received.get(k) for k in ("orders", "blocked_carnets", "used_passes"))
        ):
            return False
        try:
            self.terminal.load_snapshot(merge(saved, received))
        except SnapshotError as error:  # keep judging with the data we have; uploads go on
            logger.error("Snapshot from the central not usable, kept the previous one: %s", error)
            self.last_error = f"{datetime.now(UTC).isoformat(timespec='seconds')} snapshot: {error}"
            return False
        return True

    # -- heartbeat ---------------------------------------------------------------------------------------

    def heartbeat_status(self) -> dict[str, Any]:
        """What the heartbeat reports: versions, uptimes, outbox, scanners, screen, clock, disk, power, the
        release (``terminal.health`` for the machine's part); the central turns it into alerts."""
        from terminal import health

        status = self.terminal.status()
        state = self.store.state()
        return {
            "software_version": self.version,
            **health.versions(),
            "uptime_s": round(time.monotonic() - self._started_at, 1),
            "system_uptime_s": health.system_uptime(),
            "outbox_pending": status["outbox"]["pending"],
            "oldest_pending_age_s": status["outbox"]["oldest_pending_age_s"],
            "scanners": self.scanners(),
            "screen": self.screen(),
            "clock_synced": status["clock_synced"],
            "boot_id": status["boot_id"],
            **health.disk(self.store.directory),
            "fs_errors": health.fs_errors(self.store.directory),
            "under_voltage": health.under_voltage(),
            "applied_generation": state.get("applied_generation"),
            "last_sync": self.last_success,
        }

    def _heartbeat_if_due(self) -> None:
        now = time.monotonic()
        if self._last_heartbeat is not None and now - self._last_heartbeat < self.heartbeat_interval:
            return
        self._last_heartbeat = now
        try:
            self.client.heartbeat(self.heartbeat_status())
        except Unauthorized:
            raise
        except CentralError as error:
            logger.info("Heartbeat not sent: %s", error)
        except (TypeError, ValueError) as error:  # a part of the status that is not JSON: report, carry on
            logger.warning("Heartbeat not built: %s", error)

    def _fleet_if_due(self) -> None:
        """The desired state, when its time has come. Its failures are logged and tried again at the agent's
        next poll: they never hold the scans back nor count against the central's reachability."""
        if self.fleet is None:
            return
        try:
            self.fleet.poll_if_due()
        except Unauthorized:
            raise
        except CentralError as error:
            logger.warning("Desired state not applied: %s", error)

    def _housekeeping(self) -> None:
        """Once a day: delete history older than the months kept (a daemon may run for months)."""
        now = time.monotonic()
        if self._last_housekeeping is None or now - self._last_housekeeping > 86_400:
            self._last_housekeeping = now
            self.store.prune_history()

    # -- online validity check ---------------------------------------------------------------------------

    def check_validity(self, number: str, service: int, point: int) -> dict[str, Any] | None:
        """The central's verdict for the Terminal, or None at once when offline, or on any failure."""
        if not self.online:
            return None
        try:
            return self.client.validity(number, service, point, timeout=self.check_timeout)
        except Unauthorized:
            self.reactivation_required()
            return None
        except CentralError as error:
            logger.info("Online check of %s failed (%s): offline verdict", masked(number), error)
            return None

    # -- the thread --------------------------------------------------------------------------------------

    def _on_event(self, event: Any) -> None:
        if event.kind in ("submitted", "activated"):
            self.wake()

    def wake(self) -> None:
        """Sync now rather than at the next interval (a new entry, a re-activation)."""
        self._wake.set()

    def reactivation_required(self) -> None:
        self.online = False
        if self.store.state().get("status") != "reactivation_required":
            logger.warning("The central refused the device token: waiting for a re-activation")
            self.store.update_state(status="reactivation_required")
            self.terminal.bus.publish(
                "activation",
                status="reactivation_required",
                message="Ce terminal doit être réactivé : saisissez le numéro de kit et le code. "
                "Les scans enregistrés sont conservés.",
            )

    def run_round(self) -> float:
        """One round of the loop: returns the seconds to wait before the next."""
        was_online = self.online
        try:
            return self._run_round()
        finally:
            if self.online != was_online:  # the kiosk's status bar says it at once
                self.terminal.bus.publish("sync", **self.status())

    def _run_round(self) -> float:
        if self.store.state().get("status") == "reactivation_required" or not self.store.token():
            self.online = False
            return self.interval
        try:
            report = self.sync_once()
            self._heartbeat_if_due()
            self._fleet_if_due()
        except Unauthorized:
            self.reactivation_required()
            return self.interval
        except (Unavailable, Refused) as error:
            self.online = False
            self.last_error = f"{datetime.now(UTC).isoformat(timespec='seconds')} {error}"
            retry_after = error.retry_after if isinstance(error, Unavailable) else None
            delay = self.backoff.failure(retry_after)
            logger.info("Sync failed (%s); next try in %.1f s", error, delay)
            return delay
        self.backoff.success()
        self.online = True
        self.last_success = datetime.now(UTC).isoformat(timespec="seconds")
        now = time.monotonic()
        if report.pushed or report.snapshot_changed or now - (self._last_saved_success or -1e9) > 600:
            self._last_saved_success = now  # for `status` in another process; not every round (SD card wear)
            self.store.update_state(last_sync=self.last_success)
        self._housekeeping()
        if report.pushed:
            logger.info("Synced %d scan(s), %d rejected", report.pushed, report.rejected)
        return self.interval

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.run_round()
            except Exception:  # a bug must not stop the syncing for good
                logger.exception("Sync round failed unexpectedly")
                delay = self.backoff.failure()
            self.next_attempt_at = time.monotonic() + delay
            self._wake.wait(delay)
            self._wake.clear()

    def start(self) -> None:
        """Take the data directory's sync lock and start the thread; :class:`AlreadyRunning` if held."""
        fd = os.open(self.store.directory / "sync.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(f"another sync worker runs on {self.store.directory}") from None
        self._lock_fd = fd
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="aptic-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop after the current request (each has a timeout) and release the lock."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self._unsubscribe()

    def status(self) -> dict[str, Any]:
        """For the kiosk's ``sync_status()``: online or not, last success and error, next try."""
        wait = None if self.next_attempt_at is None else max(0.0, self.next_attempt_at - time.monotonic())
        return {
            "online": self.online,
            "last_success": self.last_success,
            "last_error": self.last_error,
            "next_attempt_in_s": None if wait is None else round(wait, 1),
            "pending": self.store.pending_count(),
            "activation": self.store.state().get("status", "activated" if self.store.token() else "not_activated"),
        }


class SyncWhenKnown:
    """The sync worker of ``aptic-terminal run``, started as soon as a central URL is known.

    A terminal may start before it knows its central: not activated yet and none configured. It then
    records offline, and the worker starts when the terminal is activated (on the touchscreen, or with
    ``aptic-terminal activate`` handed to the daemon), without a restart. ``make(url)`` builds the worker.

    >>> sync = SyncWhenKnown(lambda url: None)
    >>> sync.ensure(None), sync.status()
    (None, {})
    """

    def __init__(self, make: Callable[[str], SyncWorker | None]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self.worker: SyncWorker | None = None

    def ensure(self, url: str | None) -> SyncWorker | None:
        """Start the worker for ``url`` unless it runs already (or ``url`` is empty); :class:`AlreadyRunning`
        when another process holds the data directory's sync lock."""
        with self._lock:
            if self.worker is None and url:
                worker = self._make(url)
                if worker is not None:
                    worker.start()
                    self.worker = worker
                    logger.info("Sync worker started for %s", url)
            return self.worker

    def status(self) -> dict[str, Any]:
        """The worker's :meth:`SyncWorker.status`, or {} while there is none (the kiosk shows "offline")."""
        worker = self.worker
        return worker.status() if worker is not None else {}

    def stop(self) -> None:
        with self._lock:
            if self.worker is not None:
                self.worker.stop()
