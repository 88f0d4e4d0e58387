"""Signed releases end to end: a TUF repository built here with central/releases.py, served by the real
central on a loopback port (/tuf), read by a terminal's updates/fetch.py. What must never happen: a bundle
installed that the keys did not sign, or a replayed, expired or downgraded release taken."""

from __future__ import annotations

import http.client
import os
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from central import releases
from updates.fetch import FetchError, ReleaseSource, choose


class Keys:
    def __init__(self, directory: Path) -> None:
        directory.mkdir()
        self.roots = [directory / f"root-{i}.pem" for i in range(3)]
        self.targets = directory / "targets.pem"
        self.stranger = directory / "stranger.pem"
        for path in [*self.roots, self.targets, self.stranger]:
            releases.generate_key(path)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path / "offline-keys")


@pytest.fixture
def repo(central, keys: Keys) -> Path:
    directory = central.settings.data_dir / "tuf"
    releases.init_repository(directory, keys.roots, 2, keys.targets)
    return directory


def bundle(tmp_path: Path, version: str, size: int = 300_000) -> Path:
    path = tmp_path / f"bundle-{version}.tar"
    path.write_bytes(os.urandom(size))
    return path


def source(central, repo: Path, tmp_path: Path, base: str | None = None) -> ReleaseSource:
    return ReleaseSource(base or central.base, tmp_path / "device", releases.root_json(repo), arch="amd64")


def test_a_published_release_is_found_downloaded_and_verified(central, repo, keys, tmp_path) -> None:
    published = releases.publish(repo, bundle(tmp_path, "0.2.0"), "0.2.0", keys.targets, "amd64")
    device = source(central, repo, tmp_path)
    info = device.target("0.2.0")
    assert info.length == published["length"] and info.hashes["sha256"] == published["sha256"]
    path = device.download(info)
    assert path.read_bytes() == (tmp_path / "bundle-0.2.0.tar").read_bytes()
    with pytest.raises(FetchError, match="not published"):
        device.target("0.3.0")
    assert [r["version"] for r in releases.releases(repo)] == ["0.2.0"]
    # The online keys never leave the central: nothing under /tuf reaches them.
    for name in ("keys/timestamp.pem", "..%2Fkeys%2Ftimestamp.pem", "timestamp.pem"):
        r = central_get(central, f"/tuf/metadata/{name}")
        assert r.status == 404, name


