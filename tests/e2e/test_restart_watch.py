"""Chromium: a screen open when the panel restarts asks the program's restart question before it is drawn
again (ui/restart_watch.py), answers it through the REST API as the signed-in user, and keeps it through
the page's reload until the page's own dialog asks it.

The plant is the brew-day brewhouse (sign-in required) with a long `wait` template, so the program is
mid-step when the server is killed. The screens' own socket (NiceGUI's `/_nicegui_ws`) is refused by
the browser while a test wants the page not yet drawn again: that is the moment between the new process
answering `/ws` and its screens being loaded, held open so the test does not depend on how long it lasts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, BrowserContext, BrowserType, Page, Route, WebSocketRoute, expect

from bevforge.api.screens_gate import starting_page
from drivers.sim.ports import use_simulator_ports
from tests.e2e.conftest import PASSWORD, VIEWPORT, ServerProcess, signed_in_server, snapshot
from tests.e2e.test_brew_day import brew_day_plant
from tests.support.server import ROOT, config_document, free_port

UNIT = "brewhouse"
TIMEOUT = 15_000  # ms: a ceiling for a loaded machine, not a speed requirement
LONG_REST = {"id": "long_rest", "name": "Long rest", "unit": UNIT,
             "steps": [{"type": "wait", "name": "Rest", "minutes": 600}]}
LIVE = "() => window.bevforgeConnection && window.bevforgeConnection().online && window.bevforgeConnection().fresh"
SCREENS_SOCKET = re.compile(r".*/_nicegui_ws/.*")


def tid(name: str) -> str:
    return f'[data-testid="{name}"]'


@pytest.fixture
def brewhouse(tmp_path: Path) -> Iterator[ServerProcess]:
    doc = config_document()
    brew_day_plant(doc)
    doc["programs"]["templates"].append(LONG_REST)
    use_simulator_ports(doc, free_port(), str(tmp_path / "probe"))
    config = tmp_path / "brewhouse.yaml"
    config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    yield from signed_in_server(tmp_path, config, {"brewer": "operator", "watcher": "viewer", "head": "admin"})


def signed_in(browser: Browser, server: ServerProcess, user: str, path: str = "/") -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(server.base_url + path)
    page.fill("#u", user)
    page.fill("#p", PASSWORD)
    page.get_by_role("button", name="SIGN IN").click()
    page.wait_for_function(LIVE, timeout=TIMEOUT)
    if page.url != server.base_url + path:
        page.goto(server.base_url + path)
        page.wait_for_function(LIVE, timeout=TIMEOUT)
    return context, page


def hold_the_screens_socket(context: BrowserContext) -> None:
    """Refuse NiceGUI's socket (WebSocket and its polling fallback): the page cannot reconnect, so it is not
    drawn again, as in the seconds before a restarted panel has loaded its screens."""
    def refuse(ws: WebSocketRoute) -> None:
        ws.close()

    context.route_web_socket(SCREENS_SOCKET, refuse)
    context.route(SCREENS_SOCKET, lambda route: route.abort())


def release_the_screens_socket(context: BrowserContext) -> None:
    context.unroute(SCREENS_SOCKET)
    context.route_web_socket(SCREENS_SOCKET, lambda ws: ws.connect_to_server())


def killed_and_started_again(server: ServerProcess) -> None:
    """kill -9 mid-step, then the same command again on the same database (up when its devices answer)."""
    assert server.process is not None
    server.process.kill()
    server.process.wait()
    server.process = None
    server.start()


def program(server: ServerProcess) -> dict[str, Any]:
    return server.get(f"/api/os/programs/{UNIT}")


def start_long_rest(server: ServerProcess) -> None:
    answer = server.post(f"/api/os/programs/{UNIT}/start", {"templateId": "long_rest"})
    assert answer.status_code == 200, answer.text
    assert program(server)["state"] == "running"


def test_an_open_screen_asks_the_restart_question_before_it_is_drawn_again_and_answers_it(
        browser: Browser, brewhouse: ServerProcess) -> None:
    server = brewhouse
    brewer_context, brewer = signed_in(browser, server, "brewer", "/?kiosk=1")  # the kiosk by the kettles
    watcher_context, watcher = signed_in(browser, server, "watcher")
    start_long_rest(server)
    assert brewer.evaluate("window.bevforgeTone.status().playing") is None
    for context in (brewer_context, watcher_context):
        hold_the_screens_socket(context)

    killed_and_started_again(server)

    # both open screens ask, over the old page (not drawn again: its socket is held), in the program's words
    for page in (brewer, watcher):
        question = page.locator(tid(f"restart-prompt-text-{UNIT}"))
        expect(question).to_contain_text("Rest:", timeout=TIMEOUT)
        expect(question).to_contain_text("Resume", timeout=TIMEOUT)
        expect(page.locator(tid(f"restart-{UNIT}"))).to_contain_text("Brewhouse · Long rest · step 1: Rest")
        assert page.evaluate("window.bevforgeConnection().online") is False
    brewer.wait_for_function("window.bevforgeTone.status().playing === 'prompt'", timeout=TIMEOUT)  # the kiosk's tone
    expect(brewer.locator(tid(f"restart-resume-{UNIT}"))).to_be_visible()
    snapshot(brewer, "restart-question")
    # a viewer sees the question but cannot answer it: only CLOSE
    expect(watcher.locator(tid(f"restart-{UNIT}"))).to_contain_text("An operator must answer this question.")
    expect(watcher.locator(tid(f"restart-close-{UNIT}"))).to_be_visible()
    expect(watcher.locator(tid(f"restart-resume-{UNIT}"))).to_have_count(0)
    # ABORT needs a second press: the first only asks for it
    abort = brewer.locator(tid(f"restart-abort-{UNIT}"))
    abort.click()
    expect(abort).to_have_text("CONFIRM ABORT")
    expect(brewer.locator(tid(f"restart-{UNIT}"))).to_contain_text("controllers are switched off")
    assert program(server)["state"] == "paused"
    # RESUME: through the REST API as the signed-in brewer; the question goes from every screen
    brewer.locator(tid(f"restart-resume-{UNIT}")).click()
    for page in (brewer, watcher):
        expect(page.locator(tid("restart-overlay"))).to_have_count(0, timeout=TIMEOUT)
    assert brewer.evaluate("window.bevforgeTone.status().playing") is None
    frame = program(server)
    assert frame["state"] == "running" and frame["resumeQuestion"] is False
    resumed = [e for e in server.get("/api/os/audit?action=program.resume") if e["action"] == "program.resume"]
    assert [e["user"] for e in resumed] == ["brewer"]

    # the screens' socket back: the page is drawn again from the new process, live, with no question
    release_the_screens_socket(brewer_context)
    brewer.wait_for_function(LIVE, timeout=TIMEOUT)
    expect(brewer.locator(tid(f"prompt-text-{UNIT}-restart"))).to_have_count(0)
    expect(brewer.locator(tid("restart-overlay"))).to_have_count(0)
    brewer_context.close()
    watcher_context.close()


def test_the_question_stays_through_the_page_s_reload_until_the_page_s_own_dialog_asks_it(
        browser: Browser, brewhouse: ServerProcess) -> None:
    server = brewhouse
    context, page = signed_in(browser, server, "brewer")
    start_long_rest(server)
    hold_the_screens_socket(context)

    killed_and_started_again(server)
    expect(page.locator(tid(f"restart-prompt-text-{UNIT}"))).to_contain_text("Resume", timeout=TIMEOUT)

    # the reload NiceGUI does once the new process has its screens: the new page asks at once, before it is
    # live (its socket still held), from what this tab kept and from /ws
    page.reload(wait_until="commit")
    question = page.locator(tid(f"restart-prompt-text-{UNIT}"))
    expect(question).to_contain_text("Resume", timeout=TIMEOUT)
    assert page.evaluate("window.bevforgeConnection ? window.bevforgeConnection().fresh : false") is False

    # live: the page's own dialog asks from now on, the watch's question has gone
    release_the_screens_socket(context)
    page.wait_for_function(LIVE, timeout=TIMEOUT)
    expect(page.locator(tid(f"prompt-text-{UNIT}-restart"))).to_contain_text("Resume", timeout=TIMEOUT)
    expect(page.locator(tid("restart-overlay"))).to_have_count(0)
    assert page.evaluate("sessionStorage.getItem('bf-restart-question')") is None
    # and it is answered there as ever
    page.locator(tid(f"prompt-resume-{UNIT}")).click()
    expect(page.locator(tid(f"prompt-text-{UNIT}-restart"))).to_have_count(0, timeout=TIMEOUT)
    assert program(server)["state"] == "running"
    context.close()


@pytest.fixture
def lenient_browser(browser_type: BrowserType, browser_type_launch_args: dict[str, Any]) -> Iterator[Browser]:
    """Chromium without its local-network access checks: a page the test itself serves (`route.fulfill`) has
    no address, so Chromium would count it as a public site and refuse its connections to 127.0.0.1; the
    same page served by the panel is on the panel's own address and is not refused."""
    args = [*browser_type_launch_args["args"], "--disable-features=LocalNetworkAccessChecks"]
    browser = browser_type.launch(**{**browser_type_launch_args, "args": args})
    yield browser
    browser.close()


