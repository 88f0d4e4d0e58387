"""Provisioning: activation of a terminal by its kit number (device side)."""
