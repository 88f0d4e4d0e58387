"""Checks of the outbox journal's bytes for the kill tests (no pytest needed here)."""

from __future__ import annotations

from pathlib import Path

from terminal.outbox import read_journal


def assert_journal_whole(data_dir: Path) -> None:
    """Every line of ``outbox.journal`` reads back, except perhaps a last line cut short by the kill; and no
    store file was ever set aside as unreadable."""
    journal = data_dir / "outbox.journal"
    contents = read_journal(journal.read_bytes())
    assert not contents.damaged, f"unreadable lines {contents.damaged} in {journal}"
    corrupt = [p.name for p in data_dir.iterdir() if ".corrupt-" in p.name]
    assert not corrupt, f"a store file was unreadable: {corrupt}"
