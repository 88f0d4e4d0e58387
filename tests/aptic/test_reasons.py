"""Reason and flag codes: every one has its French words for the screen."""

from __future__ import annotations

from aptic.reasons import Flag, Reason


def test_every_reason_has_a_title_and_every_flag_a_note() -> None:
    assert all(r.title and r.title[0].isupper() for r in Reason)
    notes = [f.note for f in Flag]
    assert all(n[0].isupper() and n.endswith(".") for n in notes)
    assert len(set(notes)) == len(notes)
    # The codes are a contract with terminals and funders' tools: renaming one breaks them.
    assert {f.value for f in Flag} == {"implausible_time", "withdrawn_after_scan"}
