"""``make image-test``: the Raspberry Pi image (arm64) boots on ``qemu-system-aarch64 -M virt`` and its units
come up. Not part of ``make test``: it needs ``make image`` first (about 25 minutes) and its own boot takes
minutes under emulation; ``make image-test`` sets ``APTIC_PI_IMAGE`` to the built ``.img.xz``.

QEMU's Raspberry Pi machines cannot run Debian's kernel well (raspi4b is fixed at 2 GB and loses input), so
the Pi's root boots on the generic ``virt`` board with the kernel and initrd of the image's own boot
partition: what is checked is everything above the firmware: the initramfs finds the read-only root, the data
partition grows, the units start, the daemon answers, cage and Chromium run (on a virtio GPU).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import requests

from .machine import Machine, prepare_disk

IMAGE = os.environ.get("APTIC_PI_IMAGE")

pytestmark = [
    pytest.mark.pi_image,
    pytest.mark.timeout(2400),
    pytest.mark.skipif(not IMAGE, reason="make image-test boots the Pi image that make image built"),
]

UNITS = ["aptic-terminal", "aptic-kiosk-screen", "aptic-grow-data", "NetworkManager", "systemd-timesyncd",
         "systemd-logind"]  # fmt: skip


def test_the_pi_image_boots_on_qemu_virt_and_its_units_come_up(tmp_path: Path) -> None:
    assert IMAGE is not None
    raw = tmp_path / "pi.img"
    with raw.open("wb") as out:
        subprocess.run(["xz", "-dc", IMAGE], stdout=out, check=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(tmp_path / "ca.key"), "-out", str(tmp_path / "ca.pem"), "-days", "1",
                    "-subj", "/CN=image-test"], check=True, capture_output=True)  # fmt: skip
    disk = prepare_disk(raw, tmp_path, activation=None, ca_pem=tmp_path / "ca.pem", arch="arm64")
    machine = Machine(disk, tmp_path / "boot", central_port=9, arch="arm64").start()
    try:
        machine.shell_ready(timeout=900)
        shell_s = machine.uptime()
        machine.wait_for(lambda: requests.get(machine.kiosk_url + "/healthz", timeout=10).ok, "/healthz", 900)
        healthy_s = machine.uptime()
        for unit in UNITS:
            machine.wait_for(lambda unit=unit: machine.sh(f"systemctl is-active {unit}")[0] == 0, unit, 300)
        failed = machine.sh("systemctl --failed --no-legend --plain")[1]
        assert failed.strip() == "", failed
        assert machine.sh("findmnt -no OPTIONS /")[1].split(",")[0] == "ro"
        assert machine.sh("touch /etc/x")[0] != 0
        size = int(machine.sh("lsblk -bno SIZE /dev/disk/by-label/aptic-data")[1])
        assert size > 1024**3  # grown to the (1 GiB larger) disk
        machine.wait_for(lambda: machine.sh("pgrep -x chromium")[0] == 0, "Chromium under cage", 600)
        print(f"\narm64 on -M virt (TCG): shell at {shell_s:.0f} s, /healthz at {healthy_s:.0f} s, "
              f"units checked at {machine.uptime():.0f} s from power on")  # fmt: skip
        print(machine.sh("systemd-analyze")[1])
    finally:
        machine.kill()
