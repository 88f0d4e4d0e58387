"""First boot: a new terminal activates itself from a file put on its SD card's boot partition.

The same generic image goes on every card: it holds no secret and no identity. Whoever prepares a kit puts
``aptic-activation.toml`` on the card's boot partition (FAT: any PC can write it), with what the kit's label
says::

    kit_number = "AK-12345"
    activation_code = "7QX4-PM2K"
    central_url = "https://central.example.org"

    [wifi]                 # optional: the place's network
    ssid = "Mediatheque-Public"
    psk = "mot de passe du wifi"
    country = "FR"         # ISO 3166 code: which radio channels are allowed here

``aptic-terminal firstboot --boot-dir /boot/firmware`` (run by the first-boot unit at every boot: with
nothing to do it costs a file read) then:

1. without the file, does nothing (exit 0): the kiosk's activation screen asks for the kit number and code;
2. validates the file; one it cannot use (bad TOML, a missing key, a central not in ``https``) gets its
   reasons in French in ``aptic-activation-erreur.txt`` beside it, where the person reads them by putting the
   card in a PC (exit 2);
3. with ``[wifi]``, writes a NetworkManager keyfile *before* activating, since the activation needs the
   network. On the image's read-only root the keyfile directory must live on the data partition (the image
   binds ``/etc/NetworkManager/system-connections`` there), or the keyfile is lost at the next boot;
4. activates through the same code as ``aptic-terminal activate`` (handed to the daemon if it runs);
5. on success, rewrites the file **without its secrets** (the code; the Wi-Fi psk once the keyfile holds
   it) and with a comment saying when and as which device it was activated. Rewritten rather than removed:
   an operator re-imaging a card sees which kit and central it served, and a later boot recognises a file
   already used (the terminal is activated as that kit) and does nothing;
6. on failure (wrong code, central unreachable), keeps the file as it is and writes the French reason in
   the error file (exit 1; 3 when the central did not answer). Nothing was spent: the next boot tries
   again, so a bus that boots before its network is up activates at a later stop. A wrong code is tried
   again at each boot too, until someone corrects the file (``aptic-central reissue-code`` gives a new
   one, and lifts a lockout for too many tries).

A power cut after the activation but before the rewrite leaves the code on the card; the next boot sees
the terminal activated as that kit and only finishes the rewrite (the code is single-use: asking the central
again would fail). The code and the psk never reach a log, the output or the error file.

Writes on the boot partition are atomic as far as FAT allows: a temporary file in the same directory,
fsync, rename, fsync of the directory (:func:`terminal.durable.atomic_write_bytes`, without chmod: FAT
has no modes). FAT has no journal, so a power cut *during* the rename may still need ``fsck.fat``.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import logging
import os
import re
import subprocess
import sys
import time
import tomllib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from terminal.durable import atomic_write_bytes, fsync_directory
from terminal.sync import Unavailable
from terminal.terminal import TerminalError

logger = logging.getLogger(__name__)

FILE_NAME = "aptic-activation.toml"
ERROR_FILE_NAME = "aptic-activation-erreur.txt"
WIFI_DIR = Path("/etc/NetworkManager/system-connections")
WIFI_CONNECTION = "aptic-wifi"
KEYS = ("kit_number", "activation_code", "central_url", "wifi")
WIFI_KEYS = ("ssid", "psk", "country")

# Exit statuses: the first-boot unit and a person reading `systemctl status` tell them apart. UNREACHABLE is
# worth retrying soon (the network may come up); the others wait for someone to correct the file.
DONE, ACTIVATION_FAILED, INVALID_FILE, UNREACHABLE = 0, 1, 2, 3
RETRY_INTERVAL = 3.0  # seconds between tries of an unreachable central (--retry)


class InvalidFile(Exception):
    """The activation file cannot be used; ``problems`` say why, in French, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Wifi:
    ssid: str
    psk: str | None  # None once applied: the rewritten file keeps no secret
    country: str


@dataclass(frozen=True, slots=True)
class ActivationFile:
    kit_number: str
    activation_code: str | None  # None in a file already used
    central_url: str
    wifi: Wifi | None

    @property
    def has_secrets(self) -> bool:
        return self.activation_code is not None or (self.wifi is not None and self.wifi.psk is not None)