def test_a_page_opened_while_the_screens_load_gets_the_starting_page_which_asks_and_then_reloads(
        lenient_browser: Browser, brewhouse: ServerProcess) -> None:
    """The starting page the gate answers a page request with while the screens load (main.py builds it from
    ui/restart_watch.js and .css), served here for the first request, as the gate would have: it asks the
    question from /ws at once, and reloads when the gate says the screens are open (held by the test until
    it has looked)."""
    server = brewhouse
    context, page = signed_in(lenient_browser, server, "brewer")
    start_long_rest(server)
    killed_and_started_again(server)
    page.close()

    body = starting_page("Test brewery", False, (ROOT / "ui" / "restart_watch.js").read_text(encoding="utf-8"),
                         (ROOT / "ui" / "restart_watch.css").read_text(encoding="utf-8"))
    served, held = [], True

    def as_the_gate(route: Route) -> None:
        """The first page request gets the starting page; its screens-ready request is refused while held."""
        if not served and route.request.is_navigation_request():
            served.append(route.request.url)
            route.fulfill(status=503, body=body, content_type="text/html")
        elif held and route.request.headers.get("x-bevforge-screens") == "wait":
            route.abort()  # the page asks again a second later
        else:
            route.fallback()

    page = context.new_page()
    page.route(server.base_url + "/", as_the_gate)
    page.goto(server.base_url + "/")
    expect(page.locator("#bf-starting")).to_contain_text("Test brewery: PANEL STARTING")
    expect(page.locator(tid(f"restart-prompt-text-{UNIT}"))).to_contain_text("Resume", timeout=TIMEOUT)
    expect(page.locator(tid(f"restart-resume-{UNIT}"))).to_be_visible(timeout=TIMEOUT)  # the brewer's cookie

    held = False  # the screens are there: the page reloads by itself and asks in its own dialog
    page.wait_for_function(LIVE, timeout=TIMEOUT)
    expect(page.locator("#bf-starting")).to_have_count(0)
    expect(page.locator(tid(f"prompt-text-{UNIT}-restart"))).to_contain_text("Resume", timeout=TIMEOUT)
    expect(page.locator(tid("restart-overlay"))).to_have_count(0)
    context.close()
