"""Helpers shared by test files (and conftest.py): import them, do not copy them."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest


def skip_or_fail(message: str) -> None:
    """Skip the test, but fail it under CI: there a missing tool or data set is a broken
    setup, and a green run that skipped the test would say nothing."""
    __tracebackhide__ = True  # the skip or failure is reported at the caller's line
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on loopback (all held open at once while chosen, so
    that none is handed out twice)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    """A free TCP port on loopback."""
    (port,) = free_ports(1)
    return port


def unit(*values: float) -> np.ndarray:
    """The vector of values scaled to length 1 (float64): an embedding chosen by hand."""
    vector = np.array(values, np.float64)
    return vector / np.linalg.norm(vector)


THUMBNAIL = np.full((8, 8, 3), 128, np.uint8)  # a gallery entry's picture, when it does not matter
