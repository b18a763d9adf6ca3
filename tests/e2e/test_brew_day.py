"""A brew day in Chromium on the simulated brewhouse, its clock 120× fast (issue 15's acceptance).

The brewer signs in, fills the mash tun from the HLT on the Control Panel, imports
examples/recipes/step-mash-blonde.xml on /recipes, reviews it (the strike temperature the recipe
gives, the rests, the three hop additions), sets the strike water to the first rest's 52 °C (the
simulator has no grain to cool the strike water) and SAVEs, STARTs it, watches it on /programs,
answers the mash-in prompt in the dialog on the Control Panel and each hop addition in the dialog
as it comes up during the boil, shortens the rests and the boil with −5 MIN and SKIPs the chill (nothing
cools the simulated kettle), sees the program COMPLETED, and opens the batch and its printable report.

The plant is the tests' fixture brewhouse with the mash tun's RIMS loop and the kettle element loop
tuned as the shipped sample's, and a brewhouse program unit whose template shows the generator the
equipment (as config.yaml's `single_infusion`). Every wait is on the page, bounded by a timeout that
is a ceiling for a loaded machine, not a speed requirement.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, Page, expect

from drivers.sim.ports import use_simulator_ports
from tests.e2e.conftest import PASSWORD, VIEWPORT, ServerProcess, settle_layout, signed_in_server, snapshot
from tests.support.controllers import with_controllers
from tests.support.server import ROOT, config_document, free_port

RECIPE = ROOT / "examples" / "recipes" / "step-mash-blonde.xml"
SPEEDUP = 120  # two simulated minutes a second: the whole brew day in a couple of minutes
TIMEOUT = 10_000  # ms: a page's answer
PROCESS = 120_000  # ms: the simulated plant heating, boiling, pumping at 120×
UNIT = "brewhouse"

MASH_RIMS: dict[str, Any] = {  # as config.yaml's mlt_rims
    "id": "mlt_rims", "name": "Mash temperature (RIMS)", "node": "MLT", "kind": "pid", "input": 20, "output": 40,
    "setpoint": {"id": 140, "name": "mlt_setpoint", "min": 20, "max": 80, "unit": "°C", "default": 66},
    "output_record": {"id": 141, "name": "mlt_output"}, "period_s": 10, "min_on_s": 1, "min_off_s": 1,
    "tuning": {"kp": 60, "ki": 0.048, "kd": 1200, "derivative_filter_s": 10, "out_min": 0, "out_max": 100,
               "ramp_c_per_min": 1.0},
    "safety": {"runaway_output_pct": 90, "runaway_minutes": 10, "runaway_min_change_c": 1.0,
               "over_temperature_c": 8},
    "priority": 1,
}
KETTLE: dict[str, Any] = {  # as config.yaml's bk_element
    "id": "bk_element", "name": "Kettle (element)", "node": "BK", "kind": "pid", "input": 30, "output": 38,
    "setpoint": {"id": 130, "name": "bk_setpoint", "min": 20, "max": 100, "unit": "°C", "default": 100},
    "output_record": {"id": 131, "name": "bk_output"}, "period_s": 10, "min_on_s": 1, "min_off_s": 1,
    "tuning": {"kp": 15, "ki": 0.03, "boil_threshold_c": 99, "boil_output_pct": 70},
    "safety": {"over_temperature_c": None}, "priority": 2,
}
SINGLE_INFUSION: dict[str, Any] = {  # as config.yaml's: what a recipe's program drives comes from here
    "id": "single_infusion", "name": "Single infusion mash and 60 min boil", "unit": UNIT, "steps": [
        {"type": "heat", "name": "Strike water", "controller": "mlt_rims", "target_c": 72},
        {"type": "prompt", "name": "Mash in", "message": "Add the grain and stir", "overdue_min": 15},
        {"type": "hold", "name": "Mash rest", "controller": "mlt_rims", "target_c": 66, "minutes": 60,
         "grace_s": 120},
        {"type": "transfer", "name": "Run off to the kettle", "pump": 35, "valves": [34], "controller": "mlt_rims",
         "until": {"endpoint": 21, "op": "<", "value": 3}, "message": "Confirm when the tun is empty"},
        {"type": "boil", "name": "Boil", "controller": "bk_element", "minutes": 60, "boil_c": 99,
         "additions": [{"at_min": 60, "message": "Add the bittering hops"}]},
        {"type": "chill", "name": "Chill", "endpoint": 30, "below_c": 22, "controller": "bk_element"},
    ]}


def tid(name: str) -> str:
    return f'[data-testid="{name}"]'


def brew_day_plant(doc: dict[str, Any]) -> None:
    """The fixture brewhouse with the two loops, the brewhouse unit, sign-in required, the clock at 120×."""
    with_controllers([MASH_RIMS, KETTLE])(doc)
    doc["programs"] = {"units": [{"id": UNIT, "name": "Brewhouse", "kind": "brewhouse",
                                  "controllers": ["mlt_rims", "bk_element"]}],
                       "templates": [SINGLE_INFUSION]}
    doc["auth"] = {"mode": "required"}
    doc["simulator"]["speedup"] = SPEEDUP
    for endpoint in doc["endpoints"]:  # a poll every 0.1 s is 12 simulated seconds: the loops see the process
        if "device" in endpoint:
            endpoint["poll_interval_s"] = min(float(endpoint.get("poll_interval_s", 1.0)), 0.1)
            endpoint["stale_after_s"] = 3.0  # real seconds: a slow poll on a busy machine is not an input fault


def signed_in_brewhouse(directory: Path) -> Iterator[ServerProcess]:
    doc = config_document()
    brew_day_plant(doc)
    use_simulator_ports(doc, free_port(), str(directory / "probe"))
    config = directory / "brewhouse.yaml"
    config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    yield from signed_in_server(directory, config, {"brewer": "operator", "head": "admin"})


@pytest.fixture
def brewhouse(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fresh brewhouse for the brew day: it runs a program to its end."""
    yield from signed_in_brewhouse(tmp_path)


