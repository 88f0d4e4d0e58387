"""The settings an operator sets on terminals from the central, checked the same way on both sides.

The central merges fleet-wide defaults, an organisation's overrides and a device's own overrides into the
``config`` of the device's desired state; the terminal applies it (most settings at once, a few by restarting
its daemon). Both call :func:`check` on what they hold, so a setting the terminal could not apply is refused
when the operator types it, not discovered on a bus a week later.

>>> check({"log_level": "debug", "heartbeat_interval": 30})
{'log_level': 'DEBUG', 'heartbeat_interval': 30.0}
>>> check({"heartbeat_intervall": 30})
Traceback (most recent call last):
...
aptic.settings.SettingError: unknown setting 'heartbeat_intervall'
>>> merge({"log_level": "INFO"}, {"log_level": "DEBUG", "point_id": 3}, {"point_id": None})
{'log_level': 'DEBUG', 'point_id': None}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class SettingError(ValueError):
    """A setting that is unknown or out of range; the message names it."""


@dataclass(frozen=True)
class Setting:
    """One remote setting: how to read a value, and whether the daemon must restart to apply it."""

    parse: Callable[[Any], Any]
    help: str
    restart: bool = False


def _number(low: float, high: float) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise ValueError(f"a number from {low:g} to {high:g}")
        return float(value)

    return parse


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or (value.upper() not in choices and value.lower() not in choices):
            raise ValueError(f"one of {', '.join(choices)}")
        return value.upper() if value.upper() in choices else value.lower()

    return parse


def _point(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("a point id (a positive integer) or null")
    return value


SETTINGS: dict[str, Setting] = {
    "point_id": Setting(_point, "the point de présence the terminal stands at (null: chosen on the kiosk)"),
    "log_level": Setting(_choice("DEBUG", "INFO", "WARNING", "ERROR"), "the daemon's log level"),
    "heartbeat_interval": Setting(_number(10, 3600), "seconds between heartbeats"),
    "sync_interval": Setting(_number(10, 3600), "seconds between sync rounds while all is well"),
    "check_timeout": Setting(_number(0.2, 5), "seconds the verdict waits for the central's online check"),
    "poll_interval": Setting(_number(30, 86400), "seconds between two reads of the desired state"),
    "scanner_layout": Setting(
        _choice("auto", "us", "fr"),
        "the keyboard layout the douchettes emulate (auto: detected)",
        restart=True,
    ),
}


def check(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with each setting parsed (normalised); :class:`SettingError` for the first bad one."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        setting = SETTINGS.get(name)
        if setting is None:
            raise SettingError(f"unknown setting {name!r}")
        try:
            out[name] = setting.parse(value)
        except ValueError as error:
            raise SettingError(f"setting {name}: {value!r} is not {error}") from None
    return out


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win (fleet, then organisation, then device); a null is a value, not "unset"."""
    out: dict[str, Any] = {}
    for layer in layers:
        out.update(layer)
    return out


def needs_restart(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The changed settings that only a restart of the daemon applies."""
    return sorted(n for n in set(before) | set(after) if SETTINGS[n].restart and before.get(n) != after.get(n))
