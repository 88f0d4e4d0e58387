"""A tiny QEMU guest with a real Linux kernel and an emulated USB keyboard the host types on, over QMP.

How it works (verified on Debian 12 with qemu-system-x86 7.2): Debian's own kernel, unpacked from its
package, boots with a busybox initramfs that loads the USB, HID, evdev and virtio-9p modules (in the order of
:data:`MODULES`), mounts the host's root filesystem read-only over virtio-9p (``multidevs=remap``, or the
guest confuses /proc and /sys, whose root inodes collide), and runs a command of the host (this repository's
venv Python, so host and guest must both be x86_64) inside the guest, where /dev/input holds the genuine
event node of QEMU's ``usb-kbd`` ("QEMU QEMU USB Keyboard", 0627:0001). The host types on that keyboard with
QMP ``input-send-event`` and unplugs and replugs it with ``device_del`` / ``device_add``; a removed node
gives the reader ENODEV, a second grab EBUSY, as on real hardware.

Facts that shaped it:

- ``-accel tcg``: with nested KVM the guest hung at kernel start;
- ``i8042.nokbd i8042.noaux``: no PS/2 keyboard, so typed keys reach only the USB one;
- each key transition reaches the guest as MSC_SCAN + EV_KEY + SYN_REPORT (one HID report);
- the guest receives at most one HID report per ~8 ms from ``usb-kbd`` (measured: typing faster, through
  one QMP command per transition or batches, gives 8 ms between reports; ``usbhid kbpoll=1`` does not change
  it), and QEMU queues at most 16 key transitions per keyboard and drops the rest (a dropped key-up leaves a
  key held, which the kernel then auto-repeats): :meth:`Guest.press` types one transition every 8 ms;
- the host root is read-only in the guest: a tmpfs on /var/tmp holds what programs write (``HOME`` and
  ``TMPDIR`` point there);
- Python starts slowly under TCG: wait for readiness signals, never fixed sleeps;
- the kernel package version moves: the one ``linux-image-amd64`` depends on is used;
- plain TCG runs the guest at whatever pace the host gives its vCPU thread (measured: ~150 M instructions
  per second, less on a busy host), on the host's clock: a test of how fast the guest keeps up then measures
  the host. ``Guest(icount="shift=N")`` (``-icount``) makes guest time advance 2**N ns per instruction
  executed instead, a CPU of fixed speed whatever the host's load (in wall time the guest just runs slower);
  the guest still sleeps in real time when idle, so input typed from the host (QMP) is not on the guest's
  time scale: use it with input made inside the guest (uinput).

Everything is built on first use into ``.cache/qemu/<kernel version>-<init hash>/`` of the repository
(``apt-get download`` of the kernel named by ``linux-image-amd64`` and of ``busybox-static``, ``dpkg-deb
-x``, ``depmod``, the initramfs with ``cpio``), atomically, and reused afterwards. :func:`require_qemu` fails
with a message that says what is missing when this machine cannot run it.

The guest prints lines starting with ``GUEST:`` on its serial console, which QEMU writes to a file that the
host polls (:meth:`Guest.wait_for`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from terminal.scanner import keymaps as k

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "qemu"
MODULES = [  # in load order
    "usb-common", "usbcore", "xhci-hcd", "xhci-pci", "hid", "usbhid", "hid-generic", "evdev", "uinput",
    "virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
    "netfs", "fscache", "9pnet", "9pnet_virtio", "9p",
]  # fmt: skip
MODULE_PARAMS: dict[str, str] = {}  # insmod parameters by module, e.g. {"usbhid": "kbpoll=1"}

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
{insmods}
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host || echo "GUEST: 9p failed"
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mount -t tmpfs tmpfs /host/var/tmp
echo "GUEST: READY-BOOT"
chroot /host /bin/sh -c 'cd "$APTIC_CWD" && exec env HOME=/var/tmp TMPDIR=/var/tmp PYTHONDONTWRITEBYTECODE=1 \
    "$APTIC_PYTHON" -u "$APTIC_SCRIPT"' </dev/console >/dev/console 2>&1
echo "GUEST: EXIT $?"
poweroff -f
"""

