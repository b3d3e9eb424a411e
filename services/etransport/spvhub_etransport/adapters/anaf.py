"""The ANAF e-Transport reads the carrier view needs (`info?cui_op=`, `lista/{zile}/{cif}`), through the shared
ANAF client (spvhub_common.anaf: budget, limits, typed errors). The domain parses ANAF's raw records itself
(numbers or strings, both endpoints' date formats), so this port hands them over untouched."""
from __future__ import annotations

from typing import Any, Protocol

from spvhub_common.anaf import AnafClient


class EtransportApi(Protocol):
    """The port: ANAF's e-Transport reads, called with an access token of a connection that has rights on `cif`.
    Raises spvhub_common.anaf.errors (NoRights, Unauthorized, DailyLimitReached, AnafUnavailable, ...)."""

    async def info(self, token: str, cui_op: str, *, uit: str | None = None) -> list[dict[str, Any]]:
        """Active notifications where `cui_op` is the carrier; [] when ANAF has none."""

    async def lista(self, token: str, cif: str, zile: int) -> list[dict[str, Any]]:
        """The declarant's list of the last `zile` days; [] when ANAF has none."""


class AnafClientEtransportApi:
    def __init__(self, client: AnafClient) -> None:
        self.client = client

    async def info(self, token: str, cui_op: str, *, uit: str | None = None) -> list[dict[str, Any]]:
        return [x.raw for x in await self.client.transport_info(cui_op, uit=uit, token=token)]

    async def lista(self, token: str, cif: str, zile: int) -> list[dict[str, Any]]:
        return [x.raw for x in (await self.client.transport_list(zile, cif, token=token)).items]
