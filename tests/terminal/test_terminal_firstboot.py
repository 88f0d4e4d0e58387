"""``aptic-terminal firstboot``: a card's ``aptic-activation.toml`` activates the terminal, against the real
central on loopback; the secrets leave the card, a failure leaves the file and a French reason beside it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from central_server import Central, free_port
from terminal_fixtures import running_daemon, wait_for

from provisioning import firstboot as firstboot_module
from provisioning.firstboot import Wifi, keyfile

REPO = Path(__file__).resolve().parent.parent.parent
PSK = "wifi-secret-42"


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Central]:
    server = Central(tmp_path_factory.mktemp("central-firstboot")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def organisation(central: Central) -> int:
    org = central.add_organisation("Centre social de Cenon", "20000000000002")
    central.add_point(org, "Espace numérique")
    return org


def aptic_terminal(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "terminal.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "APTIC_TERMINAL_CONFIG": "/nonexistent"},
        timeout=60,
    )


def firstboot(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return aptic_terminal("firstboot", "--boot-dir", str(tmp_path / "boot"), "--wifi-dir", str(tmp_path / "nm"),
                          *extra, data_dir=tmp_path / "data")  # fmt: skip


def status(tmp_path: Path) -> dict:
    out = aptic_terminal("status", "--json", data_dir=tmp_path / "data")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def card(tmp_path: Path, text: str) -> Path:
    boot = tmp_path / "boot"
    boot.mkdir(exist_ok=True)
    path = boot / "aptic-activation.toml"
    path.write_text(text)
    return path


def activation_text(kit: str, code: str, url: str, wifi: bool = False) -> str:
    text = f'kit_number = "{kit}"\nactivation_code = "{code}"\ncentral_url = "{url}"\n'
    if wifi:
        text += f'\n[wifi]\nssid = "Médiathèque Public"\npsk = "{PSK}"\ncountry = "fr"\n'
    return text


def test_a_good_card_activates_the_terminal_and_loses_its_secrets(central: Central, organisation: int,
                                                                   tmp_path: Path) -> None:  # fmt: skip
    kit, code = central.add_kit(organisation)
    path = card(tmp_path, activation_text(kit, code, central.url, wifi=True))
    out = firstboot(tmp_path, "--json")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["result"] == "activated" and answer["kit_number"] == kit and answer["device_id"]
    for secret in (code, PSK):
        assert secret not in out.stdout + out.stderr
    doc = status(tmp_path)
    assert doc["activation"] == "activated" and doc["central_url"] == central.url
    assert doc["place"] == "Espace numérique"

    # The card keeps which kit and central it served, and when, as which device; no secret.
    text = path.read_text()
    assert code not in text and PSK not in text
    left = tomllib.loads(text)
    assert left == {"kit_number": kit, "central_url": central.url,
                    "wifi": {"ssid": "Médiathèque Public", "country": "FR"}}  # fmt: skip
    assert text.startswith("# Terminal activé le ") and f"appareil {answer['device_id']}, kit {kit}" in text
    assert not (tmp_path / "boot" / "aptic-activation-erreur.txt").exists()

    nm = tmp_path / "nm" / "aptic-wifi.nmconnection"
    assert stat.S_IMODE(nm.stat().st_mode) == 0o600
    keys = nm.read_text()
    for line in ("type=wifi", "ssid=Médiathèque Public", "key-mgmt=wpa-psk", f"psk={PSK}", "autoconnect=true"):
        assert line + "\n" in keys
    assert list((tmp_path / "boot").iterdir()) == [path]  # no temporary file left

    # Every later boot: nothing to do, nothing written.
    before, mtime, nm_mtime = path.read_bytes(), path.stat().st_mtime_ns, nm.stat().st_mtime_ns
    again = firstboot(tmp_path, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["result"] == "already_activated"
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime and nm.stat().st_mtime_ns == nm_mtime


def test_a_wrong_code_keeps_the_file_and_explains_in_french(central: Central, organisation: int,
                                                            tmp_path: Path) -> None:  # fmt: skip
    kit, code = central.add_kit(organisation)
    wrong = "ZZZZ-" + code[::-1]
    path = card(tmp_path, activation_text(kit, wrong, central.url))
    before = path.read_bytes()
    out = firstboot(tmp_path)
    assert out.returncode == 1
    assert "Code d'activation incorrect." in out.stderr and wrong not in out.stdout + out.stderr
    assert status(tmp_path)["activation"] == "not_activated"
    assert path.read_bytes() == before
    error = (tmp_path / "boot" / "aptic-activation-erreur.txt").read_text(encoding="utf-8")
    assert "Code d'activation incorrect." in error and wrong not in error


def test_with_retry_a_central_that_answers_a_little_later_activates_on_the_same_boot(tmp_path: Path) -> None:
    """At power on the network comes seconds after the first-boot unit: --retry keeps trying until it does."""
    late = Central(tmp_path / "central")
    (tmp_path / "central").mkdir()
    late.cli("init-db")
    org = late.add_organisation("Médiathèque de Floirac", "20000000000004")
    late.add_point(org, "Accueil")
    kit, code = late.add_kit(org)
    card(tmp_path, activation_text(kit, code, late.url))
    command = [sys.executable, "-m", "terminal.cli", "firstboot", "--boot-dir", str(tmp_path / "boot"), "--wifi-dir",
               str(tmp_path / "nm"), "--retry", "120", "--data-dir", str(tmp_path / "data")]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, "APTIC_TERMINAL_CONFIG": "/nonexistent"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        error = tmp_path / "boot" / "aptic-activation-erreur.txt"
        wait_for(lambda: error.exists(), "a first try that found no central", 60)  # it tried, and waits
        assert process.poll() is None
        late.start()
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert out.startswith("Terminal activé") and not error.exists()
    finally:
        process.kill()
        late.stop()


def test_an_unreachable_central_does_not_burn_the_code(tmp_path: Path) -> None:
    """A bus boots before its network is up: the next boot, with the central reachable, activates."""
    late = Central(tmp_path / "central")
    (tmp_path / "central").mkdir()
    late.cli("init-db")  # the kit exists, the central is not serving yet: its port is closed
    org = late.add_organisation("Médiathèque de Lormont", "20000000000003")
    late.add_point(org, "Bus")
    kit, code = late.add_kit(org)
    path = card(tmp_path, activation_text(kit, code, late.url))
    out = firstboot(tmp_path)
    assert out.returncode == 3 and "ne répond pas" in out.stderr  # 3: worth retrying soon
    assert path.read_text() == activation_text(kit, code, late.url)
    assert "ne répond pas" in (tmp_path / "boot" / "aptic-activation-erreur.txt").read_text(encoding="utf-8")
    late.start()
    try:
        retry = firstboot(tmp_path)
        assert retry.returncode == 0, retry.stderr
        assert retry.stdout.startswith("Terminal activé")
    finally:
        late.stop()
    assert status(tmp_path)["activation"] == "activated"
    assert code not in path.read_text()
    assert not (tmp_path / "boot" / "aptic-activation-erreur.txt").exists()  # the reason no longer holds


def test_a_running_daemon_is_handed_the_activation(central: Central, organisation: int, tmp_path: Path) -> None:
    """If the daemon already runs (the first-boot unit ordered after it), it activates in-process and syncs
    at once: no second process writes the files it owns."""
    kit, code = central.add_kit(organisation)
    port = free_port()
    kiosk = f"http://127.0.0.1:{port}/api/state"
    with running_daemon(tmp_path / "data", port) as daemon:
        wait_for(lambda: (tmp_path / "data" / "control.sock").exists() and requests.get(kiosk, timeout=5).ok,
                 "the daemon to listen")  # fmt: skip
        card(tmp_path, activation_text(kit, code, central.url))
        out = firstboot(tmp_path)
        assert out.returncode == 0, out.stderr
        wait_for(lambda: requests.get(kiosk, timeout=5).json()["sync"].get("online"), "the daemon to sync")
    log = daemon.stdout.read() if daemon.stdout else ""
    assert daemon.returncode == 0, log
    assert code not in log and code not in (tmp_path / "boot" / "aptic-activation.toml").read_text()
    assert status(tmp_path)["activation"] == "activated"  # the daemon kept it: it wrote its own state


def test_a_power_cut_before_the_rewrite_only_finishes_it(central: Central, organisation: int,
                                                         tmp_path: Path) -> None:  # fmt: skip
    """Activated, but the card still has the (now spent) code: no second call, the code is erased."""
    kit, code = central.add_kit(organisation)
    done = aptic_terminal("activate", "--central", central.url, "--kit", kit, "--code", code,
                          data_dir=tmp_path / "data")  # fmt: skip
    assert done.returncode == 0, done.stderr
    path = card(tmp_path, activation_text(kit, code, central.url))
    out = firstboot(tmp_path, "--json")
    assert out.returncode == 0, out.stderr  # asking the central again would have answered 409
    assert json.loads(out.stdout)["result"] == "already_activated"
    assert code not in path.read_text() and tomllib.loads(path.read_text())["kit_number"] == kit


def test_without_a_file_the_kiosk_screen_is_used(tmp_path: Path) -> None:
    (tmp_path / "boot").mkdir()
    out = firstboot(tmp_path)
    assert out.returncode == 0 and "écran d'activation" in out.stdout
    assert list((tmp_path / "boot").iterdir()) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('kit_number = AK-1\nactivation_code = "C"\ncentral_url = "https://c.example"\n', "à la ligne 1"),
        ('activation_code = "C"\ncentral_url = "https://c.example"\n', "kit_number manquant"),
        ('kit_number = "AK-1"\ncentral_url = "https://c.example"\n', "activation_code manquant"),
        ('kit_number = "AK-1"\nactivation_code = "C"\n', "central_url manquant"),
        ('kit_number = "AK-1"\nactivation_code = "C"\ncentral_url = "http://c.example"\n', "https://"),
        ('kit_number = "AK-1"\nactivation_code = "C"\ncentral_url = "c.example"\n', "https://"),
        ('kit_number = "AK-1"\nactivation_code = "C"\ncentral_url = "https://c.example"\nkit = "x"\n',
         "Clé inconnue « kit »"),
        ('kit_number = "AK-1"\nactivation_code = "C"\ncentral_url = "https://c.example"\n'
         f'[wifi]\nssid = "{"x" * 33}"\npsk = "{PSK}"\ncountry = "FR"\n', "ssid trop long"),
        ('kit_number = "AK-1"\nactivation_code = "C"\ncentral_url = "https://c.example"\n'
         '[wifi]\nssid = "Bus"\npsk = "1234567"\ncountry = "FR"\n', "de 8 à 63 caractères"),
        ('kit_number = "AK-1"\nactivation_code = "C"\ncentral_url = "https://c.example"\n'
         f'[wifi]\nssid = "Bus"\npsk = "{PSK}"\ncountry = "FRA"\n', "deux lettres"),
        ('kit_number = "AK-1"\nactivation_code = "C"\ncentral_url = "https://c.example"\n'
         '[wifi]\nssid = "Bus"\ncountry = "FR"\n', "psk manquant"),
    ],
    ids=["toml", "no-kit", "no-code", "no-url", "http", "no-scheme", "unknown-key", "ssid", "psk", "country",
         "no-psk"],
)  # fmt: skip
def test_a_file_that_cannot_be_used_says_why(text: str, expected: str, tmp_path: Path) -> None:
    path = card(tmp_path, text)
    out = firstboot(tmp_path)
    assert out.returncode == 2
    assert expected in out.stderr
    assert expected in (tmp_path / "boot" / "aptic-activation-erreur.txt").read_text(encoding="utf-8")
    assert path.read_text() == text
    assert PSK not in out.stdout + out.stderr
    assert not (tmp_path / "nm").exists()  # nothing applied from a file that is not right as a whole


def test_the_keyfile_keeps_odd_ssids_and_passphrases_exact() -> None:
    """NetworkManager reads ";" as a list separator and trims a leading space: such values are escaped."""
    text = keyfile(Wifi(ssid="a;b", psk=" pass\\word", country="FR")).decode()
    assert "\nssid=97;59;98;\n" in text
    assert "\npsk=\\spass\\\\word\n" in text


def test_docstring_examples() -> None:
    import doctest

    failures, tried = doctest.testmod(firstboot_module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0