# Linux key code -> QEMU qcode, for what the simulated scanner types.
QCODES: dict[int, str] = {
    **{code: str(d) for d, code in enumerate(k.DIGIT_KEYS)},
    **{code: f"kp_{d}" for d, code in enumerate(k.KEYPAD_DIGIT_KEYS)},
    **{getattr(k, f"KEY_{c.upper()}"): c for c in "abcdefghijklmnopqrstuvwxyz"},
    k.KEY_LEFTSHIFT: "shift", k.KEY_RIGHTSHIFT: "shift_r", k.KEY_LEFTALT: "alt", k.KEY_RIGHTALT: "alt_r",
    k.KEY_ENTER: "ret", k.KEY_KPENTER: "kp_enter", k.KEY_TAB: "tab", k.KEY_CAPSLOCK: "caps_lock",
    k.KEY_NUMLOCK: "num_lock", k.KEY_SPACE: "spc", k.KEY_MINUS: "minus", k.KEY_EQUAL: "equal",
}  # fmt: skip


def qmp_request(channel: Any, command: str, arguments: dict[str, object], tail: Callable[[], str]) -> Any:
    """Send one QMP command on ``channel`` (a text file over QEMU's socket) and return its answer; events
    that arrive before it are skipped. ``tail`` says what the guest printed last, for the failure message."""
    msg: dict[str, object] = {"execute": command}
    if arguments:
        msg["arguments"] = arguments
    channel.write(json.dumps(msg) + "\n")
    channel.flush()
    while True:
        line = channel.readline()
        if not line:
            raise AssertionError(f"QMP closed during {command}\n{tail()}")
        reply = json.loads(line)
        if "return" in reply:
            return reply["return"]
        if "error" in reply:
            raise AssertionError(f"QMP {command} failed: {reply['error']}")


def key_event(code: int, value: int) -> dict[str, object]:
    """The QMP ``input-send-event`` event for a Linux key code going down (1) or up (0)."""
    return {"type": "key", "data": {"down": bool(value), "key": {"type": "qcode", "data": QCODES[code]}}}


class QemuUnavailable(RuntimeError):
    """This machine cannot run the system test; the message says why and what to install."""


