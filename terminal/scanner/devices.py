"""Finding douchettes among the input devices, and telling them from keyboards.

Every ``/dev/input/eventN`` node is *probed* (name, ids, physical path, capabilities) into an
:class:`InputNode`. Nodes are grouped by physical device (:attr:`InputNode.group`: the USB port path, so the
keyboard node and, say, the consumer-control node of one scanner belong together) and each group is
*classified* by :func:`classify`:

1. explicit configuration first: a selector (``ReaderConfig.devices``, ``--device``) naming one of its nodes
   by path or by-id/by-path link, by ``vendor:product`` (hex), or by a piece of its name, makes it a douchette
   even if it calls itself a keyboard; a selector in ``ignore`` makes it never one;
2. then heuristics: a name that says scanner, barcode, reader or douchette, or a known scanner vendor
   (Honeywell/Metrologic, Hand Held Products, Zebra/Symbol, Datalogic, Newland, Opticon).

Only groups that can type a code (EV_KEY with the digits and Enter, top row or keypad) qualify, and a plain
keyboard is never a douchette unless configured. Every node of a douchette that sends keys is grabbed.

Probing needs read access to the nodes. Without it, :attr:`InputNode.error` says how to fix it
(:data:`PERMISSION_FIX`).
"""

from __future__ import annotations

import errno
import glob
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from terminal.scanner.keymaps import DIGIT_KEYS, EV_KEY, KEY_ENTER, KEY_KPENTER, KEYPAD_DIGIT_KEYS

PERMISSION_FIX = (
    "add the terminal's user to group 'input' and install the udev rule "
    'SUBSYSTEM=="input", GROUP="input", MODE="0660" (e.g. /etc/udev/rules.d/99-aptic-input.rules), '
    "then run `udevadm control --reload && udevadm trigger` and log in again"
)
"""What to do when input nodes cannot be opened."""

SCANNER_WORDS = re.compile(r"scanner|barcode|bar code|reader|douchette", re.IGNORECASE)
SCANNER_VENDORS: dict[int, str] = {
    0x0C2E: "Honeywell (Metrologic)",
    0x0536: "Hand Held Products",
    0x05E0: "Zebra (Symbol)",
    0x05F9: "Datalogic",
    0x1EAB: "Newland",
    0x065A: "Opticon",
}
"""USB vendor ids that only make barcode scanners (for the heuristic)."""

_VIDPID = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$")
_LINK_SUFFIX = re.compile(r"(-if\d+)?-event-\w+$")


@dataclass(frozen=True, slots=True)
class InputNode:
    """What one ``/dev/input/eventN`` node says about itself."""

    path: str
    name: str = ""
    phys: str = ""
    uniq: str = ""
    bustype: int = 0
    vendor: int = 0
    product: int = 0
    links: tuple[str, ...] = ()
    """The ``/dev/input/by-id`` and ``by-path`` symlinks that point at this node."""
    has_keys: bool = False
    """Sends EV_KEY at all (grabbed with its douchette)."""
    can_type_codes: bool = False
    """Has the digits (top row or keypad) and Enter: could be a douchette."""
    error: str | None = None

    @property
    def group(self) -> str:
        """The physical device this node belongs to: its ``phys`` without the ``/inputN`` interface part."""
        if not self.phys:
            return self.path
        return self.phys.rsplit("/input", 1)[0] if "/input" in self.phys else self.phys

    @property
    def vidpid(self) -> str:
        return f"{self.vendor:04x}:{self.product:04x}"

    @property
    def device_id(self) -> str:
        """A stable name for the physical device: its by-id link, else ``vendor:product@port``."""
        for link in self.links:
            if "/by-id/" in link:
                return _LINK_SUFFIX.sub("", os.path.basename(link))
        return f"{self.vidpid}@{self.group}"


@dataclass(frozen=True, slots=True)
class Classification:
    """Whether a physical device is a douchette, and why (for ``scanner list`` and the logs)."""

    douchette: bool
    why: str
    nodes: tuple[InputNode, ...] = field(default=())

    @property
    def device_id(self) -> str:
        return self.nodes[0].device_id if self.nodes else ""


