"""The multi-pen trend in real Chromium against `python main.py` (issue 16.7).

The tests' brewhouse (tests/fixtures/plant.yaml) with the mash tun's RIMS loop
(`tests/support/controllers.RIMS`) given a software setpoint (140) and an output record (141), as
the shipped sample has: the MLT vessel view is then three pens, MLT temperature (°C), the loop's
setpoint (°C) and its output (%) — two y-axes. A command to the setpoint, sent over REST as any
client would, appears on the chart as a command marker with its tooltip. What the chart holds is
read from the ECharts instance in the page (`getOption()`), i.e. what the browser actually draws,
not what the server meant to send.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Browser, expect

from drivers.sim.ports import use_simulator_ports
from tests.e2e.conftest import VIEWPORT, ServerProcess, snapshot
from tests.support.controllers import RIMS, with_controllers
from tests.support.server import config_document, free_port

MLT_TEMPERATURE, MLT_SETPOINT, MLT_OUTPUT = 20, 140, 141
TIMEOUT = 15_000  # ms; a ceiling for a loaded machine, not a speed requirement

# The chart's options as ECharts holds them in the page: pen series names, y-axis names and the
# command markers' tooltips.
CHART_JS = """() => {
  const el = document.querySelector('[data-testid="trend-chart"]');
  const chart = el && getElement(el) && getElement(el).chart;
  if (!chart) return null;
  const option = chart.getOption();
  const markers = option.series.find(s => s.id === "markers-command");
  return {
    pens: option.series.filter(s => String(s.id).startsWith("pen-")).map(s => s.name),
    axes: option.yAxis.map(a => a.name),
    commands: markers && markers.markLine && markers.markLine.data ? markers.markLine.data.map(d => d.name) : [],
    zoom: option.dataZoom.map(z => z.type),
    window: [option.dataZoom[0].start, option.dataZoom[0].end],
  };
}"""


def tid(name: str) -> str:
    return f'[data-testid="{name}"]'


@pytest.fixture
def brewhouse_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """The fixture brewhouse with the RIMS loop and its output record, the simulator on a free port."""
    doc = config_document()
    with_controllers([{**RIMS, "output_record": {"id": MLT_OUTPUT, "name": "mlt_output"}}])(doc)
    for endpoint in doc["endpoints"]:
        if endpoint.get("poll_interval_s") == 0.05:
            endpoint["poll_interval_s"] = 0.5  # a browser test needs no fast sampling
    use_simulator_ports(doc, free_port(), str(tmp_path / "probe"))
    config = tmp_path / "plant.yaml"
    config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    proc = ServerProcess(free_port(), tmp_path / "bevforge.db", tmp_path / "server.log", config)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def test_the_mlt_view_shows_three_pens_on_two_axes_and_a_command_marker(
        browser: Browser, brewhouse_server: ServerProcess) -> None:
    server = brewhouse_server
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(server.base_url + "/trends")
    page.locator("#bf-connection[data-state=online]").wait_for(timeout=TIMEOUT)
    expect(page.locator(tid("trend-summary"))).to_contain_text("following live", timeout=TIMEOUT)

    page.locator(tid("trend-view")).click()
    page.get_by_role("option", name="Vessel: MLT").click()
    for pen in (MLT_TEMPERATURE, MLT_SETPOINT, MLT_OUTPUT):
        expect(page.locator(tid(f"trend-pen-{pen}"))).to_be_visible(timeout=TIMEOUT)
    expect(page.locator(tid("trend-summary"))).to_contain_text("output", timeout=TIMEOUT)
    page.wait_for_function(f"() => {{ const o = ({CHART_JS})(); return o && o.pens.length === 3; }}",
                           timeout=TIMEOUT)
    shown = page.evaluate(CHART_JS)
    assert shown["pens"] == ["MLT temperature (°C)", "Mash temperature setpoint (°C)", "Mash temperature output (%)"]
    assert shown["axes"] == ["°C", "%"]
    assert shown["zoom"] == ["inside", "slider"]
    assert shown["commands"] == []

    answer = server.post("/api/os/command", {"endpointId": MLT_SETPOINT, "value": 67})
    assert answer.status_code in (200, 201, 202), answer.text
    page.wait_for_function(f"() => {{ const o = ({CHART_JS})(); return o && o.commands.length === 1; }}",
                           timeout=TIMEOUT)
    [marker] = page.evaluate(CHART_JS)["commands"]
    assert "set Mash temperature setpoint to 67 °C" in marker
    expect(page.locator(tid("trend-summary"))).to_contain_text("1 command,", timeout=TIMEOUT)
    page.get_by_role("button", name="15 MIN").click()  # a preset reloads pens and markers over its range
    expect(page.locator(tid("trend-summary"))).to_contain_text("buckets of 2 s", timeout=TIMEOUT)
    page.wait_for_function(f"() => {{ const o = ({CHART_JS})(); return o && o.commands.length === 1; }}",
                           timeout=TIMEOUT)
    snapshot(page, "trends-multi-pen")

    # Zoom as a finger would (ECharts' own dataZoom action) to five seconds around the command: a window
    # in the past pauses the live tail, so the chart holds still …
    zoom_js = """(window) => { const el = document.querySelector('[data-testid="trend-chart"]');
                  getElement(el).chart.dispatchAction({type: "dataZoom", ...window}); }"""
    at = page.evaluate("""() => { const el = document.querySelector('[data-testid="trend-chart"]');
        const markers = getElement(el).chart.getOption().series.find(s => s.id === "markers-command");
        return markers.markLine.data[0].xAxis; }""")
    page.wait_for_function("""(at) => { const el = document.querySelector('[data-testid="trend-chart"]');
        const pen = getElement(el).chart.getOption().series.find(s => s.id === "pen-20");
        return pen.data.some(([t, v]) => t >= at + 6000 && v !== null); }""", arg=at, timeout=TIMEOUT)  # later data
    page.evaluate(zoom_js, {"startValue": at - 4000, "endValue": at + 1000})
    expect(page.locator(tid("trend-summary"))).to_contain_text("paused (zoomed into the past)", timeout=TIMEOUT)
    expect(page.locator(tid("trend-live"))).to_be_visible()
    # … and the marker's tooltip says who set what and the result: hover its line.
    where = page.evaluate("""(at) => { const el = document.querySelector('[data-testid="trend-chart"]');
        const box = el.getBoundingClientRect();
        const x = getElement(el).chart.convertToPixel({xAxisIndex: 0}, at);
        return {x: box.left + x, y: box.top + box.height / 2}; }""",
                          at)
    page.mouse.move(where["x"] + 40, where["y"])
    page.mouse.move(where["x"], where["y"])
    tooltip = page.locator("div[style*='z-index: 9999999']", has_text="set Mash temperature setpoint")
    expect(tooltip).to_contain_text("to 67 °C: succeeded", timeout=TIMEOUT)
    snapshot(page, "trends-marker-tooltip")
    # … LIVE shows the whole range again, following …
    page.locator(tid("trend-live")).click()
    expect(page.locator(tid("trend-summary"))).to_contain_text("following live", timeout=TIMEOUT)
    page.wait_for_function(f"() => {{ const o = ({CHART_JS})(); return o.window[0] === 0 && o.window[1] === 100; }}",
                           timeout=TIMEOUT)
    # … and a window that still ends "now" keeps following, its zoom kept through the live updates.
    page.evaluate(zoom_js, {"start": 60, "end": 100})
    samples = page.locator(tid("trend-summary")).text_content()
    expect(page.locator(tid("trend-summary"))).not_to_have_text(samples or "", timeout=TIMEOUT)  # redrawn since
    expect(page.locator(tid("trend-summary"))).to_contain_text("following live")
    assert page.evaluate(CHART_JS)["window"] == [60, 100]


def test_a_reload_keeps_the_pens_and_the_view_the_address_names(browser: Browser, server: ServerProcess) -> None:
    """The trend opened on one pen (`?endpoint=14`, as a link to it does) and then changed: the address
    follows what is shown, so F5 brings back that view and those pens, not the link's pen or the default."""
    page = browser.new_context(viewport=VIEWPORT).new_page()

    def reload_and_wait() -> None:
        page.reload()
        page.locator("#bf-connection[data-state=online]").wait_for(timeout=TIMEOUT)
        expect(page.locator(tid("trend-summary"))).to_contain_text("following live", timeout=TIMEOUT)

    def shown_pens() -> list[str]:
        return page.locator('[data-testid^="trend-pen-"]').evaluate_all("els => els.map(e => e.dataset.testid)")

    page.goto(server.base_url + "/trends?endpoint=14&kiosk=1")
    page.locator("#bf-connection[data-state=online]").wait_for(timeout=TIMEOUT)
    expect(page.locator(tid("trend-pen-14"))).to_be_visible(timeout=TIMEOUT)
    reload_and_wait()
    assert shown_pens() == ["trend-pen-14"]

    page.locator(tid("trend-view")).click()  # another view: its name goes into the address, kiosk stays
    page.get_by_role("option", name="Vessel: MLT").click()
    expect(page.locator(tid("trend-pen-20"))).to_be_visible(timeout=TIMEOUT)
    expect(page).to_have_url(re.compile(r"/trends\?kiosk=1&view=MLT$"), timeout=TIMEOUT)
    reload_and_wait()
    expect(page.locator(tid("trend-pen-20"))).to_be_visible(timeout=TIMEOUT)
    assert shown_pens() == ["trend-pen-20"]
    expect(page.locator(tid("trend-view"))).to_contain_text("Vessel: MLT")
    assert page.evaluate("document.body.classList.contains('bf-kiosk')")

    page.locator(tid("trend-add-pen")).click()  # a pen added: the address lists the pens
    page.get_by_role("option", name="HLT volume (HLT)").click()
    expect(page.locator(tid("trend-pen-14"))).to_be_visible(timeout=TIMEOUT)
    expect(page).to_have_url(re.compile(r"/trends\?kiosk=1&pens=20%2C14$"), timeout=TIMEOUT)
    reload_and_wait()
    expect(page.locator(tid("trend-pen-14"))).to_be_visible(timeout=TIMEOUT)
    assert shown_pens() == ["trend-pen-20", "trend-pen-14"]

    page.locator(tid("trend-pen-20")).click()  # one removed: back to one pen, as the link named it
    expect(page.locator(tid("trend-pen-20"))).to_have_count(0, timeout=TIMEOUT)
    expect(page).to_have_url(re.compile(r"/trends\?kiosk=1&endpoint=14$"), timeout=TIMEOUT)
    reload_and_wait()
    expect(page.locator(tid("trend-pen-14"))).to_be_visible(timeout=TIMEOUT)
    assert shown_pens() == ["trend-pen-14"]
    page.context.close()
