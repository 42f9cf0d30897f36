"""The shipped alert rules and Grafana dashboard: valid, and naming only series that a
running gateway exports (scraped from the ``serve`` of the operator story)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.observability.conftest import Story, metric_names
from tests.support.gateway_process import REPO

ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = REPO / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "xoev-gateway.json"
NAME = re.compile(r"\bxoev_gateway_[a-z_]+")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool not found: install Debian's 'prometheus' package "
            "(scripts/test does: apt-get install -y prometheus)"
        )
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_accepts_the_alert_rules() -> None:
    done = _run("check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_alerts_fire_when_they_should() -> None:
    done = _run("test", "rules", str(ALERT_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_alerts_cover_dead_letters_stuck_items_and_readiness() -> None:
    rules = {
        r["alert"]: r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]
    }
    assert 'outcome="dead"' in rules["XoevGatewayDeadLettersGrowing"]["expr"]
    assert "xoev_gateway_queue_oldest_age_seconds" in rules["XoevGatewayQueueStuck"]["expr"]
    assert "xoev_gateway_ready" in rules["XoevGatewayNotReady"]["expr"]


def test_alert_rules_name_only_exported_series(story: Story) -> None:
    exported = metric_names(story.metrics)
    names = set(NAME.findall(ALERTS.read_text()))
    assert names and names <= exported, names - exported


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels += panel.get("panels", [])  # collapsed rows hold their panels
    return panels


def test_dashboard_structure() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] == "xoev-gateway"
    assert isinstance(dashboard["schemaVersion"], int)
    (variable,) = dashboard["templating"]["list"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    panels = _panels(dashboard)
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["title"] and panel["type"] in {"timeseries", "stat", "table", "row"}
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        own = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not own & cells, f"{panel['title']} overlaps another panel"
        cells |= own
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"] and all(t["expr"] for t in panel["targets"])


def test_every_dashboard_panel_shows_series_the_gateway_exports(story: Story) -> None:
    exported = metric_names(story.metrics)
    for panel in _panels(json.loads(DASHBOARD.read_text())):
        for target in panel.get("targets", []):
            names = set(NAME.findall(target["expr"]))
            assert names, f"{panel['title']}: no gateway series in {target['expr']}"
            assert names <= exported, f"{panel['title']}: not exported: {names - exported}"
    shown = {
        n
        for p in _panels(json.loads(DASHBOARD.read_text()))
        for t in p.get("targets", [])
        for n in NAME.findall(t["expr"])
    }
    # The figures all have a panel.
    for family in (
        "xoev_gateway_submissions_accepted_total",
        "xoev_gateway_submissions_rejected_total",
        "xoev_gateway_deliveries_total",
        "xoev_gateway_delivery_attempt_seconds_bucket",
        "xoev_gateway_intake_seconds_bucket",
        "xoev_gateway_queue_depth",
        "xoev_gateway_queue_oldest_age_seconds",
        "xoev_gateway_dead_letters",
        "xoev_gateway_config_info",
        "xoev_gateway_ready",
    ):
        assert family in shown, family