def _links(input_dir: str) -> dict[str, list[str]]:
    """Map each node's real path to the by-id / by-path symlinks that point at it."""
    links: dict[str, list[str]] = {}
    for sub in ("by-id", "by-path"):
        for link in sorted(glob.glob(os.path.join(input_dir, sub, "*"))):
            try:
                target = os.path.realpath(link)
            except OSError:
                continue
            links.setdefault(target, []).append(link)
    return links


def node_paths(input_dir: str = "/dev/input") -> list[str]:
    """The event nodes present now, in numeric order."""
    paths = glob.glob(os.path.join(input_dir, "event*"))
    return sorted(paths, key=lambda p: (len(p), p))


def probe(path: str, links: Sequence[str] = ()) -> InputNode:
    """Open ``path`` read-only and read what it says about itself; errors end up in ``error``."""
    import evdev  # here, so the rest of the package (and its tests) runs without it

    try:
        device = evdev.InputDevice(path, readonly=True)
    except PermissionError:
        return InputNode(path, links=tuple(links), error=f"permission denied: {PERMISSION_FIX}")
    except OSError as e:
        return InputNode(path, links=tuple(links), error=os.strerror(e.errno or errno.EIO))
    try:
        keys = set(device.capabilities().get(EV_KEY, ()))
        info = device.info
        digits = keys.issuperset(DIGIT_KEYS) or keys.issuperset(KEYPAD_DIGIT_KEYS)
        return InputNode(
            path=path,
            name=device.name,
            phys=device.phys or "",
            uniq=device.uniq or "",
            bustype=info.bustype,
            vendor=info.vendor,
            product=info.product,
            links=tuple(links),
            has_keys=bool(keys),
            can_type_codes=digits and bool(keys & {KEY_ENTER, KEY_KPENTER}),
        )
    except OSError as e:
        return InputNode(path, links=tuple(links), error=os.strerror(e.errno or errno.EIO))
    finally:
        device.close()


def scan(input_dir: str = "/dev/input") -> list[InputNode]:
    """Probe every event node under ``input_dir``."""
    links = _links(input_dir)
    return [probe(p, links.get(os.path.realpath(p), ())) for p in node_paths(input_dir)]


def matches(selector: str, node: InputNode) -> bool:
    """True when ``selector`` (path or link, ``vendor:product``, or a piece of the name) names ``node``."""
    selector = selector.strip()
    if not selector:
        return False
    if "/" in selector:
        wanted = os.path.realpath(selector)
        return wanted == os.path.realpath(node.path) or selector in node.links
    if m := _VIDPID.match(selector):
        return (node.vendor, node.product) == (int(m[1], 16), int(m[2], 16))
    if any(os.path.basename(link) == selector for link in node.links):
        return True
    return bool(node.name) and selector.casefold() in node.name.casefold()


def group_nodes(nodes: Iterable[InputNode]) -> dict[str, list[InputNode]]:
    """Nodes by physical device (see :attr:`InputNode.group`)."""
    groups: dict[str, list[InputNode]] = {}
    for node in nodes:
        if node.error is None:
            groups.setdefault(node.group, []).append(node)
    return groups


def classify(
    nodes: Sequence[InputNode], selectors: Sequence[str] = (), ignore: Sequence[str] = (), heuristics: bool = True
) -> Classification:
    """Decide whether the nodes of one physical device make a douchette (see the module docstring)."""
    nodes = tuple(nodes)
    if not any(n.can_type_codes for n in nodes):
        return Classification(False, "cannot type codes (no digits and Enter keys)", nodes)
    for sel in ignore:
        if any(matches(sel, n) for n in nodes):
            return Classification(False, f"ignored by configuration ({sel!r})", nodes)
    for sel in selectors:
        if any(matches(sel, n) for n in nodes):
            return Classification(True, f"configured ({sel!r})", nodes)
    if heuristics:
        for n in nodes:
            if m := SCANNER_WORDS.search(n.name):
                return Classification(True, f"name says {m[0].lower()!r}", nodes)
        for n in nodes:
            if n.vendor in SCANNER_VENDORS:
                return Classification(True, f"scanner vendor {SCANNER_VENDORS[n.vendor]}", nodes)
    return Classification(False, "keyboard (not configured as a douchette)", nodes)
