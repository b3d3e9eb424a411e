"""e-Transport `lista` fields sent as numbers or as strings read the same (anaf-api.md §11.14): the swagger shows
every field as a string, e-factura-go decodes `cod_decl`, `id_incarcare`, `nr_linii`, `tip_op` as numbers, and the
emulator sends either (switch `et_lista_numbers`)."""
from __future__ import annotations

from typing import Any

from spvhub_etransport import handlers
from spvhub_etransport.domain import observation_from_lista

C1 = "31000019"  # = Harness.carriers[0] (conftest)
D1 = "12000012"  # = Harness.declarants[0]
NUMERIC = ("cod_decl", "id_incarcare", "nr_linii", "tip_op")


async def test_lista_fields_as_numbers_or_strings_give_the_same_transport(harness: Any) -> None:
    h = await harness(start_relay=False, switches={"et_lista_includes_carrier": True})
    uit = await h.new_transport(D1, C1, tip_op="10")
    token = (await h.bearer(C1))["Authorization"].removeprefix("Bearer ")
    as_strings = [x for x in await h.deps.anaf.lista(token, C1, 1) if x.get("uit") == uit]
    r = await h.emu.post("/__admin/switches", json={"et_lista_numbers": True})
    assert r.status_code == 200, r.text
    as_numbers = [x for x in await h.deps.anaf.lista(token, C1, 1) if x.get("uit") == uit]
    assert len(as_strings) == len(as_numbers) == 1
    strings, numbers = as_strings[0], as_numbers[0]
    assert all(isinstance(strings[k], str) for k in NUMERIC if k in strings)
    assert {k for k in NUMERIC if isinstance(numbers.get(k), int)} == {k for k in NUMERIC if k in strings}
    seen_s, seen_n = observation_from_lista(strings, C1), observation_from_lista(numbers, C1)
    assert seen_s is not None and seen_s == seen_n
    assert seen_n.operation_type == "10" and seen_n.declarant_cif == D1 and seen_n.goods
    # and the whole poll goes through with numbers
    await h.track(C1)
    [summary] = await handlers.poll_due(h.deps)
    assert summary.polled_lista and summary.error is None and summary.created == 1
