"""Mapping end to end, against a real ``xoev-gateway serve`` process: preview = delivery,
refused reloads keep the running config, SIGHUP reloads, mapping errors dead-letter."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import sample
from tests.e2e.test_http_end_to_end import ADMIN, XML, wait_settled
from tests.support.gateway_process import GatewayProcess

CASES = [
    # (sample, destination, level)
    ("anmeldung-stuttgart.xml", "stuttgart-steueramt", "Land"),
    ("anmeldung-esslingen.xml", "bw-hundesteuer", "Kreis"),
    ("anmeldung-nuertingen.xml", "bw-hundesteuer", "municipality"),
    ("../../bewohnerparken/valid/antrag-stuttgart.xml", "stuttgart-steueramt", "everywhere"),
]
EXTENSIONS = {"json": "json", "keyvalue": "txt", "xml": "xml"}


def preview(client: httpx.Client, body: bytes, municipality: str | None = None) -> dict[str, Any]:
    params = {"municipality": municipality} if municipality else {}
    answer = client.post(
        "/v1/admin/mapping/preview",
        content=body,
        headers={**ADMIN, "Content-Type": "application/xml"},
        params=params,
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def deliver(client: httpx.Client, body: bytes) -> dict[str, Any]:
    answer = client.post("/v1/submissions", content=body, headers=XML)
    assert answer.status_code == 202, answer.text
    return wait_settled(client, answer.headers["location"], ADMIN)


def version(client: httpx.Client) -> str:
    result: str = client.get("/readyz").json()["config_version"]
    return result


def test_preview_and_delivery_show_the_effective_mapping_at_each_level(
    gateway: GatewayProcess, config_dir: Path
) -> None:
    out = config_dir.parent / "out"
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        active = version(client)
        for name, destination, _level in CASES:
            body = sample(f"hundesteuer/valid/{name}")
            shown = preview(client, body)
            (expected,) = shown["deliveries"]
            assert expected["destination"] == destination
            view = deliver(client, body)
            (delivery,) = view["deliveries"]
            assert delivery["state"] == "delivered", delivery
            assert delivery["config_version"] == active
            meta = json.loads((out / destination / f"{delivery['id']}.json").read_text())
            assert meta["payload"] == expected["payload"]
            # The file drop writes the rendering in the mapping's format, byte for byte.
            ext = EXTENSIONS[expected["format"]]
            assert meta["payload_file"] == f"{delivery['id']}.mapped.{ext}"
            mapped = (out / destination / meta["payload_file"]).read_bytes()
            assert mapped == expected["body"].encode()
            # The shipped mapping test for this message expects exactly this body.
            golden = config_dir / "mapping-tests" / f"{Path(name).stem}.{destination}.{ext}"
            assert expected["body"] == golden.read_text()

        # The levels differ as configured.
        land, kreis, gemeinde = (
            preview(client, sample(f"hundesteuer/valid/{n}"))["deliveries"][0]["payload"]
            for n, _, _ in CASES[:3]
        )
        assert land["geschlecht"] == "M" and "iban" in land and "kreis" not in land
        assert kreis["kreis"] == "Landkreis Esslingen" and "iban" in kreis
        assert gemeinde["geschlecht"] == "4" and "iban" not in gemeinde
        # One message previewed for another municipality takes that municipality's mapping.
        moved = preview(client, sample("hundesteuer/valid/anmeldung-esslingen.xml"), "08116049")
        assert moved["municipality"] == "08116049"
        assert "iban" not in moved["deliveries"][0]["payload"]


BROKEN = [
    (
        "destinations:\n  x:\n    adapter: filedrop\n    settings: {directory: o, colour: red}\n",
        "zz-broken.yaml:4: destinations.x.settings.colour: unknown key",
    ),
    (
        "mappings:\n  - service: s\n    fields:\n      a: q:x/q:y\n",
        "zz-broken.yaml:4: mappings.0.fields.a.xpath: undeclared namespace prefix q",
    ),
    (
        "mappings:\n  - service: s\n    fields:\n      g:\n        xpath: hs:hund/hs:geschlecht/code\n"
        "        map:\n          codelist: urn:xoev-gateway:codeliste:geschlecht-tier\n"
        "          values: {m: M, w: W}\n",
        "zz-broken.yaml:8: mappings.0.fields.g.map.values: misses codes 'mk', 'wk'",
    ),
    ("mappings: [\n  {service: s\n", "zz-broken.yaml:3: invalid YAML"),
]


def test_broken_config_is_refused_and_the_previous_keeps_serving(
    gateway: GatewayProcess, config_dir: Path
) -> None:
    broken = config_dir / "zz-broken.yaml"
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        active = version(client)
        for text, message in BROKEN:
            broken.write_text(text, encoding="utf-8")
            answer = client.post("/v1/admin/config/reload", headers=ADMIN)
            assert answer.status_code == 422, answer.text
            problem = answer.json()
            assert message in problem["detail"], problem["detail"]
            assert problem["active_config_version"] == active
            assert version(client) == active
        view = deliver(client, sample("hundesteuer/valid/anmeldung-nuertingen.xml"))
        (delivery,) = view["deliveries"]
        assert delivery["state"] == "delivered" and delivery["config_version"] == active

        # SIGHUP: a broken config is refused (logged), a good one becomes active.
        gateway.proc.send_signal(signal.SIGHUP)
        wait_for_log(gateway, "config reload refused")
        assert version(client) == active
        broken.unlink()
        override = config_dir / "mappings-nuertingen.yaml"
        override.write_text(override.read_text().replace('wk: "4"', 'wk: "9"'))
        gateway.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while version(client) == active and time.monotonic() < deadline:
            time.sleep(0.1)
        assert version(client) != active
        shown = preview(client, sample("hundesteuer/valid/anmeldung-nuertingen.xml"))
        assert shown["deliveries"][0]["payload"]["geschlecht"] == "9"


def test_a_mapping_error_at_delivery_is_dead_lettered_with_the_reason(
    gateway: GatewayProcess, config_dir: Path
) -> None:
    (config_dir / "zz-strict.yaml").write_text(
        "mappings:\n  - service: hundesteuer.anmeldung.0101\n    municipality: '08111000'\n"
        "    destination: stuttgart-steueramt\n    fields:\n"
        "      rasse: {xpath: hs:hund/hs:rasse/code, map: {values: {'1': X}}}\n",
        encoding="utf-8",
    )
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        reloaded = client.post("/v1/admin/config/reload", headers=ADMIN)
        assert reloaded.status_code == 200, reloaded.text
        view = deliver(client, sample("hundesteuer/valid/anmeldung-stuttgart.xml"))
    (delivery,) = view["deliveries"]
    assert delivery["state"] == "dead"
    assert "field 'rasse': code '122' is not in the value map" in delivery["problem"]
    assert delivery["config_version"] == reloaded.json()["config_version"]


def wait_for_log(gateway: GatewayProcess, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in gateway.log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            pytest.fail(f"'{text}' not logged: {gateway.log.read_text()[-2000:]}")
        time.sleep(0.1)


def test_the_reference_fachverfahren_receives_exactly_the_preview(
    gateway: GatewayProcess, config_dir: Path, tmp_path: Path
) -> None:
    from tests.support.servers import reference_fachverfahren

    with reference_fachverfahren(tmp_path / "fv") as fv:
        routes = config_dir / "routes.yaml"
        text = routes.read_text()
        for name in ("bw-hundesteuer", "stuttgart-steueramt"):
            text = text.replace(
                f"adapter: filedrop\n    settings: {{directory: ../out/{name}}}",
                f"adapter: http\n    settings: {{url: '{fv.url}/cases', body: mapped}}",
            )
        routes.write_text(text)
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            assert client.post("/v1/admin/config/reload", headers=ADMIN).status_code == 200
            expected_bodies = []
            for name, destination, _level in CASES:
                body = sample(f"hundesteuer/valid/{name}")
                (shown,) = preview(client, body)["deliveries"]
                view = deliver(client, body)
                (delivery,) = view["deliveries"]
                assert delivery["destination"] == destination
                assert delivery["state"] == "delivered", delivery
                assert delivery["receipt_reference"].startswith("AZ-")
                expected_bodies.append((delivery["receipt_reference"], shown["body"]))
        received = {case["case_number"]: case["body"] for case in fv.cases()}
    assert len(received) == len(CASES)
    for case_number, body in expected_bodies:
        assert received[case_number] == body
