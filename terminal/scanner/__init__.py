"""The douchette reader: USB barcode scanners read from the kernel (evdev), grabbed, decoded to codes.

- :mod:`terminal.scanner.keymaps`: key codes and the US / French AZERTY layouts, as tables.
- :mod:`terminal.scanner.decoder`: the pure per-device state machine, events in, reads and discards out.
- :mod:`terminal.scanner.typist`: a simulated scanner, text to key events (tests, bench, virtual douchette).
"""
