"""The machine's part of the heartbeat (terminal/health.py), read from a /sys and a mountinfo made here."""

from __future__ import annotations

from pathlib import Path

from terminal import health

MOUNTINFO = """\
22 1 179:2 / / ro,relatime shared:1 - ext4 /dev/mmcblk0p2 ro
30 22 179:3 / /var/lib/aptic rw,relatime shared:9 - ext4 /dev/mmcblk0p3 rw
31 22 179:3 /terminal /var/lib/aptic-terminal rw,relatime shared:9 - ext4 /dev/mmcblk0p3 rw
32 22 0:27 / /var/log rw - tmpfs tmpfs rw
"""


def test_file_system_errors_are_read_for_the_partition_that_holds_the_data(tmp_path: Path) -> None:
    (tmp_path / "mountinfo").write_text(MOUNTINFO)
    counter = tmp_path / "sys" / "fs" / "ext4" / "mmcblk0p3" / "errors_count"
    counter.parent.mkdir(parents=True)
    counter.write_text("3\n")
    probe = dict(sys_root=tmp_path / "sys", mountinfo=tmp_path / "mountinfo")
    assert health.block_device(Path("/var/lib/aptic-terminal"), tmp_path / "mountinfo") == ("ext4", "mmcblk0p3")
    assert health.fs_errors(Path("/var/lib/aptic-terminal"), **probe) == 3
    assert health.fs_errors(Path("/var/log/journal"), **probe) is None  # tmpfs: nothing to count
    counter.write_text("0\n")
    assert health.fs_errors(Path("/var/lib/aptic-terminal"), **probe) == 0


def test_under_voltage_comes_from_the_pis_sensor_and_is_unknown_elsewhere(tmp_path: Path) -> None:
    assert health.under_voltage(tmp_path) is None  # a PC: no rpi_volt sensor
    other = tmp_path / "class" / "hwmon" / "hwmon0"
    other.mkdir(parents=True)
    (other / "name").write_text("cpu_thermal\n")
    sensor = tmp_path / "class" / "hwmon" / "hwmon1"
    sensor.mkdir()
    (sensor / "name").write_text("rpi_volt\n")
    (sensor / "in0_lcrit_alarm").write_text("0\n")
    assert health.under_voltage(tmp_path) is False
    (sensor / "in0_lcrit_alarm").write_text("1\n")
    assert health.under_voltage(tmp_path) is True


def test_disk_uptime_and_versions_describe_this_machine(tmp_path: Path) -> None:
    usage = health.disk(tmp_path)
    assert 0 < usage["free_disk_bytes"] <= usage["disk_bytes"]
    assert health.system_uptime() > 0
    (tmp_path / "uptime").write_text("garbage")
    assert health.system_uptime(tmp_path / "uptime") is None
    assert health.versions()["kernel"]
