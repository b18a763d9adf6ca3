"""The connection indicator: a screen that cannot reach the server says so and disables its controls.

It runs in the browser because it has to work precisely when the server cannot: the script hooks
NiceGUI's Socket.IO client (`window.socket`, created when the Vue app mounts) and
- on `disconnect` (server stopped: the socket closes at once) shows SERVER UNREACHABLE and disables
  every `.bf-control` (the `disabled` property, plus CSS that blocks pointer events for the rest);
- pings the server over the same socket every second with a 1.5 s answer timeout, so a silent network
  (Wi-Fi gone, cable pulled: no close ever arrives) is reported within 3 s too, instead of after
  Socket.IO's ping timeout;
- while there is no link, every value is drawn as not live (`bf-nolink`: greyed, hatched, each LIVE
  badge reads NO LINK): a frozen number must not look like the kettle's present temperature;
- on `connect` enables the controls again, but the values stay "no link" until the server says it
  has redrawn them from the present state (`window.bevforgeFresh()`, called by the page's LiveView
  after its resync): live again only with fresh data. Resynchronising is the server's job: a
  reconnect within the reconnect window replays missed updates and re-runs the page's connect
  handler (which re-reads the plant state); after a server restart the old client id is unknown,
  NiceGUI's implicit handshake fails and the page reloads by itself, drawing the present state.
"""

from __future__ import annotations

from typing import Any

from nicegui import core, ui

PING_EVENT = "bevforge_ping"

SCRIPT = """
<div id="bf-connection" data-state="connecting" role="status" aria-live="assertive">CONNECTING…</div>
<script>document.body.classList.add('bf-nolink');</script>
<script>
(function () {
  const PING_EVERY_MS = 1000, PING_TIMEOUT_MS = 1500;
  let online = false, pingFailed = false, hooked = false, fresh = false;
  function controls() {
    const out = [];
    document.querySelectorAll('.bf-control').forEach((el) => {
      if (el.matches('button, input, select, textarea')) out.push(el);
      el.querySelectorAll('button, input, select, textarea').forEach((c) => out.push(c));
    });
    return out;
  }
  function show(state, text) {
    const box = document.getElementById('bf-connection');
    if (box && box.dataset.state !== state) box.dataset.state = state;
    if (box && box.textContent !== text) box.textContent = text;
    const up = state === 'online';
    document.body.classList.toggle('bf-offline', !up);
    if (!up) { fresh = false; document.body.classList.add('bf-nolink'); }
    for (const el of controls()) {
      if (!up && !el.disabled) { el.disabled = true; el.dataset.bfOffline = '1'; }
      if (up && el.dataset.bfOffline) { el.disabled = false; delete el.dataset.bfOffline; }
    }
  }
  function render() {
    if (online && !pingFailed) {
      show('online', '● CONNECTED');
      if (fresh) document.body.classList.remove('bf-nolink');
    }
    else if (online) show('offline', '✖ SERVER NOT ANSWERING — controls disabled, values frozen. Retrying…');
    else show('offline', '✖ SERVER UNREACHABLE — controls disabled, values frozen. Reconnecting…');
  }
  window.bevforgeConnection = () => ({ online: online && !pingFailed, fresh: fresh });
  window.bevforgeFresh = () => {
    fresh = true;
    if (online && !pingFailed) document.body.classList.remove('bf-nolink');
  };
  function hook() {
    if (hooked || !window.socket) return;
    hooked = true;
    const socket = window.socket;
    socket.on('connect', () => { online = true; pingFailed = false; render(); });
    socket.on('disconnect', () => { online = false; render(); });
    socket.on('connect_error', () => { online = false; render(); });
    if (socket.connected) { online = true; render(); }
    setInterval(() => {
      if (!socket.connected) return;
      socket.timeout(PING_TIMEOUT_MS).emit('%(event)s', (err) => {
        const failed = !!err;
        if (failed !== pingFailed) { pingFailed = failed; render(); }
      });
    }, PING_EVERY_MS);
  }
  const wait = setInterval(() => { hook(); if (hooked) clearInterval(wait); }, 50);
  // Elements drawn while offline (a dialog opening) must come up disabled too.
  new MutationObserver(() => { if (document.body.classList.contains('bf-offline')) render(); })
    .observe(document.documentElement, { childList: true, subtree: true });
})();
</script>
""".replace("%(event)s", PING_EVENT)

_registered = False


def register_ping() -> None:
    """Answer the browser's liveness ping on NiceGUI's own Socket.IO server (once per process)."""
    global _registered
    if _registered:
        return

    async def _pong(_sid: str, *_args: Any) -> bool:
        return True

    core.sio.on(PING_EVENT, _pong)
    _registered = True


def add_indicator() -> None:
    """Put the indicator and its script on the current page (outside the Vue app, so it survives)."""
    ui.add_body_html(SCRIPT)
