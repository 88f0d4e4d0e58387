"""What the heartbeat says about the machine beside the terminal's own state: disk, file system, power, screen.

Each probe answers None where it has nothing to say (no Raspberry Pi power sensor on a PC, a data directory
that is not on ext4 in a test), so the central tells "unknown" from "fine". They read files only: a probe
never blocks the sync worker that sends the heartbeat.
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path
from typing import Any

SYS = Path("/sys")
MOUNTINFO = Path("/proc/self/mountinfo")


def disk(directory: Path) -> dict[str, int]:
    """Free and total bytes of the file system holding ``directory`` (the data partition on a device)."""
    usage = shutil.disk_usage(directory)
    return {"free_disk_bytes": usage.free, "disk_bytes": usage.total}


def block_device(directory: Path, mountinfo: Path = MOUNTINFO) -> tuple[str, str] | None:
    """(file system type, kernel device name) of the mount holding ``directory``, e.g. ("ext4", "mmcblk0p3")."""
    try:
        target = os.path.realpath(directory)
        best: tuple[int, str, str] | None = None
        for line in mountinfo.read_text().splitlines():
            fields = line.split()
            mount_point = fields[4].replace("\\040", " ")
            dash = fields.index("-")
            fstype, source = fields[dash + 1], fields[dash + 2]
            inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
            if inside and (best is None or len(mount_point) > best[0]):
                best = (len(mount_point), fstype, source)
    except (OSError, ValueError, IndexError):
        return None
    if best is None or not best[2].startswith("/dev/"):
        return None
    return best[1], os.path.basename(os.path.realpath(best[2]))


def fs_errors(directory: Path, sys_root: Path = SYS, mountinfo: Path = MOUNTINFO) -> int | None:
    """Errors ext4 has counted on the data partition since it was made (``errors_count``): a card going bad."""
    found = block_device(directory, mountinfo)
    if found is None or found[0] != "ext4":
        return None
    try:
        return int((sys_root / "fs" / "ext4" / found[1] / "errors_count").read_text())
    except (OSError, ValueError):
        return None


def under_voltage(sys_root: Path = SYS) -> bool | None:
    """True when the Pi's firmware has seen its supply drop below 4.63 V since boot (the rpi_volt sensor's
    alarm); None on a machine without that sensor. A weak supply corrupts cards and resets boards."""
    for sensor in sorted((sys_root / "class" / "hwmon").glob("hwmon*")):
        try:
            if (sensor / "name").read_text().strip() == "rpi_volt":
                return (sensor / "in0_lcrit_alarm").read_text().strip() == "1"
        except OSError:
            continue
    return None


def system_uptime(proc_uptime: Path = Path("/proc/uptime")) -> float | None:
    """Seconds since the machine booted (the daemon may have restarted since)."""
    try:
        return round(float(proc_uptime.read_text().split()[0]), 1)
    except (OSError, ValueError, IndexError):
        return None


def versions() -> dict[str, Any]:
    """The base system under the terminal: the kernel and the distribution."""
    try:
        release = platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:
        release = None
    return {"kernel": platform.release(), "os": release}
