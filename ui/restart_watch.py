"""The restart question on a screen that was open when the panel restarted, before its page is drawn again.

After a restart a program comes back paused and asks resume / restart step / abort (issue 15); every
page shows that as its prompt dialog (ui/programs.py). But a page that was open when the panel stopped
is drawn again only after the new process has imported its screens and the browser has rebuilt the
page: on a kiosk PC about 4-5 s after the process starts, while the API and `/ws` answer after about
2 s (bench/programs.py has the figures). An operator at the kettle should see at once that the
program is paused and why, so this script, which lives in the page and not on the server, bridges
the gap:

- when the screen's own socket closes (the server went away), it opens the panel's public `/ws`
  (authenticated by the session cookie or the kiosk station's address, as every other client) every
  50 ms (every second after the first 30 s) until it answers, subscribes to `programs` and, as soon
  as a unit's frame carries `resumeQuestion`, draws the question over the page: unit, step, the program's own message
  ("Mash rest: 45 of 60 min left; offline 12 min; …") and RESUME / RESTART STEP / ABORT;
- on a kiosk it sounds the prompt tone (ui/annunciator.py) while the question is up, unless a tone
  sounds already;
- those buttons call the REST API the same way any client would (`POST /api/os/programs/{unit}/…`,
  same permissions, audited by the program service); ABORT needs a second press (CONFIRM ABORT), as
  the dialog's abort needs its confirmation;
- the question is kept in the tab's `sessionStorage` so the reload NiceGUI does when the new server
  answers draws it again at once; it goes away when it is answered (its frame says so) or when the
  reloaded page is live with present values (`window.bevforgeConnection().fresh`, ui/connection.py):
  from then on the page's own dialog asks the question, with the kiosk tone.

A page asked for while the restarted panel has not yet loaded its screens gets the starting page
instead (bevforge/api/screens_gate.py, built by main.py with this script): it watches at once, and reloads
itself when the screens are there.

The script and its style are `restart_watch.js` and `restart_watch.css` beside this module. It only reads
what `/ws` already sends to that user and acts only through the REST API, so it adds
no permission of its own: a user who may not run the unit gets the same 403 as over REST, shown in
the overlay.
"""

from __future__ import annotations

from pathlib import Path

from nicegui import ui

HERE = Path(__file__).resolve().parent
SCRIPT_FILE, CSS_FILE = HERE / "restart_watch.js", HERE / "restart_watch.css"  # also the starting page's (main.py)
STORAGE_KEY = "bf-restart-question"  # the tab's sessionStorage key the script keeps the question under
SCRIPT = f"<script>{SCRIPT_FILE.read_text(encoding='utf-8')}</script>"
CSS = CSS_FILE.read_text(encoding="utf-8")


def add_watch() -> None:
    """Put the watcher on the current page (outside the Vue app: it has to work while the app is gone)."""
    ui.add_css(CSS)
    ui.add_body_html(SCRIPT)
