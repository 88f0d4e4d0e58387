"""The terminal's own disk image, booted whole in QEMU: its screen, its douchette, its network, a root shell.

What it gives a test:

- :func:`built_image` builds the amd64 image with ``images/build --raw`` (the same recipe as the Pi's) once
  per content of its inputs (the recipe, the units, the project's code), into
  ``$APTIC_IMAGE_CACHE/amd64-<hash>/`` (default ``~/.cache/aptic-terminal/images``), so later runs reuse it;
- :func:`prepare_disk` makes a test's own copy of the image (never the cached one), one GiB larger so first
  boot has a data partition to grow, with the activation file on its boot partition and what the test needs
  to look inside: a root shell on the second serial port, and the test central's CA (see below);
- :class:`Machine` boots that copy: a virtio GPU for cage (``screendump`` through QMP), an emulated USB
  keyboard as the douchette (QMP types on it), QEMU's i6300esb hardware watchdog, and user-mode networking
  with ``restrict=on``: the guest's only way out is ``10.0.2.100:443``, forwarded to a server on the
  host's loopback; the kiosk's port is forwarded to the host's loopback for screenshots and API calls.

What the test copy adds to the image, and why (the shipped image has none of it):

- ``/etc/systemd/system/aptic-test-shell.service``, a root shell on ttyS1 (amd64) or a virtio console
  (arm64) started by ``systemd.wants=`` on the kernel command line: the only way a test reads the guest's
  state (the product has no login);
- ``/etc/aptic-test/ca.pem`` and ``DefaultEnvironment=REQUESTS_CA_BUNDLE=`` for every unit: the central is
  reached over TLS with certificate verification on, as in the field, against the test's own CA;
- ``/etc/aptic-terminal/config.toml`` naming QEMU's USB keyboard (0627:0001) as the douchette: the reader
  never takes a plain keyboard for one unless told (terminal/scanner/devices.py);
- ``aptic-test-kiosk.socket``/``.service``: systemd-socket-proxyd from the guest's port 8081 (forwarded to
  the host's loopback) to the kiosk on the guest's 127.0.0.1:8080, for screenshots and the médiateur's API;
- on the kernel command line: ``WLR_RENDERER=pixman`` (cage's GL renderer crashes on virtio-gpu under
  TCG) and the console on ttyS0 first, so the journal goes to ``console.log``.

Facts that shaped it (measured on a 2-core machine, TCG since KVM is not usable here): the kiosk is on screen
about 60-120 s after power on, and later under load; waits are on conditions, with generous bounds.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from .qemu import QemuUnavailable, key_event, qmp_request

REPO = Path(__file__).resolve().parents[2]
IMAGE_INPUTS = [
    "images", "systemd", "terminal", "aptic", "kiosk_ui", "provisioning", "updates", "pyproject.toml",
]  # fmt: skip  (not central/: images/wheels leaves it out of the terminal's wheel)
CENTRAL_IP = "10.0.2.100"
TEST_WORDS = (
    "systemd.setenv=WLR_RENDERER=pixman systemd.wants=aptic-test-shell.service systemd.wants=aptic-test-kiosk.socket"
)
KIOSK_PROXY_PORT = 8081
# The kiosk listens on the guest's 127.0.0.1 only, where QEMU's forwards cannot reach: systemd's own proxy
# carries the forwarded port to it.
KIOSK_SOCKET = f"""[Socket]
ListenStream={KIOSK_PROXY_PORT}
"""
KIOSK_PROXY = """[Unit]
Requires=aptic-test-kiosk.socket
After=aptic-test-kiosk.socket

