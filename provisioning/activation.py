"""Activation: a kit number and its code, printed on the kit's label, become this device's token.

``activate()`` is what both ``aptic-terminal activate`` and the kiosk's activation screen call. It asks the
central (``POST /api/v1/activations``), saves the token in its own file (mode 0600) and the device's
identity in the state, then pulls the offline snapshot with the new token so the terminal can judge passes
at once. The same call re-activates a terminal whose token was revoked (a 401 from the central put it in
the ``reactivation_required`` state): the scans waiting in the outbox are kept and go out with the new token.
"""

from __future__ import annotations

import logging
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from terminal.snapshot import merge
from terminal.sync import CentralClient, CentralError, Refused, Unavailable
from terminal.terminal import Terminal, TerminalError

logger = logging.getLogger(__name__)


class ActivationError(TerminalError):
    """The central did not activate the kit; ``message_fr`` says why, for the activation screen."""


def software_version() -> str:
    try:
        return metadata.version("aptic-terminal")
    except metadata.PackageNotFoundError:
        return "dev"


def device_info() -> dict[str, str]:
    """Serial (the Pi's CPU serial, else the machine id), model and software version, for the central."""
    serial = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("Serial"):
                serial = line.split(":", 1)[1].strip()
    except OSError:
        pass
    if not serial:
        try:
            serial = Path("/etc/machine-id").read_text().strip()
        except OSError:
            serial = platform.node() or "unknown"
    try:
        model = Path("/proc/device-tree/model").read_text().strip("\x00\n ")
    except OSError:
        model = f"{platform.system()} {platform.machine()}"
    return {"serial": serial[:100], "model": (model or "unknown")[:100], "software_version": software_version()}


def activate(terminal: Terminal, central_url: str, kit_number: str, code: str, *,
             client: CentralClient | None = None) -> dict[str, Any]:  # fmt: skip
    """Activate (or re-activate) this terminal; returns the central's answer without the token.

    Raises :class:`ActivationError` with a French message: wrong code, kit already used, too many tries,
    central unreachable.
    """
    kit_number, code = kit_number.strip(), code.strip()
    if not kit_number or not code:
        raise ActivationError("kit number and code required", "Saisissez le numéro de kit et le code d'activation.")
    client = client or CentralClient(central_url)
    try:
        answer = client.activate(kit_number, code, device_info())
    except Refused as error:
        messages = {
            403: "Code d'activation incorrect.",
            409: "Ce kit a déjà été activé. Demandez un nouveau code.",
        }
        raise ActivationError(str(error), messages.get(error.status, error.message_fr)) from error
    except Unavailable as error:
        if error.retry_after:
            minutes = max(1, round(error.retry_after / 60))
            message = f"Trop d'essais : réessayez dans {minutes} minute{'s' if minutes > 1 else ''}."
        else:
            message = "Le central ne répond pas : vérifiez la connexion au réseau et réessayez."
        raise ActivationError(str(error), message) from error
    except CentralError as error:
        raise ActivationError(str(error), "Activation impossible.") from error

    store = terminal.store
    store.save_token(answer["token"])
    store.update_state(
        status="activated",
        device_id=answer.get("device_id"),
        kit_number=kit_number,
        central_url=central_url,
        organisation_id=(answer.get("organisation") or {}).get("id"),
        activated_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    logger.info("Activated with kit %s as device %s", kit_number, answer.get("device_id"))
    try:
        received = CentralClient(central_url, token=answer["token"]).snapshot()
        terminal.load_snapshot(merge(None, received))
    except CentralError as error:  # the sync worker will pull it
        logger.warning("Activated, but the first snapshot could not be pulled: %s", error)
    terminal.bus.publish("activated", device_id=answer.get("device_id"), pending=store.pending_count())
    return {k: v for k, v in answer.items() if k != "token"}
