"""Page routes: the Control Panel (/), the process mimic (/mimic), alarms (/alarms), trends (/trends), programs
(/programs, /programs/{unit}: ui/programs.py), recipes (/recipes), the batch record (/batches),
the audit journal (/audit, with the technician's RELOAD CONFIG above it: ui/config_reload.py) and the
notifications' status (/notifications: ui/notifications_page.py).

Each page first resolves who is asking (`ui.session.admit`): nobody signed in → a redirect to the
sign-in page and nothing drawn. Then it draws the shared frame and its body for that user (a viewer
gets no controls, a node-limited user only their nodes) and hands its sinks to the page's LiveView;
nothing is polled. `?kiosk=1` (or `ui: {kiosk: true}` in the config) gives the touchscreen layout; with
`ui: {kiosk_start: mimic}` a kiosk opened at `/` is sent to the mimic (`/?view=tiles` shows the tiles).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui
from nicegui.client import Client

from bevforge import permissions
from bevforge.domain import Actor
from bevforge.runtime import Runtime
from ui import layout, session, state
from ui.alarm_page import AlarmPage
from ui.audit_page import AuditView
from ui.batches import BatchesView
from ui.config_reload import ReloadPanel
from ui.controls import Commander
from ui.live import LiveView
from ui.mimic import Mimic
from ui.notifications_page import NotificationsView
from ui.panel import ControlPanel
from ui.programs import ProgramsPage, TileProgramLines
from ui.recipes_page import RecipesPage
from ui.trends import TrendView


def _open(request: Request, client: Client, path: str,
          kiosk: str | None) -> tuple[Runtime, Actor, LiveView] | RedirectResponse:
    """What every page does first: admit the user (or answer with the sign-in redirect, drawing
    nothing) and draw the shared frame, so no page can skip the sign-in check or draw its own header."""
    actor = session.admit(request, client)
    if actor is None:
        return session.redirect_to_sign_in(request, client)
    runtime = state.current()
    return runtime, actor, layout.frame(runtime, path, layout.kiosk_mode(runtime, kiosk), actor)


def register() -> None:
    @ui.page("/", title="Control Panel · BevForge OS")
    def control_panel(request: Request, client: Client, kiosk: str | None = None,
                      view: str | None = None) -> object:
        runtime = state.current()
        if view is None and layout.starts_on_mimic(runtime, kiosk):  # before anything is drawn
            return RedirectResponse("/mimic" + (f"?kiosk={kiosk}" if kiosk is not None else ""))
        opened = _open(request, client, "/", kiosk)
        if isinstance(opened, RedirectResponse):
            return opened
        runtime, actor, live = opened
        panel = ControlPanel(runtime, Commander(runtime, client), actor)
        live.watch(panel.endpoint_ids)
        live.watch_controllers(panel.controller_ids)
        live.add(panel)
        live.add(TileProgramLines(runtime, actor, panel.faceplates))
        return None

    @ui.page("/programs", title="Programs · BevForge OS")
    def programs_page(request: Request, client: Client, kiosk: str | None = None) -> object:
        return _programs(request, client, kiosk, None)

    @ui.page("/programs/{unit}", title="Programs · BevForge OS")
    def program_unit_page(request: Request, client: Client, unit: str, kiosk: str | None = None) -> object:
        return _programs(request, client, kiosk, unit)

    def _programs(request: Request, client: Client, kiosk: str | None, unit: str | None) -> object:
        opened = _open(request, client, "/programs", kiosk)
        if isinstance(opened, RedirectResponse):
            return opened
        runtime, actor, live = opened
        kiosk_on = layout.kiosk_mode(runtime, kiosk)
        suffix = "?kiosk=1" if kiosk_on else ""  # a kiosk stays one on the unit's page
        if unit is None:  # one unit's page (a kiosk by its vessel) keeps its whole height for the program
            layout.brew_day_tabs(runtime, "/programs", kiosk_on)
        live.add(ProgramsPage(runtime, client, actor, unit, suffix))
        return None

    @ui.page("/mimic", title="Plant · BevForge OS")
    def mimic_page(request: Request, client: Client, kiosk: str | None = None) -> object:
        opened = _open(request, client, "/mimic", kiosk)
        if isinstance(opened, RedirectResponse):
            return opened
        runtime, actor, live = opened
        if runtime.config.layout is None:
            ui.label("This brewhouse has no layout: section in its config, so there is no mimic to draw "
                     "(docs/config.md).").mark("no-layout").classes("text-lg")
            return None
        mimic = Mimic(runtime, Commander(runtime, client), actor)
        live.watch(mimic.endpoint_ids)
        live.watch_controllers(mimic.controller_ids)
        live.add(mimic)
        return None

    @ui.page("/alarms", title="Alarms · BevForge OS")
    def alarms_page(request: Request, client: Client, kiosk: str | None = None) -> object:
        opened = _open(request, client, "/alarms", kiosk)
        if isinstance(opened, RedirectResponse):
            return opened
        runtime, actor, live = opened
        live.add(AlarmPage(runtime, client, actor, live))
        return None

    @ui.page("/trends", title="Trends · BevForge OS")
    async def trends_page(request: Request, client: Client, kiosk: str | None = None,
                          endpoint: int | None = None, view: str | None = None, pens: str | None = None) -> object:
        opened = _open(request, client, "/trends", kiosk)
        if isinstance(opened, RedirectResponse):
            return opened
        runtime, actor, live = opened
        if not permissions.visible_endpoints(actor, runtime.config.endpoints):
            ui.label("None of your nodes has a point to trend.").classes("text-lg")
            return None
        pen_ids = [int(p) for p in (pens or "").split(",") if p.strip().isdecimal()]  # `pens=10,12,14`
        trend = TrendView(runtime, live, actor, endpoint, view, pen_ids)
        live.add(trend)
        await trend.load_views()
        await trend.load()
        return None

    @ui.page("/recipes", title="Recipes · BevForge OS")
    async def recipes_page(request: Request, client: Client, kiosk: str | None = None) -> object:
        opened = _open(request, client, "/recipes", kiosk)
        if isinstance(opened, RedirectResponse):
            return opened
        runtime, actor, _live = opened
        layout.brew_day_tabs(runtime, "/recipes", layout.kiosk_mode(runtime, kiosk))
        await RecipesPage(runtime, actor).load()

    @ui.page("/batches", title="Batches · BevForge OS")
    async def batches_page(request: Request, client: Client, kiosk: str | None = None,
                           batch: int | None = None) -> object:
        opened = _open(request, client, "/batches", kiosk)
        if isinstance(opened, RedirectResponse):
            return opened
        runtime, actor, _live = opened
        layout.brew_day_tabs(runtime, "/batches", layout.kiosk_mode(runtime, kiosk))
        await BatchesView(runtime, client, actor, batch).load()
        return None

    @ui.page("/audit", title="Audit journal · BevForge OS")
    async def audit_page(request: Request, client: Client, kiosk: str | None = None) -> object:
        opened = _open(request, client, "/audit", kiosk)
        if isinstance(opened, RedirectResponse):
            return opened
        runtime, actor, _live = opened
        if not session.may(actor, "technician"):
            ui.label(f"The audit journal needs the technician role; you are signed in as {actor.user} "
                     f"({actor.role}).").mark("forbidden").classes("text-lg")
            return None
        ReloadPanel(runtime, actor)
        view = AuditView(runtime, client, actor)
        await view.load()
        return None

    @ui.page("/notifications", title="Notifications · BevForge OS")
    def notifications_page(request: Request, client: Client, kiosk: str | None = None) -> object:
        opened = _open(request, client, "/notifications", kiosk)
        if isinstance(opened, RedirectResponse):
            return opened
        runtime, actor, _live = opened
        if not session.may(actor, "technician"):
            ui.label(f"The notifications' status needs the technician role; you are signed in as {actor.user} "
                     f"({actor.role}).").mark("forbidden").classes("text-lg")
            return None
        NotificationsView(runtime, actor)
        return None