[Service]
ExecStart=/lib/systemd/systemd-socket-proxyd 127.0.0.1:8080
"""

SHELL_TTY = {"amd64": "ttyS1", "arm64": "hvc0"}  # -M virt has one UART: the shell is on a virtio console there
SHELL_UNIT = """[Unit]
Description=Test shell on {tty} (added to a test's copy of the image only)
DefaultDependencies=no
After=systemd-remount-fs.service dev-{tty}.device
BindsTo=dev-{tty}.device
IgnoreOnIsolate=yes
StartLimitIntervalSec=0

[Service]
Environment=SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 TERM=dumb
ExecStart=/bin/sh -c 'stty -F /dev/{tty} raw -echo; exec /bin/sh </dev/{tty} >/dev/{tty} 2>&1'
Restart=always
RestartSec=0
"""


def image_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def inputs_hash() -> str:
    """A hash of what the image is made of: a change anywhere in it builds a new image."""
    digest = hashlib.sha256()
    for name in IMAGE_INPUTS:
        top = REPO / name
        for path in sorted([top] if top.is_file() else top.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aptic-terminal" / "images"
    return Path(os.environ.get("APTIC_IMAGE_CACHE", default))


def built_image(arch: str = "amd64") -> Path:
    """The raw disk image for the current sources, built now if no earlier run left it in the cache."""
    for tool in ("mmdebstrap", "mkfs.vfat", "mcopy", "sfdisk", "syslinux", "debugfs", "qemu-system-x86_64", "socat"):
        if shutil.which(tool) is None:
            raise QemuUnavailable(f"{tool} is not installed (scripts/bootstrap test installs it)")
    if os.geteuid() != 0:
        raise QemuUnavailable("building the image needs root (mmdebstrap in root mode)")
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / f"{arch}-{inputs_hash()}"
    image = out / f"aptic-terminal-{image_version()}-{arch}.img"
    with (cache / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time, whoever asks
        if not image.exists():
            out.mkdir(exist_ok=True)
            log = out / "build.log"
            with log.open("w") as f:
                done = subprocess.run([str(REPO / "images" / "build"), "--arch", arch, "--raw", "--out", str(out)],
                                      stdout=f, stderr=subprocess.STDOUT, cwd=REPO, timeout=1800)  # fmt: skip
            if done.returncode != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                raise QemuUnavailable(f"images/build failed ({log}):\n{tail}")
            for old in cache.glob(f"{arch}-*"):  # keep the disk bounded: only the newest image of each arch
                if old != out and old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
    return image


# -- the disk: partitions, files in them without mounting ------------------------------------------------------


def partitions(disk: Path) -> list[dict[str, int]]:
    """Each partition's ``start`` and ``size`` in bytes, in table order."""
    table = json.loads(subprocess.run(["sfdisk", "--json", str(disk)], capture_output=True, text=True,
                                      check=True).stdout)["partitiontable"]  # fmt: skip
    return [{"start": p["start"] * 512, "size": p["size"] * 512} for p in table["partitions"]]


def boot_read(disk: Path, name: str) -> str | None:
    """A file of the FAT boot partition, or None when it is not there."""
    offset = partitions(disk)[0]["start"]
    out = subprocess.run(["mtype", "-i", f"{disk}@@{offset}", f"::{name}"], capture_output=True)
    return out.stdout.decode() if out.returncode == 0 else None


def boot_write(disk: Path, name: str, text: str, scratch: Path) -> None:
    offset = partitions(disk)[0]["start"]
    source = scratch / name.replace("/", "_")
    source.write_text(text)
    subprocess.run(["mcopy", "-o", "-i", f"{disk}@@{offset}", str(source), f"::{name}"], check=True)


def ext4_command(disk: Path, partition: int, commands: list[str], scratch: Path, write: bool = False) -> str:
    """Run debugfs commands on an ext4 partition of the disk image (debugfs reads ``file?offset=N``)."""
    offset = partitions(disk)[partition]["start"]
    script = scratch / f"debugfs-{uuid.uuid4().hex}.txt"
    script.write_text("\n".join(commands) + "\n")
    out = subprocess.run(["debugfs", *(["-w"] if write else []), "-f", str(script), f"{disk}?offset={offset}"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout


def _debugfs_request(disk: Path, partition: int, request: str) -> subprocess.CompletedProcess[str]:
    offset = partitions(disk)[partition]["start"]
    return subprocess.run(["debugfs", "-R", request, f"{disk}?offset={offset}"], capture_output=True, text=True)


def ext4_read(disk: Path, partition: int, path: str) -> str | None:
    """A file of an ext4 partition (0-based index), or None when it is not there."""
    out = _debugfs_request(disk, partition, f"cat {path}")
    return None if "File not found" in out.stderr else out.stdout


def ext4_list(disk: Path, partition: int, path: str) -> list[str]:
    """The names in a directory of an ext4 partition, without . and ..; [] when it is not there."""
    out = _debugfs_request(disk, partition, f"ls -p {path}")
    names = [line.split("/")[5] for line in out.stdout.splitlines() if line.count("/") >= 6]
    return [n for n in names if n not in (".", "..")]


def prepare_disk(image: Path, directory: Path, *, activation: str | None, ca_pem: Path, arch: str = "amd64",
                 screen_env: str = "", updates_env: str = "") -> Path:  # fmt: skip
    """The test's copy of ``image``, ready to boot (see the module docstring for what it adds); ``screen_env``
    and ``updates_env`` are added to the screen's and the update guard's settings (/etc/aptic-terminal/)."""
    disk = directory / "disk.img"
    subprocess.run(["cp", "--sparse=always", "--reflink=auto", str(image), str(disk)], check=True)
    with disk.open("r+b") as f:  # a larger card than the image: first boot grows the data partition
        f.truncate(disk.stat().st_size + 1024**3)
    if activation is not None:
        boot_write(disk, "aptic-activation.toml", activation, directory)
    if arch == "amd64":  # the PC boots from its disk: the test's words go into syslinux's command line
        cfg = boot_read(disk, "syslinux.cfg")
        assert cfg is not None, "the amd64 image has no syslinux.cfg"
        cfg = cfg.replace("console=ttyS0,115200 console=tty1", f"console=tty1 console=ttyS0,115200 {TEST_WORDS}")
        boot_write(disk, "syslinux.cfg", cfg, directory)
    (directory / "shell.service").write_text(SHELL_UNIT.format(tty=SHELL_TTY[arch]))
    (directory / "kiosk.socket").write_text(KIOSK_SOCKET)
    (directory / "kiosk.service").write_text(KIOSK_PROXY)
    (directory / "config.toml").write_text('[scanner]\ndevices = ["0627:0001"]  # QEMU\'s USB keyboard\n')
    screen = ext4_read(disk, 1, "/etc/aptic-terminal/screen.env") or ""
    (directory / "screen.env").write_text(screen + screen_env)
    updates = ext4_read(disk, 1, "/etc/aptic-terminal/updates.env") or ""
    (directory / "updates.env").write_text(updates + updates_env)
    (directory / "ca.conf").write_text("[Manager]\nDefaultEnvironment=REQUESTS_CA_BUNDLE=/etc/aptic-test/ca.pem\n")
    ext4_command(disk, 1, [
        "mkdir /etc/aptic-test", f"write {ca_pem} /etc/aptic-test/ca.pem",
        "mkdir /etc/systemd/system.conf.d", f"write {directory / 'ca.conf'} /etc/systemd/system.conf.d/aptic-test.conf",
        f"write {directory / 'shell.service'} /etc/systemd/system/aptic-test-shell.service",
        f"write {directory / 'kiosk.socket'} /etc/systemd/system/aptic-test-kiosk.socket",
        f"write {directory / 'kiosk.service'} /etc/systemd/system/aptic-test-kiosk.service",
        "rm /etc/aptic-terminal/config.toml", f"write {directory / 'config.toml'} /etc/aptic-terminal/config.toml",
        "rm /etc/aptic-terminal/screen.env", f"write {directory / 'screen.env'} /etc/aptic-terminal/screen.env",
        "rm /etc/aptic-terminal/updates.env", f"write {directory / 'updates.env'} /etc/aptic-terminal/updates.env",
    ], directory, write=True)  # fmt: skip
    return disk


# -- the machine -----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Machine:
    """One boot of a disk image in QEMU. ``central_port``: the host loopback port behind 10.0.2.100:443."""

    def __init__(
        self, disk: Path, workdir: Path, central_port: int, memory_mib: int = 2048, arch: str = "amd64"
    ) -> None:
        self.disk = disk
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.console_path = workdir / "console.log"
        self.qmp_path = workdir / "qmp.sock"
        self.shell_path = workdir / "shell.sock"
        self.kiosk_port = free_port()
        self.kiosk_url = f"http://127.0.0.1:{self.kiosk_port}"
        net = (f"user,model=virtio-net-pci,restrict=on,"
               f"guestfwd=tcp:{CENTRAL_IP}:443-cmd:socat - TCP:127.0.0.1:{central_port},"
               f"hostfwd=tcp:127.0.0.1:{self.kiosk_port}-:{KIOSK_PROXY_PORT}")  # fmt: skip
        common = [
            "-accel", "tcg", "-smp", "2", "-m", str(memory_mib), "-device", "virtio-gpu-pci", "-display", "none",
            "-device", "qemu-xhci,id=xhci", "-device", "usb-kbd,id=douchette,bus=xhci.0", "-nic", net,
            "-serial", f"file:{self.console_path}", "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-monitor", "none",
        ]  # fmt: skip
        shell = f"unix:{self.shell_path},server=on,wait=off"
        if arch == "amd64":  # a PC booting from its disk (SeaBIOS, syslinux), with a hardware watchdog
            self.cmd = [
                "qemu-system-x86_64", "-M", "pc", *common, "-vga", "none",
                "-drive", f"file={disk},format=raw,if=virtio,cache=unsafe",
                "-device", "i6300esb", "-action", "watchdog=reset", "-serial", shell,
            ]  # fmt: skip
        else:  # the Pi's root on -M virt: Debian's arm64 kernel and initrd, from the image's boot partition
            kernel, initrd = self._boot_files(disk, workdir)
            append = f"root=LABEL=aptic-root ro rootwait console=ttyAMA0 {TEST_WORDS}"
            self.cmd = [
                "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", *common,
                "-kernel", str(kernel), "-initrd", str(initrd), "-append", append,
                "-drive", f"file={disk},format=raw,if=none,id=disk,cache=unsafe",
                "-device", "virtio-blk-pci,drive=disk", "-device", "virtio-serial-pci",
                "-chardev", f"socket,id=shell,path={self.shell_path},server=on,wait=off",
                "-device", "virtconsole,chardev=shell",
            ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self._qmp: Any = None
        self._shell: socket.socket | None = None
        self._shell_buffer = b""

    @staticmethod
    def _boot_files(disk: Path, workdir: Path) -> tuple[Path, Path]:
        offset = partitions(disk)[0]["start"]
        names = subprocess.run(["mdir", "-b", "-i", f"{disk}@@{offset}", "::"], capture_output=True, text=True,
                               check=True).stdout.split()  # fmt: skip
        found = []
        for prefix in ("vmlinuz-", "initrd.img-"):
            name = sorted(n.lstrip(":/") for n in names if n.lstrip(":/").startswith(prefix))[-1]
            subprocess.run(["mcopy", "-o", "-i", f"{disk}@@{offset}", f"::{name}", str(workdir / name)], check=True)
            found.append(workdir / name)
        return found[0], found[1]

    # -- life --------------------------------------------------------------------------------------------------

    def start(self) -> Machine:
        for path in (self.qmp_path, self.shell_path):
            path.unlink(missing_ok=True)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)  # fmt: skip
        q = self._wait(lambda: self._connect(self.qmp_path), "QEMU's QMP socket", 30, interval=0.05)
        self._qmp = q.makefile("rw", encoding="utf-8")
        self._qmp.readline()  # greeting
        self.qmp("qmp_capabilities")
        self._shell = self._wait(lambda: self._connect(self.shell_path), "QEMU's serial socket", 30, interval=0.05)
        return self

    @staticmethod
    def _connect(path: Path) -> socket.socket | None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(str(path))  # QEMU binds, then listens: refused in between
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            return None
        return s

    def uptime(self) -> float:
        """Seconds since QEMU started (the guest's power on)."""
        return time.monotonic() - self.started

    def kill(self) -> None:
        """Pull the plug: QEMU dies at once; nothing the guest had not written to its disk survives."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for handle in (self._qmp, self._shell):
            with contextlib.suppress(OSError):
                if handle is not None:
                    handle.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _wait(self, probe: Callable[[], Any], what: str, timeout: float, interval: float = 0.2) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if not self.alive():
                out = self.proc.stdout.read().decode(errors="replace") if self.proc and self.proc.stdout else ""
                raise AssertionError(f"QEMU exited while waiting for {what}: {out[-1000:]}\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout:.0f} s\n{self.tail()}\n{self.diagnostics()}")
            time.sleep(interval)

    def diagnostics(self) -> str:
        """What the guest's units say, for a failure message (nothing if the shell does not answer)."""
        if self._shell is None or not self.alive():
            return ""
        try:
            return self.sh("systemctl --failed --no-legend; journalctl -b --no-pager -n 60 -o short-monotonic "
                           "-u aptic-firstboot -u aptic-terminal -u aptic-kiosk-screen", timeout=20)[1]  # fmt: skip
        except (AssertionError, OSError):
            return "(the guest's shell did not answer)"

    def wait_for(self, probe: Callable[[], Any], what: str, timeout: float = 300, interval: float = 0.5) -> Any:
        """Wait until ``probe()`` is true (exceptions count as not yet); return its value."""

        def attempt() -> Any:
            try:
                return probe()
            except (OSError, AssertionError, ValueError):
                return None

        return self._wait(attempt, what, timeout, interval)

    # -- console and shell -------------------------------------------------------------------------------------

    def console(self) -> str:
        try:
            return self.console_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, n: int = 40) -> str:
        return "guest console, last lines:\n" + "\n".join(self.console().splitlines()[-n:])

    def sh(self, command: str, timeout: float = 60) -> tuple[int, str]:
        """Run ``command`` in the guest's root shell; its exit status and output."""
        assert self._shell is not None
        marker = uuid.uuid4().hex
        # Not on the tty: programs that see a terminal start pagers, colours and password agents. The output
        # is framed by markers: the shell is interactive (it prints prompts) since its input is a tty.
        self._shell.sendall(f"( {command} ) </dev/null >/run/test-shell.out 2>&1; s=$?; echo {marker}; "
                            f"cat /run/test-shell.out; echo; echo {marker} $s\n".encode())  # fmt: skip
        frame = re.compile(rf"{marker}\n(.*)\n{marker} (\d+)\n".encode(), re.S)
        deadline = time.monotonic() + timeout
        self._shell.settimeout(0.5)
        while (found := frame.search(self._shell_buffer)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"the guest shell did not finish {command!r} in {timeout} s\n{self.tail()}")
            with contextlib.suppress(TimeoutError):
                chunk = self._shell.recv(65536)
                if not chunk:
                    raise AssertionError("the guest shell's socket closed")
                self._shell_buffer += chunk.replace(b"\r", b"")
        self._shell_buffer = self._shell_buffer[found.end() :]
        return int(found.group(2)), found.group(1).decode(errors="replace").removesuffix("\n")

    def shell_ready(self, timeout: float = 300) -> None:
        """Wait until the guest's root shell answers (the guest has booted that far)."""
        assert self._shell is not None
        self._shell.setblocking(True)

        def answers() -> bool:
            try:
                status, out = self.sh("echo shell-up", timeout=5)
                return status == 0 and "shell-up" in out
            except AssertionError:
                self._shell_buffer = b""
                return False

        self._wait(answers, "the guest's root shell", timeout, interval=1)

    def journal(self, unit: str, lines: int = 60) -> str:
        return self.sh(f"journalctl --no-pager -o short-monotonic -n {lines} -u {unit}")[1]

    # -- QMP: screen and douchette -----------------------------------------------------------------------------

    def qmp(self, command: str, **arguments: object) -> Any:
        return qmp_request(self._qmp, command, arguments, self.tail)

    def screen(self) -> Image.Image:
        """What the guest's display shows now."""
        ram = Path("/dev/shm")  # 3 MB per dump, many per second while a test waits for a colour
        path = (ram if ram.is_dir() else self.workdir) / f"aptic-screen-{uuid.uuid4().hex}.ppm"
        self.qmp("screendump", filename=str(path))
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        finally:
            path.unlink(missing_ok=True)

    def type(self, transitions: list[tuple[int, int]], interval: float = 0.008) -> None:
        """Type key transitions ``(linux key code, 1 down / 0 up)`` on the USB douchette."""
        for code, value in transitions:
            self.qmp("input-send-event", events=[key_event(code, value)])
            time.sleep(interval)  # QEMU queues 16 transitions per keyboard and drops the rest (qemu.py)


def share(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 4) -> float:
    """The fraction of the screen within ``tolerance`` of ``colour`` on every channel (4: the kiosk's paper is
    told from the white of a browser window that has not painted the page yet)."""
    small = image.resize((160, 100), Image.NEAREST)
    pixels = small.get_flattened_data()
    near = [p for p in pixels if all(abs(a - b) <= tolerance for a, b in zip(p, colour, strict=True))]
    return len(near) / (160 * 100)


@contextlib.contextmanager
def host_priority(*pids: int, nice: int = -10) -> Iterator[None]:
    """Give the host's CPU first to every thread of ``pids`` (QEMU, the test's central, the test itself) while
    a latency is measured, then give it back.

    Under TCG the guest's speed is whatever CPU the host spares it: beside the other half of ``make test`` a
    scan that takes 1 s on a quiet machine took 4.7 s. What a latency test judges is the terminal's software on
    the emulated machine, not the co-tenant's load, so during the measurement the emulated machine and the
    servers it talks to come first (nice -10 weighs about nine times nice 0 in the kernel's scheduler).
    Needs CAP_SYS_NICE (root, as the image tests are); without it the measurement runs as it is.
    """
    before: dict[int, int] = {}
    for tid in _threads(pids):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile; no CAP_SYS_NICE
            old = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, nice)
            before[tid] = old
    try:
        yield
    finally:
        for tid, old in before.items():
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, tid, old)


def _threads(pids: tuple[int, ...]) -> list[int]:
    """Every thread of ``pids`` and of their descendants (QEMU's socat to the central is its child)."""
    threads: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                threads.append(int(task.name))
                todo += [int(child) for child in (task / "children").read_text().split()]
    return threads


@contextlib.contextmanager
def booted(disk: Path, workdir: Path, central_port: int) -> Iterator[Machine]:
    machine = Machine(disk, workdir, central_port).start()
    try:
        yield machine
    finally:
        machine.kill()