@pytest.fixture(scope="module")
def idle_brewhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One brewhouse, no program ever started, for the tests that only sign in and look at its pages."""
    yield from signed_in_brewhouse(tmp_path_factory.mktemp("idle-brewhouse"))


def open_page(page: Page, server: ServerProcess, path: str) -> None:
    page.goto(server.base_url + path)
    page.locator("#bf-connection[data-state=online]").wait_for(timeout=TIMEOUT)


def shorten_to_its_end(page: Page, step: int, total: int) -> None:
    """−5 MIN until the timed step `step` (1-based) has ended: each press takes five minutes off (or what is
    left), and the program moves on once no time is left."""
    current = page.locator(tid(f"prog-step-{UNIT}"))
    expect(current).to_contain_text(f"STEP {step} OF {total}", timeout=PROCESS)
    for _ in range(30):
        if f"STEP {step} OF" not in current.inner_text():
            return
        before = page.locator(tid(f"prog-countdown-{UNIT}")).inner_text()
        page.locator(tid(f"prog-shorten-{UNIT}")).click(timeout=TIMEOUT)
        page.wait_for_function(SHORTENED, arg=[step, seconds(before)], timeout=TIMEOUT)
    raise AssertionError(f"step {step} did not end")


SHORTENED = """([step, before]) => {
  const current = document.querySelector('[data-testid="prog-step-brewhouse"]').textContent;
  if (!current.includes(`STEP ${step} OF`)) return true;
  const left = document.querySelector('[data-testid="prog-countdown-brewhouse"]').textContent;
  return left.split(':').reduce((s, part) => s * 60 + Number(part), 0) <= before - 240;
}"""


SETTLED = "() => !document.querySelector('[class*=\"enter-active\"]')"


def seconds(countdown: str) -> int:
    total = 0
    for part in countdown.split(":"):
        total = total * 60 + int(part)
    return total


def answer(page: Page, key: str, text: str) -> None:
    """The prompt dialog shows `text`; CONFIRM answers it and the dialog closes (no other question open)."""
    confirm = page.locator(tid(f"prompt-confirm-{UNIT}-{key}"))
    expect(confirm).to_be_visible(timeout=PROCESS)
    expect(page.locator(tid(f"prompt-text-{UNIT}-{key}"))).to_contain_text(text, timeout=TIMEOUT)
    confirm.click()
    expect(confirm).to_be_hidden(timeout=TIMEOUT)


def test_a_brew_day_from_a_beerxml_recipe_to_the_batch_report(browser: Browser, brewhouse: ServerProcess) -> None:
    server = brewhouse
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(server.base_url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next="), timeout=TIMEOUT)
    page.fill("#u", "brewer")
    page.fill("#p", PASSWORD)
    page.get_by_role("button", name="SIGN IN").click()
    page.locator("#bf-connection[data-state=online]").wait_for(timeout=TIMEOUT)

    # The mash tun is filled from the HLT on the Control Panel: V1 OPEN, Pump 1 START, STOP at 30 L or more.
    page.locator(tid("on-22")).click()
    expect(page.locator(tid("value-22"))).to_have_text("OPEN", timeout=TIMEOUT)
    page.locator(tid("on-23")).click()
    page.wait_for_function("() => parseFloat(document.querySelector('[data-testid=\"value-21\"]').textContent) >= 30",
                           timeout=PROCESS)
    page.locator(tid("off-23")).click()
    expect(page.locator(tid("value-23"))).to_have_text("STOPPED", timeout=TIMEOUT)
    page.locator(tid("off-22")).click()
    expect(page.locator(tid("value-22"))).to_have_text("CLOSED", timeout=TIMEOUT)

    # Import the recipe and review it.
    open_page(page, server, "/recipes")
    page.locator(tid("recipe-upload") + " input[type=file]").set_input_files(str(RECIPE))
    expect(page.locator(tid("recipe-summary"))).to_contain_text("BevForge Step-Mash Blonde", timeout=TIMEOUT)
    steps = page.locator(".bf-recipe-step")
    expect(steps).to_have_count(10, timeout=TIMEOUT)
    # strike water: 0.41 / (15 L / 5 kg) × (52 − 20) + 52 = 56.4 °C; the three rests; the hops before the end
    expect(page.locator(tid("recipe-step-0-target_c"))).to_have_text("Target 56.4 °C")
    expect(page.locator(tid("recipe-step-1-message"))).to_have_value("Add 5.00 kg grain and stir")
    for n, name, minutes in ((2, "Protein rest", 15), (4, "Saccharification", 60), (6, "Mash out", 10)):
        expect(page.locator(tid(f"recipe-step-{n}-name"))).to_have_value(name)
        expect(page.locator(tid(f"recipe-step-{n}-minutes"))).to_have_text(f"Time {minutes} min")
    hops = [("60", "Add 15 g Magnum"), ("15", "Add 25 g Saaz"), ("5", "Add 30 g Hallertau Mittelfrüh")]
    for a, (at_min, message) in enumerate(hops):
        expect(page.locator(tid(f"recipe-step-8-addition-{a}-at"))).to_have_text(f"at {at_min} min before the end")
        expect(page.locator(tid(f"recipe-step-8-addition-{a}-message"))).to_have_value(message)
    # the simulated tun has no grain to take the strike water down to the first rest: strike at 52 °C
    page.locator(tid("recipe-step-0-target_c")).click()
    page.locator(tid("keypad-clear")).click()
    for key in "52":
        page.locator(tid(f"keypad-{key}")).click()
    page.locator(tid("keypad-set")).click()
    expect(page.locator(tid("recipe-step-0-target_c"))).to_have_text("Target 52 °C", timeout=TIMEOUT)
    snapshot(page, "recipes-review")
    page.locator(tid("recipe-save")).click()
    expect(page.locator(tid("message-line"))).to_contain_text("Saved BevForge Step-Mash Blonde", timeout=TIMEOUT)
    page.locator(tid("recipe-start")).click()
    expect(page.locator(tid("confirm-change"))).to_have_text("START on Brewhouse", timeout=TIMEOUT)
    page.locator(tid("confirm-ok")).click()
    expect(page.locator(tid("message-line"))).to_contain_text("started on Brewhouse", timeout=TIMEOUT)

    # The Programs screen: the running step and its status.
    open_page(page, server, "/programs")
    expect(page.locator(tid(f"prog-state-{UNIT}"))).to_have_text("RUNNING", timeout=TIMEOUT)
    expect(page.locator(tid(f"prog-template-{UNIT}"))).to_have_text("BevForge Step-Mash Blonde")
    expect(page.locator(tid(f"prog-step-{UNIT}"))).to_have_text("STEP 1 OF 10 · Strike water (15.0 L)",
                                                               timeout=TIMEOUT)
    expect(page.locator(tid(f"prog-status-{UNIT}"))).to_contain_text("HEATING · heating to 52 °C", timeout=TIMEOUT)
    expect(page.locator(tid(f"prog-prompt-{UNIT}"))).to_have_text("next: Mash in: Add 5.00 kg grain and stir")
    snapshot(page, "programs-running")

    # Mash in: answered in the dialog on the Control Panel (every page shows it).
    open_page(page, server, "/")
    expect(page.locator(tid(f"tile-program-{UNIT}"))).to_contain_text("Strike water (15.0 L)", timeout=TIMEOUT)
    expect(page.locator(tid(f"prompt-confirm-{UNIT}-confirm"))).to_be_visible(timeout=PROCESS)
    page.wait_for_function(SETTLED, timeout=TIMEOUT)  # the dialog's opening animation over: the picture is sharp
    snapshot(page, "program-prompt-dialog")
    answer(page, "confirm", "Add 5.00 kg grain and stir")
    expect(page.locator(tid(f"tile-program-{UNIT}"))).to_contain_text("Protein rest", timeout=TIMEOUT)

    # The rests, shortened on the Programs screen; the heats between them run by themselves.
    open_page(page, server, "/programs")
    for step in (3, 5, 7):
        shorten_to_its_end(page, step, 10)
    # The run-off ends by itself (the tun below 3 L); the boil begins and asks for the first hops at once.
    expect(page.locator(tid(f"prog-step-{UNIT}"))).to_have_text("STEP 9 OF 10 · Boil", timeout=PROCESS)
    answer(page, "addition:0", "Add 15 g Magnum")
    prompt = page.locator(tid(f"prog-prompt-{UNIT}"))
    expect(prompt).to_contain_text("next: Add 25 g Saaz in", timeout=TIMEOUT)
    expect(page.locator(tid(f"prog-status-{UNIT}"))).to_contain_text("IN BAND · boiling", timeout=TIMEOUT)
    snapshot(page, "programs-boil")
    countdown = page.locator(tid(f"prog-countdown-{UNIT}"))
    while seconds(countdown.inner_text()) > 25 * 60:  # the boil shortened to 20-odd minutes: the hops still to come
        before = seconds(countdown.inner_text())
        page.locator(tid(f"prog-shorten-{UNIT}")).click(timeout=TIMEOUT)
        page.wait_for_function(SHORTENED, arg=[9, before], timeout=TIMEOUT)
    answer(page, "addition:1", "Add 25 g Saaz")
    answer(page, "addition:2", "Add 30 g Hallertau Mittelfrüh")
    expect(page.locator(tid(f"prog-step-{UNIT}"))).to_have_text("STEP 10 OF 10 · Chill", timeout=PROCESS)
    page.locator(tid(f"prog-skip-{UNIT}")).click()  # nothing cools the simulated kettle
    expect(page.locator(tid(f"prog-state-{UNIT}"))).to_have_text("✔ COMPLETED", timeout=TIMEOUT)
    expect(page.locator(tid(f"prog-step-{UNIT}"))).to_have_text("program completed")

    # The batch and its printable report.
    open_page(page, server, "/batches")
    table = page.locator(tid("batches-table"))
    expect(table).to_contain_text("BevForge Step-Mash Blonde", timeout=TIMEOUT)
    table.locator("tbody tr").first.click()
    expect(page.locator(tid("batch-title"))).to_contain_text("BevForge Step-Mash Blonde", timeout=TIMEOUT)
    expect(page.locator(tid("batch-header"))).to_contain_text("started by brewer")
    expect(page.locator(tid("batch-steps"))).to_contain_text("Saccharification")
    snapshot(page, "batches-detail")
    with context.expect_page() as opened:
        page.locator(tid("batch-report")).click()
    report = opened.value
    report.set_viewport_size(VIEWPORT)
    expect(report.locator("h1")).to_contain_text("BevForge Step-Mash Blonde", timeout=TIMEOUT)
    step_rows = report.locator("h2:has-text('Steps') + table tbody tr")
    expect(step_rows).to_have_count(10)
    expect(report.locator("h2:has-text('Steps') + table thead")).to_contain_text("Planned (min)")
    expect(report.locator("h2:has-text('Steps') + table thead")).to_contain_text("Actual (min)")
    for n, title in enumerate(["Strike water (15.0 L)", "Mash in", "Protein rest", "Heat to Saccharification",
                               "Saccharification", "Heat to Mash out", "Mash out", "Run off to the kettle", "Boil",
                               "Chill"]):
        expect(step_rows.nth(n)).to_contain_text(title)
    expect(step_rows.nth(4)).to_contain_text("60.0")  # the plan: a 60 min saccharification rest
    expect(step_rows.nth(9)).to_contain_text("skipped")
    actions = report.locator("h2:has-text('Operator actions') + table")
    expect(actions).to_contain_text("brewer")
    expect(actions).to_contain_text("program.confirm")
    expect(actions).to_contain_text("program.skip")
    expect(actions).to_contain_text("program.shorten")
    for _, message in hops:  # each hop addition answered, with its prompt
        expect(actions).to_contain_text(message)
    # the run-off switched the RIMS loop off: no runaway trip of a loop left asking for heat over an empty tun
    expect(report.locator("h2:has-text('Alarms') + *")).not_to_contain_text("tripped")
    expect(actions).not_to_contain_text(re.compile(r"\d\.\d{4}"))  # the time left in whole seconds, not 770.1530…
    snapshot(report, "batch-report")
    context.close()


# The page's size, the header's, and whether the header's buttons stay clear of its right-hand side (the
# alarm counts, the user): the admin's nav is the longest.
FIT = """() => {
  const page = document.scrollingElement;
  const header = document.querySelector('.q-header').getBoundingClientRect();
  const nav = document.querySelector('.bf-nav');
  const right = nav.parentElement.nextElementSibling.getBoundingClientRect();
  const navRight = Math.max(...[...nav.querySelectorAll('button')].map((b) => b.getBoundingClientRect().right));
  const sameRow = right.top < nav.getBoundingClientRect().bottom - 4;
  return {scrollHeight: page.scrollHeight, innerHeight: window.innerHeight, scrollWidth: page.scrollWidth,
          clientWidth: page.clientWidth, header: header.height, clear: !sameRow || navRight <= right.left + 1};
}"""


@pytest.mark.parametrize(("width", "height"), [(1024, 600), (1280, 800), (390, 844)],
                         ids=["kiosk-1024x600", "kiosk-1280x800", "phone-390x844"])
def test_the_brew_day_screens_fit_a_kiosk_and_a_phone(browser: Browser, idle_brewhouse: ServerProcess, width: int,
                                                       height: int) -> None:
    """The admin's header (every page's button) stays one row clear of the alarm counts on a kiosk; one unit's
    Programs page needs no scroll on a kiosk; no brew-day page scrolls sideways on a phone."""
    brewhouse = idle_brewhouse  # signing in and looking change nothing the other screen sizes see
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.goto(brewhouse.base_url + "/")
    page.fill("#u", "head")
    page.fill("#p", PASSWORD)
    page.get_by_role("button", name="SIGN IN").click()
    page.locator("#bf-connection[data-state=online]").wait_for(timeout=TIMEOUT)
    phone = width < 640
    for path in ("/programs", f"/programs/{UNIT}", "/recipes", "/batches"):
        open_page(page, brewhouse, path + ("" if phone else "?kiosk=1"))
        expect(page.locator(tid(f"prog-countdown-{UNIT}") if path.startswith("/programs") else tid("nav-programs"))
               ).to_be_visible(timeout=TIMEOUT)
        settle_layout(page)  # the header's size settles (fonts, a ResizeObserver)
        fit = page.evaluate(FIT)
        assert fit["scrollWidth"] <= fit["clientWidth"], f"{path} scrolls sideways at {width}×{height}: {fit}"
        if not phone:
            assert fit["header"] <= 0.12 * height and fit["clear"], f"{path} header at {width}×{height}: {fit}"
            if path == f"/programs/{UNIT}":
                assert fit["scrollHeight"] <= fit["innerHeight"], f"{path} scrolls at {width}×{height}: {fit}"
    page.context.close()
