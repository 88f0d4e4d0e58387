"""System tests: real kernels in QEMU guests (see qemu.py)."""
