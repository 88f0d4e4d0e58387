"""Reason codes: why a pass is accepted or refused. The codes are a stable contract (snake_case, shared by
the terminal, the central and the kiosk); each has a short French title for the screen.

The full French message, with its details (dates, amounts, the funder), is built by ``aptic.rules``.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    OK = "ok"
    MALFORMED = "malformed"
    UNKNOWN_PASS = "unknown_pass"
    NOT_ACTIVATED = "not_activated"
    BLOCKED = "blocked"
    ALREADY_USED = "already_used"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    TERRITORY = "territory"
    PLACE_TYPE = "place_type"
    PLACE_NOT_DESIGNATED = "place_not_designated"
    PLACE_NOT_QUALIFIED = "place_not_qualified"
    SERVICE_NOT_IN_CATALOGUE = "service_not_in_catalogue"
    SERVICE_NOT_COVERED = "service_not_covered"
    SAME_CARNET = "same_carnet"
    DUPLICATE_IN_ENTRY = "duplicate_in_entry"

    @property
    def title(self) -> str:
        """A few French words for a heading or a list: the message says the rest."""
        return TITLES[self]


TITLES: dict[Reason, str] = {
    Reason.OK: "Pass valable",
    Reason.MALFORMED: "Pass non conforme",
    Reason.UNKNOWN_PASS: "Pass inconnu",
    Reason.NOT_ACTIVATED: "Pass non activé",
    Reason.BLOCKED: "Pass bloqué",
    Reason.ALREADY_USED: "Pass déjà utilisé",
    Reason.NOT_YET_VALID: "Pass pas encore valable",
    Reason.EXPIRED: "Pass périmé",
    Reason.TERRITORY: "Hors territoire",
    Reason.PLACE_TYPE: "Type de lieu non accepté",
    Reason.PLACE_NOT_DESIGNATED: "Lieu non désigné",
    Reason.PLACE_NOT_QUALIFIED: "Lieu non habilité",
    Reason.SERVICE_NOT_IN_CATALOGUE: "Service hors catalogue",
    Reason.SERVICE_NOT_COVERED: "Service non couvert",
    Reason.SAME_CARNET: "Même carnet",
    Reason.DUPLICATE_IN_ENTRY: "Déjà dans la saisie",
}


class Flag(StrEnum):
    """Why an accepted scan is flagged for a person to look at: the central's ``flagged`` status.

    A flagged scan is paid; the flag tells the funder and the place why its time or its carnet deserves a look.
    """

    IMPLAUSIBLE_TIME = "implausible_time"  # unsynced clock, in the future or before the millésime
    WITHDRAWN_AFTER_SCAN = "withdrawn_after_scan"  # made offline before its carnet was blocked

    @property
    def note(self) -> str:
        """The French sentence added to the verdict's message."""
        return NOTES[self]


NOTES: dict[Flag, str] = {
    Flag.IMPLAUSIBLE_TIME: "Heure du scan peu fiable : date de réception retenue.",
    Flag.WITHDRAWN_AFTER_SCAN: "Carnet bloqué après ce scan : accepté, signalé au commanditaire.",
}