def central_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be the central (in French), or None. ``https`` only, but ``http`` on loopback.

    >>> central_url_problem("https://central.example.org") is None, central_url_problem("http://127.0.0.1:8470")
    (True, None)
    >>> print(central_url_problem("http://central.example.org"))
    central_url « http://central.example.org » doit commencer par https:// (http n'est permis que sur ...
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return f"central_url « {url} » n'est pas une adresse web valable."
    if parts.scheme not in ("http", "https") or not host:
        return f"central_url « {url} » doit commencer par https:// suivi du nom du central."
    if parts.scheme == "http" and not _loopback(host):
        return f"central_url « {url} » doit commencer par https:// (http n'est permis que sur la machine même)."
    if parts.query or parts.fragment:
        return f"central_url « {url} » ne doit contenir ni « ? » ni « # »."
    return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _wifi(section: Any, problems: list[str]) -> Wifi | None:
    if not isinstance(section, dict):
        problems.append("wifi doit être une section [wifi], avec ssid, psk et country.")
        return None
    before = len(problems)
    for key in section:
        if key not in WIFI_KEYS:
            problems.append(f"[wifi] : clé inconnue « {key} » (clés possibles : {', '.join(WIFI_KEYS)}).")
    ssid, psk, country = (section.get(key) for key in WIFI_KEYS)
    if not isinstance(ssid, str) or not ssid:
        problems.append("[wifi] : ssid manquant (le nom du réseau Wi-Fi, entre guillemets).")
    elif len(ssid.encode("utf-8")) > 32:
        problems.append("[wifi] : ssid trop long (32 octets au plus).")
    if psk is not None and (not isinstance(psk, str) or not 8 <= len(psk) <= 63 or not psk.isascii()
                            or not psk.isprintable()):  # fmt: skip
        # What WPA accepts as a passphrase; the message never repeats it.
        problems.append("[wifi] : psk (le mot de passe du Wi-Fi) doit compter de 8 à 63 caractères, sans accents.")
    if not isinstance(country, str) or not re.fullmatch(r"[A-Za-z]{2}", country):
        problems.append('[wifi] : country doit être le code du pays en deux lettres, par exemple "FR".')
    if len(problems) > before or not isinstance(ssid, str) or not isinstance(country, str):
        return None
    return Wifi(ssid=ssid, psk=psk, country=country.upper())


def parse(raw: bytes) -> ActivationFile:
    """The activation file's content, validated; :class:`InvalidFile` lists every problem at once."""
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))  # a PC's editor may add a byte-order mark
    except UnicodeDecodeError as error:
        raise InvalidFile(["Le fichier n'est pas en UTF-8 : enregistrez-le en UTF-8."]) from error
    except tomllib.TOMLDecodeError as error:
        line = re.search(r"line (\d+)", str(error))
        where = f" à la ligne {line.group(1)}" if line else ""
        raise InvalidFile([f"Le fichier n'est pas lisible{where} : chaque valeur s'écrit entre guillemets, "
                           "par exemple kit_number = \"AK-12345\"."]) from error  # fmt: skip
    problems: list[str] = []
    for key in data:
        if key not in KEYS:
            problems.append(f"Clé inconnue « {key} » (clés possibles : {', '.join(KEYS)}).")
    values: dict[str, str | None] = {}
    for key, what in (("kit_number", "le numéro de kit"), ("activation_code", "le code d'activation"),
                      ("central_url", "l'adresse du central")):  # fmt: skip
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            values[key] = value.strip()
        elif value is None and key == "activation_code":
            values[key] = None  # a file already used; checked against the terminal's state
        else:
            problems.append(f"{key} manquant ou vide ({what}, entre guillemets).")
    url = values.get("central_url")
    if url and (problem := central_url_problem(url)):
        problems.append(problem)
    wifi = _wifi(data["wifi"], problems) if "wifi" in data else None
    if problems:
        raise InvalidFile(problems)
    return ActivationFile(kit_number=str(values["kit_number"]), activation_code=values["activation_code"],
                          central_url=str(url).rstrip("/"), wifi=wifi)  # fmt: skip


def _keyfile_string(value: str) -> str:
    """``value`` as a GLib key-file string: backslash escapes, and a leading space kept."""
    escaped = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return "\\s" + escaped[1:] if escaped.startswith(" ") else escaped


def _keyfile_ssid(ssid: str) -> str:
    # NetworkManager reads an SSID as text, or as bytes "77;101;...;" when text would be ambiguous (a ";" is
    # its list separator, "#" may start a comment, spaces at the ends would be trimmed).
    if ssid.isprintable() and not set(ssid) & set(";#\\") and ssid == ssid.strip():
        return ssid
    return "".join(f"{byte};" for byte in ssid.encode("utf-8"))