def central_get(central, path: str) -> http.client.HTTPResponse:
    parts = urlsplit(central.base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("GET", path)
    return connection.getresponse()


def test_publishing_needs_the_targets_key_and_a_newer_version(central, repo, keys, tmp_path) -> None:
    releases.publish(repo, bundle(tmp_path, "0.2.0"), "0.2.0", keys.targets, "amd64")
    for version, key, why in (("0.2.1", keys.stranger, "does not hold the targets role"),
                              ("0.1.9", keys.targets, "not newer"), ("0.2.0", keys.targets, "not newer"),
                              ("latest", keys.targets, "not a release version")):  # fmt: skip
        with pytest.raises(releases.ReleaseError, match=why):
            releases.publish(repo, bundle(tmp_path, "x"), version, key, "amd64")
    assert [r["version"] for r in releases.releases(repo)] == ["0.2.0"]


def test_a_tampered_bundle_is_refused_and_nothing_is_kept(central, repo, keys, tmp_path) -> None:
    published = releases.publish(repo, bundle(tmp_path, "0.2.0"), "0.2.0", keys.targets, "amd64")
    stored = repo / "targets" / f"{published['sha256']}.aptic-terminal-0.2.0-amd64.tar"
    data = bytearray(stored.read_bytes())
    data[1000] ^= 0xFF  # one byte flipped on the central's disk (or on the way)
    stored.write_bytes(bytes(data))
    device = source(central, repo, tmp_path)
    with pytest.raises(FetchError, match="bundle refused"):
        device.download(device.target("0.2.0"))
    assert list(device.downloads.iterdir()) == []


def test_metadata_signed_by_a_wrong_key_is_refused(central, repo, keys, tmp_path) -> None:
    releases.publish(repo, bundle(tmp_path, "0.2.0"), "0.2.0", keys.targets, "amd64")
    # Someone with the central's disk but not the targets key re-signs the targets list with their own key.
    forged = releases.Repository(repo).load("targets")
    forged.signed.version += 1
    forged.signatures.clear()
    forged.sign(releases.load_signer(keys.stranger))
    releases.Repository(repo).write(forged)
    releases.Repository(repo).sign_online(datetime.now(UTC))
    with pytest.raises(FetchError, match="signed metadata refused"):
        source(central, repo, tmp_path).target("0.2.0")


def test_an_expired_timestamp_and_a_clock_weeks_off_install_nothing(central, repo, keys, tmp_path) -> None:
    releases.publish(repo, bundle(tmp_path, "0.2.0"), "0.2.0", keys.targets, "amd64")
    # A timestamp signed 30 days ago: as a central that stopped re-signing, or a terminal 30 days fast.
    releases.Repository(repo).sign_timestamp(datetime.now(UTC) - timedelta(days=30))
    with pytest.raises(FetchError, match="Expired"):
        source(central, repo, tmp_path).target("0.2.0")


def test_an_older_timestamp_replayed_is_refused_and_a_truncated_cache_recovers(central, repo, keys, tmp_path) -> None:
    releases.publish(repo, bundle(tmp_path, "0.2.0"), "0.2.0", keys.targets, "amd64")
    old = (repo / "metadata" / "timestamp.json").read_bytes()
    releases.refresh(repo)
    device = source(central, repo, tmp_path)
    device.target("0.2.0")  # the terminal has seen the newer timestamp
    (repo / "metadata" / "timestamp.json").write_bytes(old)  # an attacker (or a restored backup) replays the old
    with pytest.raises(FetchError, match=r"BadVersionNumber|older"):
        device.target("0.2.0")
    releases.refresh(repo)
    for cached in device.metadata_dir.glob("*.json"):
        if cached.name != "root.json":
            cached.write_bytes(b"")  # a power cut truncated the client's cache
    assert device.target("0.2.0").custom["version"] == "0.2.0"


def test_the_policy_never_takes_a_downgrade_or_a_release_rolled_back() -> None:
    assert choose("0.3.0", "0.2.0", []) == "0.3.0"
    assert choose("0.10.0", "0.9.3", []) == "0.10.0"  # numbers, not text
    assert choose("0.1.0", "0.2.0", []) is None  # a downgrade: publish it as a newer version
    assert choose("0.2.0", "0.2.0", []) is None
    assert choose("0.3.0", "0.2.0", ["0.3.0"]) is None
    assert choose("latest", "0.2.0", []) is None and choose(None, "0.2.0", []) is None


class CuttingProxy:
    """Forwards GETs to the central, but cuts the body of the next response after ``cut`` bytes; counts the
    body bytes it let through (what a 4G link would have carried)."""

    def __init__(self, target: str) -> None:
        self.target = urlsplit(target)
        self.cut: int | None = None
        self.carried = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                upstream = http.client.HTTPConnection(proxy.target.hostname, proxy.target.port, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("range", "if-range")}
                upstream.request("GET", self.path, headers=headers)
                answer = upstream.getresponse()
                body = answer.read()
                cut, proxy.cut = proxy.cut, None
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding"):
                        self.send_header(key, value)
                self.send_header("Connection", "close")
                self.end_headers()
                sent = body if cut is None else body[:cut]
                self.wfile.write(sent)
                if self.path.startswith("/tuf/targets/"):
                    proxy.carried += len(sent)
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("share", [0.1, 0.5, 0.9])
def test_a_download_cut_on_the_way_resumes_where_it_stopped(central, repo, keys, tmp_path, share: float) -> None:
    size = 400_000
    releases.publish(repo, bundle(tmp_path, "0.2.0", size), "0.2.0", keys.targets, "amd64")
    proxy = CuttingProxy(central.base)
    try:
        device = source(central, repo, tmp_path, base=proxy.url)
        info = device.target("0.2.0")
        proxy.cut = int(size * share)
        with pytest.raises(FetchError, match="cut"):
            device.download(info)
        path = device.download(info)  # the next try asks for the rest only
    finally:
        proxy.close()
    assert path.read_bytes() == (tmp_path / "bundle-0.2.0.tar").read_bytes()
    assert proxy.carried <= 1.2 * size, f"{proxy.carried} bytes carried for a {size}-byte bundle"


def test_the_operator_publishes_then_rolls_out_pauses_and_widens_from_the_command_line(
    central, tmp_path, capsys, monkeypatch
) -> None:
    import json

    from central import cli

    monkeypatch.setenv("APTIC_CENTRAL_SECRET", "x")
    common = ["--db", central.settings.db_url, "--data-dir", str(central.settings.data_dir), "--json"]

    def run(verb: str, *args: str) -> tuple[int, dict]:
        code = cli.main(["fleet", verb, *common, *args])
        out = capsys.readouterr().out
        return code, json.loads(out) if out.strip() else {}

    offline = tmp_path / "offline"
    offline.mkdir()
    for name in ("r1", "r2", "r3", "targets", "stranger"):
        assert run("keygen", str(offline / f"{name}.pem"))[0] == 0
    assert (offline / "r1.pem").stat().st_mode & 0o777 == 0o600
    roots = [arg for n in ("r1", "r2", "r3") for arg in ("--root-key", str(offline / f"{n}.pem"))]
    assert run("init-releases", *roots, "--threshold", "2", "--targets-key", str(offline / "targets.pem"))[0] == 0
    code, refused = run("publish", str(bundle(tmp_path, "0.2.0")), "--version", "0.2.0", "--arch", "amd64",
                        "--targets-key", str(offline / "stranger.pem"))  # fmt: skip
    assert code == 1 and refused["error"] == "invalid_release"
    code, refused = run("publish", str(bundle(tmp_path, "0.2.0")), "--version", "0.2.0", "--targets-key",
                        str(offline / "targets.pem"))  # fmt: skip
    assert code == 1 and "give --arch" in refused["message"]  # random bytes: no RELEASE.json to say it
    code, published = run("publish", str(bundle(tmp_path, "0.2.0")), "--version", "0.2.0", "--arch", "amd64",
                          "--targets-key", str(offline / "targets.pem"))  # fmt: skip
    assert code == 0 and published["version"] == "0.2.0" and published["arch"] == "amd64"
    assert [r["version"] for r in run("releases")[1]] == ["0.2.0"]

    org, _ = central.organisation()
    first, second = central.device(org, "pi-1"), central.device(org, "pi-2")

    def wanted(device) -> str | None:
        return device.get("/api/v1/desired-state").json()["software_version"]

    assert run("rollout-start", "0.9.0", "--devices", str(first.id))[0] == 1  # not published
    code, rollout = run("rollout-start", "0.2.0", "--devices", str(first.id))
    assert code == 0 and rollout["picked"] == 1 and rollout["running"] == 0
    assert (wanted(first), wanted(second)) == ("0.2.0", None)
    first.post("/api/v1/report", json={"applied_generation": 1, "release": {"running": "0.2.0"}})
    assert run("rollout-pause", str(rollout["id"]))[1]["status"] == "paused"
    assert wanted(first) is None
    run("rollout-resume", str(rollout["id"]))
    code, widened = run("rollout-widen", str(rollout["id"]), "--percent", "100")
    assert code == 0 and widened["picked"] == 2 and widened["running"] == 1
    assert (wanted(first), wanted(second)) == ("0.2.0", "0.2.0")
    assert run("rollout-widen", str(rollout["id"]), "--percent", "50")[0] == 1  # never narrowed
    assert run("refresh-releases")[0] == 0


def test_the_terminal_takes_the_desired_release_only_once_its_clock_is_synchronised_and_hands_it_to_the_guard(
    central, repo, keys, tmp_path, monkeypatch
) -> None:
    from tests.test_update_stage import wheel
    from updates.agent import UpdateStep
    from updates.guard import Guard
    from updates.stage import build_bundle

    monkeypatch.setattr("updates.stage.SELF_TEST", "import fake_release")
    wheel(tmp_path / "wheels", "0.2.0")
    releases.publish(repo, build_bundle("0.2.0", tmp_path / "wheels", tmp_path / "b.tar"), "0.2.0", keys.targets)
    updates = tmp_path / "device" / "updates"
    guard = Guard(updates, tmp_path / "factory")
    guard.on_start()
    synced = False
    step = UpdateStep(ReleaseSource(central.base, tmp_path / "device" / "fetch", releases.root_json(repo)), updates,
                      "0.1.0", clock_synced=lambda: synced, request_switch=guard.switch)  # fmt: skip
    step.consider("0.2.0")
    assert step.report()["error"] == "waiting for the clock to be synchronised" and guard.running() == guard.factory
    synced = True
    step.consider("0.0.9")  # a downgrade: nothing
    assert guard.running() == guard.factory and step.report()["error"] is None
    step.consider("0.2.0")
    assert guard.running() == updates / "releases" / "0.2.0"
    assert step.report() == {
        "running": "0.1.0",
        "desired": "0.2.0",
        "phase": "trial",
        "bad": [],
        "error": None,
        "activity": None,
    }
    step.consider("0.2.0")  # on trial already: nothing more
    assert guard.state()["starts"] == 0


def test_each_architecture_takes_its_own_bundle(central, repo, keys, tmp_path) -> None:
    releases.publish(repo, bundle(tmp_path, "0.2.0"), "0.2.0", keys.targets, "arm64")
    with pytest.raises(FetchError, match="not published for amd64"):  # a PC never takes a Pi's compiled venv
        source(central, repo, tmp_path).target("0.2.0")
    releases.publish(repo, bundle(tmp_path, "0.2.0"), "0.2.0", keys.targets, "amd64")  # the same version, for PCs
    assert source(central, repo, tmp_path).target("0.2.0").custom == {"version": "0.2.0", "arch": "amd64"}
    assert [(r["version"], r["arch"]) for r in releases.releases(repo)] == [("0.2.0", "amd64"), ("0.2.0", "arm64")]


def test_the_release_root_is_the_images_else_the_centrals_first_one_kept_for_good(central, repo, keys, tmp_path):
    from updates.agent import pinned_root

    fetched: list[int] = []

    def fetch() -> bytes:
        fetched.append(1)
        return releases.root_json(repo)

    pinned, kept = tmp_path / "image-root.json", tmp_path / "agent" / "root.json"
    root = pinned_root(pinned, kept, fetch)
    assert root() == releases.root_json(repo) and root() == releases.root_json(repo) and fetched == [1]
    assert kept.read_bytes() == releases.root_json(repo)
    pinned.write_bytes(b"the operator's own root")
    assert root() == b"the operator's own root"  # an image built with the operator's root trusts only that one

    garbage = pinned_root(tmp_path / "none", tmp_path / "other" / "root.json", lambda: b"<html>404</html>")
    with pytest.raises(FetchError, match="not a signed TUF root"):
        garbage()
    assert not (tmp_path / "other" / "root.json").exists()  # nothing trusted from a bad answer
    device = ReleaseSource(central.base, tmp_path / "device", garbage, arch="amd64")
    releases.publish(repo, bundle(tmp_path, "0.2.0"), "0.2.0", keys.targets, "amd64")
    with pytest.raises(FetchError):
        device.target("0.2.0")
