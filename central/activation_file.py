"""The activation file of a terminal's SD card, written by the central (``aptic-central add-kit --activation-file``).

A new terminal activates itself at its first boot from ``aptic-activation.toml`` on its card's boot partition
(the format is described at the top of :mod:`provisioning.firstboot`)::

    kit_number = "AK-12345678"
    activation_code = "7QX4-PM2K"
    central_url = "https://central.example.org"

    [wifi]
    ssid = "Mediatheque-Public"
    psk = "mot de passe du wifi"
    country = "FR"

Typed by hand, that file is where a first boot goes wrong (a missing quote, ``http://``, a code misread off
the label). Written here, it is right by construction: :func:`render` reads what it wrote back through the
device's own parser, :func:`provisioning.firstboot.parse`, so the central refuses to write a file the terminal
would refuse to read, with the device's own French reasons (a central not in ``https``, a Wi-Fi password of
the wrong length...).

The file holds secrets (the activation code, the Wi-Fi password): :func:`write_private` writes it readable by
its owner only, and atomically, so a card pulled out mid-write holds either the old file or the new one. The
code and the password never reach a log or an error message.

This module knows no database: the caller gives it the kit number and code.
"""

from __future__ import annotations

import json
from pathlib import Path

from provisioning import firstboot
from provisioning.firstboot import Wifi
from terminal.durable import atomic_write_bytes

FILE_NAME = firstboot.FILE_NAME  # "aptic-activation.toml": the name the device looks for

__all__ = ["FILE_NAME", "InvalidActivationFile", "Wifi", "render", "target", "write_private"]


class InvalidActivationFile(ValueError):
    """The terminal would refuse this file; ``problems`` are the device's reasons, in French, one each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _toml_string(value: str) -> str:
    """``value`` as a TOML basic string.

    A JSON string is one, with a single exception: TOML also wants DEL (U+007F) escaped, and JSON leaves it
    raw. An SSID may hold any character, so the exception matters.

    >>> print(_toml_string('Café "Wi-Fi"\\t\\x7f'))
    "Café \\"Wi-Fi\\"\\t\\u007f"
    """
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def render(kit_number: str, activation_code: str, central_url: str, wifi: Wifi | None = None) -> bytes:
    """The activation file's bytes for this kit, checked by the device's own parser.

    Raises :class:`InvalidActivationFile` when :func:`provisioning.firstboot.parse` would refuse it (its reasons
    never repeat the code or the Wi-Fi password), or when it would read back other values than these.

    >>> text = render("AK-12345678", "7QX4-PM2K", "https://central.example.org").decode()
    >>> print("\\n".join(line for line in text.splitlines() if line and not line.startswith("#")))
    kit_number = "AK-12345678"
    activation_code = "7QX4-PM2K"
    central_url = "https://central.example.org"
    >>> render("AK-12345678", "7QX4-PM2K", "http://central.example.org")
    Traceback (most recent call last):
    ...
    central.activation_file.InvalidActivationFile: central_url « http://central.example.org » doit commencer ...
    """
    lines = [
        f"# Fichier d'activation du kit {kit_number}, écrit par aptic-central.",
        f"# À copier tel quel, sous le nom {FILE_NAME}, sur la partition de démarrage (FAT) de la carte SD",
        "# du terminal. Il contient le code d'activation"
        + (" et le mot de passe du Wi-Fi" if wifi is not None else "")
        + " : ne le diffusez pas. Le terminal l'en efface une fois activé.",
        "",
        f"kit_number = {_toml_string(kit_number)}",
        f"activation_code = {_toml_string(activation_code)}",
        f"central_url = {_toml_string(central_url)}",
    ]
    if wifi is not None:
        lines += [
            "",
            "[wifi]",
            f"ssid = {_toml_string(wifi.ssid)}",
            # None is the device's "already applied" (a used file): a file for a new card must carry it; the
            # parser lets it through, so an absent psk is left for it to report below.
            *([f"psk = {_toml_string(wifi.psk)}"] if wifi.psk is not None else []),
            f"country = {_toml_string(wifi.country)}",
        ]
    try:
        data = ("\n".join(lines) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: bytes of a command line that were not UTF-8
        raise InvalidActivationFile(["Le fichier ne peut contenir que du texte UTF-8 (le nom du Wi-Fi ?)."]) from None
    try:
        parsed = firstboot.parse(data)
    except firstboot.InvalidFile as error:
        raise InvalidActivationFile(error.problems) from None
    problems: list[str] = []
    if wifi is not None and wifi.psk is None:
        problems.append("[wifi] : psk manquant (le mot de passe du Wi-Fi) : le terminal ne se connecterait pas.")
    # The device strips the values and the URL's last "/": it must read exactly what the label says.
    if (parsed.kit_number, parsed.activation_code) != (kit_number, activation_code):
        problems.append("Le numéro de kit ou le code d'activation ne se relisent pas à l'identique (espaces ?).")
    if parsed.wifi is not None and wifi is not None and (parsed.wifi.ssid, parsed.wifi.psk) != (wifi.ssid, wifi.psk):
        problems.append("[wifi] : le nom ou le mot de passe du Wi-Fi ne se relisent pas à l'identique.")
    if problems:
        raise InvalidActivationFile(problems)
    return data


def target(path: Path) -> Path:
    """Where to write: ``path``, or ``path/aptic-activation.toml`` when ``path`` is a directory (the mounted
    boot partition of a card, where the file must bear the name the device looks for)."""
    return path / FILE_NAME if path.is_dir() else path


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, atomically, readable and writable by its owner only (0600).

    The bytes go to a temporary file in the same directory, created 0600 by :func:`tempfile.mkstemp` (so there
    is no moment when another user could read the code, whatever the umask), fsync'd, then renamed over
    ``path``, and the directory fsync'd so the rename survives a power cut or a card pulled out too soon.
    No chmod: on a FAT boot partition modes come from the mount and a chmod fails; there, what protects the
    card is who holds it. The temporary name, ``<name>.<random>.tmp``, is the one the device's first boot
    sweeps from the card if a write was cut.
    """
    atomic_write_bytes(path, data, mode=None)  # mkstemp makes the file 0600 from the start