def keyfile(wifi: Wifi) -> bytes:
    """A NetworkManager connection for ``wifi`` (WPA-PSK, DHCP), connecting by itself at every boot."""
    if wifi.psk is None:
        raise ValueError("no psk to write")
    return "\n".join([
        f"# Written by aptic-terminal firstboot from the boot partition's {FILE_NAME}.",
        f"# Wi-Fi country {wifi.country}: the kernel's regulatory domain is the image's to set (cfg80211).",
        "[connection]",
        f"id={WIFI_CONNECTION}",
        f"uuid={uuid.uuid5(uuid.NAMESPACE_URL, 'aptic-wifi:' + wifi.ssid)}",  # the same network, the same id
        "type=wifi",
        "autoconnect=true",
        "",
        "[wifi]",
        "mode=infrastructure",
        f"ssid={_keyfile_ssid(wifi.ssid)}",
        "",
        "[wifi-security]",
        "key-mgmt=wpa-psk",
        f"psk={_keyfile_string(wifi.psk)}",
        "",
        "[ipv4]",
        "method=auto",
        "",
        "[ipv6]",
        "method=auto",
        "",
    ]).encode("utf-8")  # fmt: skip


def write_wifi(wifi: Wifi, directory: Path) -> Path:
    """Write the keyfile in ``directory``, mode 0600 (NetworkManager ignores a keyfile others can read)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"{WIFI_CONNECTION}.nmconnection"
    atomic_write_bytes(path, keyfile(wifi), mode=0o600)
    logger.info("Wi-Fi connection for SSID %r written to %s", wifi.ssid, path)
    # NetworkManager reads keyfiles when it starts and on reload only; if it runs already, tell it. If it does
    # not run yet, it reads the file when it starts.
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(["nmcli", "connection", "reload"], capture_output=True, timeout=10, check=False)
    return path


def used_file(activation: ActivationFile, *, device_id: Any, when: str) -> bytes:
    """The activation file as it stays on the card once used: no code, no psk, and when and as what."""

    def string(value: str) -> str:
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string

    lines = [
        f"# Terminal activé le {when} : appareil {device_id}, kit {activation.kit_number}.",
        "# Le code d'activation a été effacé. Pour réactiver ce terminal, ajoutez la ligne",
        '# activation_code = "…" avec un nouveau code (aptic-central reissue-code).',
        f"kit_number = {string(activation.kit_number)}",
        f"central_url = {string(activation.central_url)}",
    ]
    if activation.wifi is not None:
        lines += [
            "",
            "[wifi]",
            "# Le mot de passe (psk) a été enregistré sur le terminal puis effacé d'ici.",
            f"ssid = {string(activation.wifi.ssid)}",
            f"country = {string(activation.wifi.country)}",
        ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def write_error(boot_dir: Path, reasons: list[str]) -> None:
    """Explain on the boot partition, in French, why the card did not activate the terminal."""
    when = datetime.now(UTC).isoformat(timespec="seconds")
    text = "\n".join([
        f"Le terminal n'a pas pu s'activer avec {FILE_NAME} ({when}, heure du terminal) :",
        "",
        *(f"- {reason}" for reason in reasons),
        "",
        f"Corrigez {FILE_NAME} si besoin puis remettez la carte dans le terminal : il réessaie à chaque",
        "démarrage. Ce fichier disparaît une fois le terminal activé.",
        "",
    ])  # fmt: skip
    atomic_write_bytes(boot_dir / ERROR_FILE_NAME, text.replace("\n", "\r\n").encode("utf-8"), mode=None)


def clear_error(boot_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (boot_dir / ERROR_FILE_NAME).unlink()
        fsync_directory(boot_dir)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int  # DONE, ACTIVATION_FAILED, INVALID_FILE or UNREACHABLE
    result: str  # no_file, activated, already_activated, activation_failed, invalid_file
    message: str  # French, for the person
    kit_number: str | None = None
    device_id: Any = None


def first_boot(boot_dir: Path, config: Any, *, wifi_dir: Path = WIFI_DIR) -> Outcome:
    """Do what the activation file in ``boot_dir`` asks (see the module's docstring); never raises for a bad
    file or a failed activation: the :class:`Outcome` says it."""
    from terminal.commands import activate_terminal, open_terminal

    path = boot_dir / FILE_NAME
    for leftover in boot_dir.glob(FILE_NAME + ".*.tmp"):  # a rewrite cut by a power loss
        leftover.unlink()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        logger.info("No %s in %s: the kiosk's activation screen will be used", FILE_NAME, boot_dir)
        return Outcome(DONE, "no_file", "Pas de fichier d'activation : l'écran d'activation du kiosque sera utilisé.")

    state = open_terminal(config, readonly=True).store.state()
    try:
        activation = parse(raw)
        done = state.get("status") == "activated" and state.get("kit_number") == activation.kit_number
        wifi = activation.wifi
        if wifi is not None and wifi.psk is None and not (wifi_dir / f"{WIFI_CONNECTION}.nmconnection").exists():
            raise InvalidFile(["[wifi] : psk manquant (le mot de passe du Wi-Fi, entre guillemets)."])
        if activation.activation_code is None and not done:
            raise InvalidFile(["activation_code manquant ou vide (le code d'activation, entre guillemets)."])
    except InvalidFile as error:
        logger.error("%s in %s cannot be used (%d problem(s)); reasons written to %s",
                     FILE_NAME, boot_dir, len(error.problems), ERROR_FILE_NAME)  # fmt: skip
        write_error(boot_dir, error.problems)
        return Outcome(INVALID_FILE, "invalid_file", "\n".join(error.problems))

    kit = activation.kit_number
    if wifi is not None and wifi.psk is not None:
        try:
            write_wifi(wifi, wifi_dir)
        except OSError as error:
            logger.error("Wi-Fi connection not written to %s: %s", wifi_dir, error.strerror)
            reason = f"Le Wi-Fi n'a pas pu être enregistré sur le terminal ({error.strerror})."
            write_error(boot_dir, [reason])
            return Outcome(ACTIVATION_FAILED, "activation_failed", reason, kit)

    if done:
        device_id, when = state.get("device_id"), state.get("activated_at") or "?"
        logger.info("Already activated as kit %s (device %s)", kit, device_id)
        result, message = "already_activated", f"Terminal déjà activé : appareil {device_id}, kit {kit}."
    else:
        logger.info("Activating with kit %s against %s", kit, activation.central_url)
        try:
            answer = activate_terminal(config, activation.central_url, kit, str(activation.activation_code))
        except TerminalError as error:
            logger.error("Activation with kit %s failed: %s", kit, error)
            write_error(boot_dir, [error.message_fr])
            # Unavailable: no answer, or 429 (too many tries). Through the daemon's socket the cause is lost: 1.
            retry = isinstance(error.__cause__, Unavailable)
            return Outcome(UNREACHABLE if retry else ACTIVATION_FAILED, "activation_failed", error.message_fr, kit)
        device_id, when = answer.get("device_id"), datetime.now(UTC).isoformat(timespec="seconds")
        organisation = (answer.get("organisation") or {}).get("name", "")
        result, message = "activated", f"Terminal activé : appareil {device_id}, {organisation}."

    if activation.has_secrets:  # also when a power cut came between the activation and this rewrite
        atomic_write_bytes(path, used_file(activation, device_id=device_id, when=when), mode=None)
        # vfat's fsync of a directory did not reach the disk (seen in QEMU: a power cut minutes later found the
        # old directory entry over a freed cluster, and the code back on the card). A whole sync, once per
        # activation, does; the image also mounts the boot partition with "sync".
        os.sync()
        logger.info("Secrets erased from %s", path)
    clear_error(boot_dir)
    return Outcome(DONE, result, message, kit, device_id)


def cmd_firstboot(args: argparse.Namespace) -> int:
    from terminal.commands import settings

    config = settings(args)
    outcome = first_boot(args.boot_dir, config, wifi_dir=args.wifi_dir)
    # At power on the network comes a few seconds after this runs (DHCP, Wi-Fi association): an unreachable
    # central is tried again, for at most --retry seconds. Past that the next boot tries again.
    deadline = time.monotonic() + args.retry
    while outcome.status == UNREACHABLE and time.monotonic() + RETRY_INTERVAL < deadline:
        time.sleep(RETRY_INTERVAL)
        outcome = first_boot(args.boot_dir, config, wifi_dir=args.wifi_dir)
    if args.json:
        print(json.dumps({"result": outcome.result, "message": outcome.message, "kit_number": outcome.kit_number,
                          "device_id": outcome.device_id}, ensure_ascii=False))  # fmt: skip
    else:
        print(outcome.message, file=sys.stdout if outcome.status == DONE else sys.stderr)
    return outcome.status


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``firstboot`` to the ``aptic-terminal`` parser."""
    parser = commands.add_parser("firstboot", help=f"activate from the boot partition's {FILE_NAME}, if any")
    parser.add_argument("--boot-dir", type=Path, default=Path("/boot/firmware"), metavar="DIR",
                        help="where the activation file is (default: /boot/firmware)")  # fmt: skip
    parser.add_argument("--wifi-dir", type=Path, default=WIFI_DIR, metavar="DIR",
                        help=f"where the NetworkManager keyfile goes (default: {WIFI_DIR})")  # fmt: skip
    parser.add_argument("--data-dir", type=Path, help="data directory (default from the settings)")
    parser.add_argument("--retry", type=float, default=0, metavar="SECONDS",
                        help="try again while the central does not answer, for at most this long")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one JSON document")
    parser.set_defaults(func=cmd_firstboot)
