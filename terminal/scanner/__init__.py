"""The douchette reader: USB barcode scanners read from the kernel (evdev), grabbed, decoded to codes.

A douchette is a keyboard. Read through a browser, a scan is lost or garbled when another element has focus, a
dialog opens, or the host's keyboard layout differs from the one the scanner emulates. Here the scanner's
event nodes are grabbed (nothing it types reaches any other program) and its key codes are decoded by us, in
the layout that turns them into a well-formed pass number.

In a program of its own (``scanner listen``), the whole interface is::

    from terminal.scanner import ReaderConfig, ScannerReader, ScanRead, ScanDiscard

    reader = ScannerReader(on_read, on_discard, ReaderConfig(devices=("0c2e:0b61",)))
    reader.start()      # its own thread; hotplug included
    reader.devices()    # for status pages: every input device, douchette or not, grabbed, layouts
    reader.stop()

``on_read(ScanRead(device, text, layout, monotonic, wall))`` and ``on_discard(ScanDiscard(device, text, reason,
monotonic, wall))`` are called on the reader thread, in order, one at a time: keep them short (hand the read to
your own queue or event loop). Times are those of the terminating key event.

The terminal daemon runs the same reader in a process of its own, through
:class:`~terminal.scanner.process.ReaderProcess` (same interface, and ``stall()``).

Modules, from the bottom up:

- :mod:`~terminal.scanner.keymaps`: key codes and the US / French AZERTY layouts, as tables;
- :mod:`~terminal.scanner.decoder`: the pure per-device state machine, events in, reads and discards out;
- :mod:`~terminal.scanner.devices`: probing ``/dev/input`` and telling douchettes from keyboards;
- :mod:`~terminal.scanner.reader`: the reader thread: grab, select loop, hotplug, unplug, delivery;
- :mod:`~terminal.scanner.typist`: a simulated scanner, text to key events (tests, bench, virtual douchette);
- :mod:`~terminal.scanner.virtual`: the virtual douchette, fed through a unix socket (demo, tests);
- :mod:`~terminal.scanner.stall`: how late each read returns after the kernel stamped its events;
- :mod:`~terminal.scanner.service`: the reader process the daemon runs (only this package, real-time
  priority, frozen GC), so that nothing else the daemon does can make it miss events;
- :mod:`~terminal.scanner.protocol`: the JSON lines it hands the daemon (reads, discards, devices, lateness);
- :mod:`~terminal.scanner.process`: the daemon's side: :class:`~terminal.scanner.process.ReaderProcess`
  starts it, receives its reads, restarts it; it has the interface of ``ScannerReader``;
- :mod:`~terminal.scanner.cli`: ``aptic-terminal scanner decode | listen | list | type``.
"""

from terminal.scanner.decoder import Decoder, DecoderConfig, Discard, Read
from terminal.scanner.reader import ReaderConfig, ScanDiscard, ScannerReader, ScanRead
from terminal.scanner.virtual import VirtualDouchette

__all__ = [
    "Decoder",
    "DecoderConfig",
    "Discard",
    "Read",
    "ReaderConfig",
    "ScanDiscard",
    "ScanRead",
    "ScannerReader",
    "VirtualDouchette",
]
