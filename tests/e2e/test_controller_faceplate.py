"""The controller faceplate in real Chromium against `python main.py` on the shipped config.yaml
(issue 14's acceptance): an operator signs in, switches FV1's loop to AUTO, sets a new setpoint with
the on-screen keypad only (taps, no keyboard), and watches the fermenter's temperature settle at it.

The config is the repo's config.yaml as `bench/control.py` runs it (`bench_config`): the simulator on
a free port and a temporary probe link, the process clock at ×40 (a simulated minute in 1.5 real
seconds), polling every 0.1 s. FV1 (50 L, glycol jacket, heating pad, a probe with 20 s dead time and
a 90 s lag) starts at 18 °C; a 1 °C step down cools on the glycol valve and settles within a few
simulated tens of minutes, i.e. well under a real minute. Nothing here sleeps: the test waits on what
the page shows (Playwright's expect, and a page-side poll that counts consecutive readings in band).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, Page, expect

from bench.control import bench_config
from tests.e2e.conftest import PASSWORD, VIEWPORT, ServerProcess, signed_in_server, snapshot

SPEED = 40.0  # the speed bench/control.py holds FV1 at 18 ± 0.3 °C on
CID = "fv1_temperature"
SETPOINT_ENDPOINT = 150  # fv1_setpoint, the loop's software setpoint (0 … 30 °C)
TARGET = 17.0
BAND = 0.3  # °C either side: what the bench holds FV1 to
IN_BAND_READINGS = 8  # consecutive readings, one per real second (≈ 5 simulated minutes at ×40)
TIMEOUT = 10_000  # ms; a generous ceiling for a loaded machine, not a speed requirement
SETTLE_TIMEOUT = 240_000  # ms; the settle takes well under a minute at ×40 on an idle machine


def tid(name: str) -> str:
    return f'[data-testid="{name}"]'


@pytest.fixture
def fermenter_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """config.yaml at ×40 with `auth.mode: required`, an operator `brewer` and an admin token for the checks."""
    config = bench_config(tmp_path, SPEED)
    doc = yaml.safe_load(config.read_text(encoding="utf-8"))
    doc["auth"] = {"mode": "required"}
    config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    yield from signed_in_server(tmp_path, config, {"brewer": "operator"})


def sign_in(page: Page, server: ServerProcess, user: str) -> None:
    page.goto(server.base_url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next="), timeout=TIMEOUT)
    page.fill("#u", user)
    page.fill("#p", PASSWORD)
    page.get_by_role("button", name="SIGN IN").click()
    page.locator("#bf-connection[data-state=online]").wait_for(timeout=TIMEOUT)


# Runs in the page once a second: counts consecutive live PV readings within the band (a "?" value,
# not live, breaks the run), and is done once `need` readings in a row were in it.
SETTLED_JS = """([selector, low, high, need]) => {
  const state = window.__bfSettle || (window.__bfSettle = {run: 0});
  const el = document.querySelector(selector);
  const text = el ? el.textContent.trim() : "";
  const match = text.startsWith("?") ? null : text.match(/-?\\d+(?:\\.\\d+)?/);
  const value = match ? parseFloat(match[0]) : NaN;
  state.run = value >= low && value <= high ? state.run + 1 : 0;
  return state.run >= need;
}"""


def test_an_operator_sets_a_setpoint_with_the_keypad_and_the_fermenter_settles_at_it(
        browser: Browser, fermenter_server: ServerProcess) -> None:
    server = fermenter_server
    page = browser.new_context(viewport=VIEWPORT).new_page()
    sign_in(page, server, "brewer")
    faceplate = page.locator(tid(f"faceplate-{CID}"))
    faceplate.scroll_into_view_if_needed()
    expect(faceplate).to_be_visible(timeout=TIMEOUT)
    expect(page.locator(tid(f"fp-sp-{CID}"))).to_have_text("18.0 °C", timeout=TIMEOUT)
    expect(page.locator(tid(f"fp-pv-quality-{CID}"))).to_have_text("LIVE", timeout=TIMEOUT)

    page.locator(tid(f"fp-mode-auto-{CID}")).click()  # the glycol valve is not critical: no confirmation
    expect(page.locator(tid(f"fp-mode-{CID}"))).to_have_text("MODE AUTO", timeout=TIMEOUT)
    expect(page.locator(tid(f"fp-state-{CID}"))).to_have_text("REGULATING", timeout=TIMEOUT)

    page.locator(tid(f"fp-set-sp-{CID}")).click()
    keypad = page.locator(tid("keypad"))
    expect(keypad).to_be_visible(timeout=TIMEOUT)
    expect(page.locator(tid("keypad-range"))).to_have_text("range 0 … 30 °C")
    for key in ("1", "7"):
        page.locator(tid(f"keypad-{key}")).click()
    expect(page.locator(tid("keypad-text"))).to_have_text("17")
    page.locator(tid("keypad-set")).click()
    expect(keypad).to_be_hidden(timeout=TIMEOUT)
    expect(page.locator(tid(f"fp-sp-{CID}"))).to_have_text("17.0 °C", timeout=TIMEOUT)

    pv = page.locator(tid(f"fp-pv-{CID}"))
    expect(pv).to_have_text(re.compile(r"^1[78]\.\d+ °C$"), timeout=TIMEOUT)  # live, not yet there
    page.wait_for_function(SETTLED_JS, arg=[tid(f"fp-pv-{CID}"), TARGET - BAND, TARGET + BAND, IN_BAND_READINGS],
                           polling=1000, timeout=SETTLE_TIMEOUT)
    expect(page.locator(tid(f"fp-state-{CID}"))).to_have_text("REGULATING")
    expect(page.locator(tid(f"fp-pv-quality-{CID}"))).to_have_text("LIVE")
    snapshot(page, "faceplate-fv1-settled")

    # the person's setpoint change: the command record and the audit journal say it came from the screen
    commands: list[dict[str, Any]] = server.get(f"/api/os/commands?endpointId={SETPOINT_ENDPOINT}")
    mine = [c for c in commands if c["user"] == "brewer"]
    assert [(c["requestedValue"], c["origin"], c["status"]) for c in mine] == [(TARGET, "ui", "succeeded")]
    audit: list[dict[str, Any]] = server.get("/api/os/audit?limit=200")
    requested = [e for e in audit if e["user"] == "brewer" and e["action"] == "command.request"]
    assert [(e["target"], e["new"], e["detail"]) for e in requested] == [("fv1_setpoint", TARGET, "ui")]
    assert any(e["user"] == "brewer" and e["action"] == "controller.mode" and e["new"] == "auto" for e in audit)
