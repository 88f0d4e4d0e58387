"""The stack ``make demo`` starts, for tests that drive it whole: the central on SQLite, a terminal activated
against it running ``aptic-terminal run`` with the virtual douchette and mock GPIO, the kiosk page, and the
console's demo accounts (``console.json``). :func:`demo_stack` starts it in a temporary directory on free
loopback ports and stops it (Ctrl-C, as a person would) afterwards; the kiosk helpers log in and start an
entry as a médiateur does on the touchscreen."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from terminal.scanner.virtual import send

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    data: Path
    kiosk: str
    central_pid: int
    central: str
    seed: dict
    env: dict

    def scan(self, number: str) -> float:
        """Scan like an AZERTY douchette; returns the time the Enter key went up."""
        send(number, str(self.data / "douchette.sock"), layout="fr")
        return time.monotonic()

    def statement(self) -> dict:
        month = time.strftime("%Y-%m")
        out = subprocess.run(
            [str(ROOT / ".venv/bin/aptic-central"), "statement", "--organisation", str(self.seed["organisation"]),
             "--month", month, "--json"],
            env=self.env, check=True, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return json.loads(out.stdout)

    def passes(self, order: str) -> list[str]:
        return self.seed["orders"][order]["passes"]

    def login(self, role: str) -> tuple[str, str]:
        """The console's demo login of ``role`` (member, admin, operator, funder): (e-mail, password)."""
        logins = json.loads((self.data / "console.json").read_text())
        return logins[role]["email"], logins[role]["password"]

    def offline_verdict(self, number: str) -> dict[str, Any]:
        """What the terminal would say of ``number`` from its own snapshot (``aptic-terminal check``, read-only
        beside the running daemon)."""
        env = {**self.env, "APTIC_TERMINAL_POINT_ID": str(self.seed["points"][0])}  # where scripts/demo puts it
        out = subprocess.run([str(ROOT / ".venv/bin/aptic-terminal"), "check", number, "--json"], env=env,
                             capture_output=True, text=True, timeout=30)  # fmt: skip
        return json.loads(out.stdout)

    @contextlib.contextmanager
    def central_frozen(self) -> Iterator[None]:
        """The central stops answering (a bus in a white zone): SIGSTOP, then SIGCONT whatever happens."""
        os.kill(self.central_pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.central_pid, signal.SIGCONT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def demo_stack(data: Path) -> Iterator[Stack]:
    """``scripts/demo`` in ``data``, once its terminal says it is ready; stopped with Ctrl-C on leaving."""
    kiosk_port = free_port()
    env = {**os.environ, "APTIC_DEMO_DIR": str(data), "APTIC_TERMINAL_KIOSK_PORT": str(kiosk_port),
           "APTIC_DEMO_CENTRAL_PORT": str(free_port()), "APTIC_CENTRAL_DATA": str(data / "central"),
           # as scripts/demo sets them: the terminal's command line (offline_verdict) reads the same files
           "APTIC_TERMINAL_DATA_DIR": str(data / "terminal"),
           "APTIC_TERMINAL_CONFIG": str(data / "terminal.toml")}  # fmt: skip
    log_path = data / "demo.log"
    with log_path.open("w") as log:
        demo = subprocess.Popen(["scripts/demo"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "Terminal ready" not in log_path.read_text():
            assert demo.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.3)
        central_pid = int(re.search(r"kill -STOP (\d+)", log_path.read_text()).group(1))  # type: ignore[union-attr]
        seed = json.loads((data / "seed.json").read_text())
        central = f"http://127.0.0.1:{env['APTIC_DEMO_CENTRAL_PORT']}"
        yield Stack(data, f"http://127.0.0.1:{kiosk_port}", central_pid, central, seed, env)
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        demo.wait(timeout=30)


def login(page: Page, pin: str = "1234") -> None:
    """Log in on the kiosk with the demo organisation's PIN (demo-seed sets it on the central)."""
    page.get_by_role("button", name="Espace médiateur").click()
    for digit in pin:
        page.locator("#pin-pad").get_by_role("button", name=digit, exact=True).click()
    page.get_by_role("button", name="Entrer").click()
    expect(page.locator("#mediateur")).to_be_visible()


def start_entry(page: Page, number: int) -> None:
    page.locator("#service-search").fill(str(number))
    page.locator(f'#service-list li[data-service="{number}"]').click()
    expect(page.locator("#entry-service")).to_contain_text(f"{number}.")