def _run(*cmd: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise QemuUnavailable(f"`{' '.join(cmd)}` failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def _which(tool: str) -> str | None:
    """``shutil.which``, also looking in the sbin folders a non-root PATH may lack (depmod)."""
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def require_qemu() -> None:
    """Fail with a clear message when the tools the guest needs are missing."""
    missing = [tool for tool in ("qemu-system-x86_64", "apt-get", "dpkg-deb", "cpio", "depmod") if not _which(tool)]
    if missing:
        raise QemuUnavailable(
            f"cannot run the QEMU system test: missing {', '.join(missing)}; "
            "install qemu-system-x86 kmod cpio (scripts/bootstrap test does it on Debian)"
        )
    if os.uname().machine != "x86_64":
        raise QemuUnavailable(
            f"the QEMU system test runs the host's venv in an x86_64 guest; this is {os.uname().machine}"
        )


def kernel_version() -> str:
    """The kernel Debian's ``linux-image-amd64`` depends on now (e.g. ``6.1.0-56-amd64``)."""
    try:
        out = _run("apt-cache", "depends", "linux-image-amd64")
    except QemuUnavailable:
        if os.geteuid() != 0:
            raise
        _run("apt-get", "update", "-qq")  # apt's lists were cleaned (some container images do)
        out = _run("apt-cache", "depends", "linux-image-amd64")
    m = re.search(r"Depends:\s*linux-image-(\d[^\s]*)", out)
    if not m:
        raise QemuUnavailable(f"apt-cache names no kernel for linux-image-amd64 (run apt-get update?): {out[:200]}")
    return m[1]


def _download(packages: list[str], into: Path) -> None:
    try:
        _run("apt-get", "download", *packages, cwd=into)
    except QemuUnavailable:
        if os.geteuid() != 0:
            raise
        _run("apt-get", "update", "-qq")
        _run("apt-get", "download", *packages, cwd=into)


def init_script() -> str:
    """The initramfs's /init: modules (with :data:`MODULE_PARAMS`), mounts, then the command of the host."""
    insmods = [f'insmod /mods/{m}.ko {MODULE_PARAMS.get(m, "")} >/dev/null 2>&1 || echo "GUEST: insmod {m} failed"'
               for m in MODULES]  # fmt: skip
    return INIT.replace("{insmods}", "\n".join(insmods))


def build_guest(cache: Path = CACHE) -> tuple[Path, Path]:
    """The guest's kernel and initramfs, built once into ``cache`` (safe to call twice, or concurrently)."""
    require_qemu()
    kver = kernel_version()
    target = cache / f"{kver}-{hashlib.sha256(init_script().encode()).hexdigest()[:8]}"
    kernel, initrd = target / "vmlinuz", target / "initrd.gz"
    if (target / "ready").exists():
        return kernel, initrd
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix="build-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)  # apt's _apt sandbox user must be able to write here
        _download([f"linux-image-{kver}", "busybox-static"], work)
        tree, bb = work / "kernel", work / "busybox"
        for deb in work.glob("*.deb"):
            _run("dpkg-deb", "-x", str(deb), str(bb if deb.name.startswith("busybox") else tree))
        _run(_which("depmod") or "depmod", "-b", str(tree), kver)
        root = work / "initramfs"
        for d in ("bin", "mods", "proc", "sys", "dev", "host"):
            (root / d).mkdir(parents=True)
        shutil.copy(bb / "bin" / "busybox", root / "bin" / "busybox")
        found = {p.name.removesuffix(".ko"): p for p in (tree / "lib" / "modules" / kver).rglob("*.ko")}
        missing = [m for m in MODULES if m not in found and m.replace("-", "_") not in found]
        if missing:
            raise QemuUnavailable(f"kernel {kver} lacks modules {missing} (compressed modules are not handled)")
        for m in MODULES:
            shutil.copy(found.get(m) or found[m.replace("-", "_")], root / "mods" / f"{m}.ko")
        init = root / "init"
        init.write_text(init_script())
        init.chmod(0o755)
        files = subprocess.run(["find", "."], cwd=root, capture_output=True, check=True).stdout
        archive = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=files,
                                 capture_output=True, check=True).stdout  # fmt: skip
        out = work / "out"
        out.mkdir()
        import gzip

        (out / "initrd.gz").write_bytes(gzip.compress(archive, 6))
        shutil.copy(tree / "boot" / f"vmlinuz-{kver}", out / "vmlinuz")
        (out / "ready").write_text(kver + "\n")
        with contextlib.suppress(OSError):  # lost a race with a concurrent build: theirs is as good
            out.rename(target)
    if not (target / "ready").exists():
        raise QemuUnavailable(f"guest build in {target} did not complete")
    return kernel, initrd


class Guest:
    """A running guest: its serial log, its QMP socket, and a USB keyboard to type on."""

    def __init__(
        self,
        script: Path,
        workdir: Path,
        python: str | None = None,
        env: dict[str, str] | None = None,
        icount: str | None = None,
    ) -> None:
        self.kernel, self.initrd = build_guest()
        self.workdir = workdir
        self.log_path = workdir / "serial.log"
        self.qmp_path = workdir / "qmp.sock"
        self.keyboard = "scanner"
        python = python or str(REPO / ".venv" / "bin" / "python")
        append = (f"console=ttyS0 i8042.nokbd=1 i8042.noaux=1 panic=-1 quiet loglevel=3 "
                  f"APTIC_PYTHON={python} APTIC_SCRIPT={script} APTIC_CWD={REPO}")  # fmt: skip
        for key, value in (env or {}).items():  # the kernel hands unknown KEY=value words to init's environment
            append += f" {key}={value}"
        words = [python, str(script), str(REPO), *(env or {}), *(env or {}).values()]
        if any(c.isspace() for word in words for c in word):
            raise QemuUnavailable("paths with spaces cannot go on the guest kernel command line")
        self.cmd = [
            "qemu-system-x86_64", "-accel", "tcg", "-m", "768", "-smp", "1", "-nographic", "-no-reboot",
            "-monitor", "none", "-kernel", str(self.kernel), "-initrd", str(self.initrd), "-append", append,
            "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
            "-device", "qemu-xhci,id=xhci", "-device", f"usb-kbd,id={self.keyboard},bus=xhci.0",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off", "-serial", f"file:{self.log_path}",
        ]  # fmt: skip
        if icount is not None:  # guest time from instructions executed: see the module docstring
            self.cmd += ["-icount", icount]
        self.proc: subprocess.Popen | None = None
        self._qmp: socket.socket | None = None
        self._qmp_file = None
        self.started = 0.0

    # -- life ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + 30
        while not self.qmp_path.exists():
            self._check_alive()
            if time.monotonic() > deadline:
                raise QemuUnavailable("QEMU did not open its QMP socket within 30 s")
            time.sleep(0.05)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(self.qmp_path))
        self._qmp, self._qmp_file = s, s.makefile("rw", encoding="utf-8")
        self._qmp_file.readline()  # greeting
        self.qmp("qmp_capabilities")

    def stop(self, timeout: float = 30) -> int | None:
        """Wait for the guest to power off (then kill it); returns QEMU's exit status."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            if self._qmp is not None:
                self._qmp.close()

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            out = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
            raise QemuUnavailable(f"QEMU exited with status {self.proc.returncode}: {out[-1500:]}\n{self.tail()}")

    # -- console -------------------------------------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, n: int = 40) -> str:
        return "serial console, last lines:\n" + "\n".join(self.log().splitlines()[-n:])

    def guest_lines(self) -> list[str]:
        """The guest's ``GUEST:`` lines, whole ones only: the console log is read while the guest may still be
        writing its last line (a long RESULT was once cut mid-string on a busy machine)."""
        return [line.split("GUEST: ", 1)[1].strip() for line in self.log().splitlines(keepends=True)
                if "GUEST: " in line and line.endswith("\n")]  # fmt: skip

    def wait_for(self, marker: str, timeout: float = 90) -> str:
        """Wait until the guest prints ``GUEST: <marker>...``; return that line (after the marker)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.guest_lines():
                if line.startswith(marker):
                    return line[len(marker) :].strip()
            if "GUEST: EXIT" in self.log() and marker != "EXIT":
                raise AssertionError(f"guest ended before {marker!r}\n{self.tail()}")
            self._check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"guest did not print {marker!r} within {timeout} s\n{self.tail()}")
            time.sleep(0.1)

    # -- QMP -----------------------------------------------------------------------------------------------

    def qmp(self, command: str, **arguments: object) -> object:
        assert self._qmp_file is not None
        return qmp_request(self._qmp_file, command, arguments, self.tail)

    def press(self, transitions: list[tuple[int, int]], interval: float = 0.008) -> None:
        """Type key transitions ``(linux key code, 1 down / 0 up)`` on the USB keyboard, one every ``interval``."""
        for code, value in transitions:
            self.qmp("input-send-event", events=[key_event(code, value)])  # QEMU routes it to the (only) keyboard
            time.sleep(interval)

    def unplug(self) -> None:
        self.qmp("device_del", id=self.keyboard)

    def replug(self) -> None:
        self.keyboard += "-again"
        self.qmp("device_add", driver="usb-kbd", id=self.keyboard, bus="xhci.0")
