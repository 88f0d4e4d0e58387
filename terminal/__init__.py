"""The terminal: the device daemon of a Raspberry Pi kiosk that reads the douchette, judges passes, records
scans durably, syncs them with the central, and drives LEDs and buzzer."""
