"""Fixtures shared by every test module."""

from tests.live_server import live_server  # noqa: F401  (a real `memledger serve` on loopback)
