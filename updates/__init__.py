"""Signed updates: the guard that switches releases (guard.py, in the image) and, beside it, the agent's part."""
