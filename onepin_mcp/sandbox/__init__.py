"""A faithful local OnePin API: `onepin-mcp sandbox`, and the fake the tests talk to.

`Sandbox` is the Starlette app plus handles to drive it (manual clock, faults, request log,
reset); `seed` names the ids of the seeded world; `serve` runs it on a socket.
"""

from __future__ import annotations

from . import seed
from .app import Sandbox
from .store import ALL_SCOPES, ApiKey

__all__ = ["ALL_SCOPES", "ApiKey", "Sandbox", "seed"]
