"""Tests of terminal.scanner: decoder (unit and property-based), classification, reader, CLI, virtual douchette."""
