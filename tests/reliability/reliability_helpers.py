"""Helpers for the reliability tests: a bystander session that must stay untouched, raw requests."""

from __future__ import annotations

from typing import Any

from server_helpers import Api

__all__ = ["SESSIONS", "stable", "Bystander"]

SESSIONS = ("replay", "api", "sessions")
_VOLATILE = ("client_token", "server_url", "clients")


def stable(model: dict[str, Any]) -> dict[str, Any]:
    """A session model without the fields that differ per requester or per connection."""
    return {k: v for k, v in model.items() if k not in _VOLATILE}


class Bystander:
    """Another kernel's session, paused at a known position: nothing done elsewhere may change it."""

    def __init__(self, api: Api, kernel_id: str, model: dict[str, Any]) -> None:
        self.api = api
        self.id = kernel_id
        self.model = model

    @classmethod
    async def start(cls, api: Api) -> "Bystander":
        kid = await api.start_kernel()
        await api.create(kid, source={"kind": "sample", "n": 500, "seed": 99}, speed=2)
        await api.ok(kid, "step", n=7)  # paused at row 7 with rows in its buffer: nothing moves by itself
        model = stable(await api.status(kid))
        assert model["state"] == "paused" and model["buffer_rows"] == 7
        return cls(api, kid, model)

    async def check(self) -> None:
        """Unchanged, and the server still answers."""
        assert stable(await self.api.status(self.id)) == self.model, "the bystander session changed"
        code, listing, _ = await self.api.request("GET", *SESSIONS)
        assert code == 200 and self.id in [m["id"] for m in listing]
