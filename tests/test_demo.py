"""`make demo`, the README's main command: it comes up, a pass scanned with the virtual douchette is judged by
the central, and Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def console_login(central: str, email: str, password: str, home: str = "/console/tableau-de-bord") -> bool:
    """Log in to the console like a browser (cookie, CSRF token); True if the user's home page opens."""
    http = requests.Session()
    form = http.get(f"{central}/console/connexion", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    r = http.post(f"{central}/console/connexion", data={"email": email, "password": password, "csrf_token": token},
                  timeout=30)  # fmt: skip
    return r.status_code == 200 and r.url.endswith(home)


def test_demo_comes_up_scans_and_stops(tmp_path: Path) -> None:
    kiosk_port, central_port = free_port(), free_port()
    env = {**os.environ, "APTIC_DEMO_DIR": str(tmp_path), "APTIC_TERMINAL_KIOSK_PORT": str(kiosk_port),
           "APTIC_DEMO_CENTRAL_PORT": str(central_port)}  # fmt: skip
    log = (tmp_path / "demo.log").open("w+")
    demo = subprocess.Popen(["scripts/demo"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "Terminal ready" not in (tmp_path / "demo.log").read_text():
            assert demo.poll() is None, (tmp_path / "demo.log").read_text()
            assert time.monotonic() < deadline, "the demo did not come up in 2 minutes"
            time.sleep(0.5)
        text = (tmp_path / "demo.log").read_text()
        assert f"http://127.0.0.1:{kiosk_port}" in text and "PIN 1234" in text
        seed = json.loads((tmp_path / "seed.json").read_text())
        kiosk = f"http://127.0.0.1:{kiosk_port}"
        last = get(f"{kiosk}/api/updates")["last_id"]
        # Step 1 of the tour, exactly as printed.
        tour = next(line for line in text.splitlines() if "1. A valid pass" in line)
        command = tour.split(":", 1)[1].split()
        subprocess.run(command, cwd=ROOT, env=env, check=True, timeout=30)
        scans = []
        deadline = time.monotonic() + 10
        while not scans and time.monotonic() < deadline:
            events = get(f"{kiosk}/api/updates?after={last}&wait=2")["events"]
            scans = [e["data"]["result"] for e in events if e["kind"] == "scan"]
        assert scans, "no verdict reached the kiosk"
        assert scans[0]["pass_number"] == seed["orders"]["gironde"]["passes"][0]
        assert scans[0]["valid"] and not scans[0]["provisional"]  # the central answered online
        # The console, with the médiateur's login exactly as the tour prints it.
        line = next(line for line in text.splitlines() if line.strip().startswith("médiateur:"))
        _, email, _, password = line.split()
        assert console_login(f"http://127.0.0.1:{central_port}", email, password)
        line = next(line for line in text.splitlines() if line.strip().startswith("funder:"))
        _, email, _, password = line.split()
        assert console_login(f"http://127.0.0.1:{central_port}", email, password, "/console/financeur/tableau-de-bord")
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        demo.wait(timeout=30)
    for port in (kiosk_port, central_port):  # both stopped
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
