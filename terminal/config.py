"""The terminal's settings: defaults, then a TOML or JSON file, then environment variables.

The file is ``/etc/aptic-terminal/config.toml`` unless ``APTIC_TERMINAL_CONFIG`` names another one (a
``.json`` file is read as JSON). Its keys are the field names of :class:`Config`; an unknown key is an error,
so a typo does not go unnoticed. Environment variables ``APTIC_TERMINAL_<FIELD>`` (upper case) win over
the file, e.g. ``APTIC_TERMINAL_DATA_DIR=/tmp/t aptic-terminal status --json``.

>>> load(env={"APTIC_TERMINAL_DATA_DIR": "/tmp/t", "APTIC_TERMINAL_CHECK_TIMEOUT": "2"}).check_timeout
2.0
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_FILE = Path("/etc/aptic-terminal/config.toml")
ENV_PREFIX = "APTIC_TERMINAL_"


class ConfigError(ValueError):
    """A settings file or variable that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = Path("/var/lib/aptic-terminal")
    central_url: str | None = None  # e.g. https://central.example.org (without /api/v1)
    point_id: int | None = None  # the point de présence this terminal stands at, if it has several
    check_timeout: float = 1.5  # online validity check, seconds
    connect_timeout: float = 3.05  # sync requests
    read_timeout: float = 10.0
    outbox_limit: int = 50_000
    history_months: int = 13
    batch_size: int = 500
    heartbeat_interval: float = 60.0
    backoff_max: float = 300.0
    kiosk_host: str = "127.0.0.1"
    kiosk_port: int = 8080
    sync_marker: Path = Path("/run/systemd/timesync/synchronized")
    boot_id_path: Path = Path("/proc/sys/kernel/random/boot_id")
    log_dir: Path | None = None  # the daemon's own log file (terminal/logs.py); the unit sets /run/aptic-terminal
    screenshot_dir: Path = Path("/run/aptic-screenshot")  # shared with aptic-screenshot.service (screenshot.py)
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys of other areas' [sections], kept as read


def _convert(name: str, kind: Any, value: Any) -> Any:
    """``value`` (from TOML, JSON or a string from the environment) as the type of field ``name``."""
    text = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if value is None or (isinstance(value, str) and value == "" and "None" in text):
            return None
        if "Path" in text:
            return Path(value)
        if text.startswith("int"):
            return int(value)
        if text.startswith("float"):
            return float(value)
        return str(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"setting {name}: cannot use {value!r} ({error})") from error


def read_file(path: Path) -> dict[str, Any]:
    """The settings in a TOML (or ``.json``) file; {} when it does not exist."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        return json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: {error}") from error


def load(path: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Settings from defaults, then the file, then the environment."""
    env = os.environ if env is None else env
    if path is None:
        path = Path(env.get(ENV_PREFIX + "CONFIG", DEFAULT_FILE))
    fields = {f.name: f.type for f in dataclasses.fields(Config) if f.name != "extra"}
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in read_file(path).items():
        if isinstance(value, dict):
            extra[key] = value  # a [section] belongs to another area (scanner, kiosk...)
        elif key in fields:
            values[key] = _convert(key, fields[key], value)
        else:
            raise ConfigError(f"{path}: unknown setting {key!r} (known: {', '.join(sorted(fields))})")
    for key, kind in fields.items():
        if ENV_PREFIX + key.upper() in env:
            values[key] = _convert(key, kind, env[ENV_PREFIX + key.upper()])
    return Config(**values, extra=extra)
