"""The look of every screen: an ISA-101 grey high-performance HMI (REFERENCE.md §2).

Grey and muted for everything normal; saturated colour only for abnormal states (alarms, a value
that is not live, a lost connection), and never colour alone: every abnormal state also carries a
word and a shape (STALE with hatching, BAD with a cross-hatch, ▲ HIGH, ◆ CRITICAL).
Touch targets are at least 48 px; kiosk mode makes type and targets larger still and removes
hover-only affordances (tooltips, hover highlights), because a finger cannot hover.
"""

from __future__ import annotations

from nicegui import ui

# Alarm colours are reserved for alarms (ISA-101): nothing else on the screen uses them.
SEVERITY_COLOURS = {"critical": "#c62828", "high": "#ef6c00", "medium": "#f9a825", "low": "#5e35b1",
                    "alert": "#6d6d6d"}
SEVERITY_SHAPES = {"critical": "◆", "high": "▲", "medium": "■", "low": "●", "alert": "○"}
SEVERITY_ORDER = ("critical", "high", "medium", "low")  # the alarm priorities counted; an alert needs no ACK

CSS = """
:root { --bf-bg: #d6d6d6; --bf-panel: #e8e8e8; --bf-ink: #202020; --bf-muted: #5f5f5f; --bf-line: #9e9e9e; }
body { background: var(--bf-bg); color: var(--bf-ink); font-size: 16px; }
.nicegui-content { padding: 12px; }
.q-header.bf-header { background: #3c3c3c; color: #f0f0f0; }
.bf-node { background: #cfcfcf; border: 1px solid var(--bf-line); border-radius: 6px; padding: 8px; }
.bf-node-title { font-size: 1.05rem; font-weight: 600; color: var(--bf-muted); text-transform: uppercase;
                 letter-spacing: .05em; }
.bf-tile { background: var(--bf-panel); border: 1px solid var(--bf-line); border-radius: 6px; width: 360px;
           box-shadow: none; }
.bf-tile-title { font-size: 1.15rem; font-weight: 600; }
.bf-row { border-top: 1px solid #cdcdcd; padding: 6px 4px; width: 100%; }
.bf-name { color: var(--bf-muted); flex: 1 1 7rem; min-width: 6rem; }
.bf-value { font-size: 1.45rem; font-weight: 600; font-variant-numeric: tabular-nums; min-width: 6.5rem; }
.bf-badge { font-size: .8rem; font-weight: 700; padding: 2px 8px; border-radius: 3px; border: 1px solid;
            letter-spacing: .05em; }
.bf-badge-good { color: var(--bf-muted); border-color: transparent; }
/* Not live: hatched, struck through with a "?" prefix and a word; never mistaken for a live value. */
.bf-row-stale .bf-value, .bf-row-bad .bf-value { color: #6d6d6d; font-style: italic; }
.bf-row-stale { background: repeating-linear-gradient(135deg, #e8e8e8 0 8px, #d0d0d0 8px 16px); }
.bf-row-bad { background: repeating-linear-gradient(45deg, #e0e0e0 0 6px, #b8b8b8 6px 12px); }
.bf-badge-stale { background: #fff3c4; color: #5b4500; border-color: #5b4500; }
.bf-badge-bad { background: #ffffff; color: #7a0000; border-color: #7a0000; border-style: dashed; }
.bf-detail { font-size: .85rem; color: var(--bf-muted); max-width: 100%; overflow-wrap: anywhere; }
.bf-btn { min-height: 48px; min-width: 96px; font-size: 1rem; font-weight: 700; letter-spacing: .04em; }
.bf-btn-stop { min-width: 120px; margin-left: 16px; }
/* A writable number opens the keypad (ui/keypad.py) when its value or its SET button is tapped. */
.bf-tappable { cursor: pointer; text-decoration: underline dotted #9e9e9e; text-underline-offset: 6px; }
/* The keypad: 64 px keys in a 4-column grid, fits a 1024×600 kiosk without scrolling (≈ 480 px high).
   Grey keys; the one accent is SET. A refused entry keeps its text and says why (✖, bold, outlined). */
.bf-keypad { width: 420px; max-width: 96vw; padding: 12px; gap: 8px; background: var(--bf-panel); }
.bf-keypad-title { font-size: 1.25rem; font-weight: 700; }
.bf-keypad-display { flex: 1 1 auto; min-height: 64px; background: #ffffff; border: 2px solid #202020;
                     border-radius: 4px; padding: 0 10px; justify-content: flex-end; gap: 6px; }
.bf-keypad-text { font-size: 2rem; font-weight: 700; font-variant-numeric: tabular-nums; }
.bf-keypad-unit { font-size: 1.2rem; color: var(--bf-muted); }
.bf-keypad-reason { min-height: 1.6rem; color: var(--bf-muted); }
.bf-keypad-refused { color: #202020; font-weight: 700; border: 2px dashed #202020; border-radius: 4px;
                     padding: 0 8px; background: #ffffff; }
.bf-keypad-keys { width: 100%; gap: 8px; }
.bf-key { min-height: 64px; min-width: 64px; font-size: 1.6rem; font-weight: 700; background: #f7f7f7;
          color: #202020; border: 1px solid var(--bf-line); border-radius: 6px; }
.bf-key-fn { font-size: 1rem; background: #cfcfcf; letter-spacing: .04em; }
.bf-key-set { font-size: 1.1rem; background: #1f4e79; color: #ffffff; border-color: #1f4e79; letter-spacing: .04em; }
.bf-key.disabled { opacity: .35 !important; }
.bf-pending { font-style: italic; color: var(--bf-ink); border: 1px dashed var(--bf-ink); border-radius: 4px;
              padding: 2px 8px; }
.bf-blocked { background: #ffffff; border: 2px solid #202020; border-radius: 4px; padding: 4px 8px;
              font-weight: 600; }
.bf-failed { background: #ffffff; border: 2px dashed #202020; border-radius: 4px; padding: 4px 8px; }
.bf-alarm-banner { border-radius: 4px; padding: 4px 10px; font-weight: 700; background: #4a4a4a; min-height: 48px; }
.bf-alarm-count { padding: 2px 8px; border-radius: 3px; margin-left: 6px; color: #fff; }
.bf-alarm-count-zero { background: transparent; color: #bdbdbd; font-weight: 400; }
.bf-alarm-row { background: var(--bf-panel); border-left: 8px solid var(--bf-line); padding: 6px 10px; }
.bf-alarm-dialog { border: 6px solid #c62828; min-width: 420px; }
.bf-nav .q-btn { min-height: 48px; }
/* Flood: a striped alarm-coloured band with words; the first-out alarm is outlined and labelled. */
.bf-flood { background: repeating-linear-gradient(135deg, #ef6c00 0 14px, #d65f00 14px 28px); color: #fff;
            padding: 6px 12px; border-radius: 4px; font-size: 1.05rem; }
.bf-first-out { outline: 4px solid #202020; outline-offset: -2px; }
.bf-first-out-badge { background: #202020; color: #fff; border-color: #202020; }
.bf-annunciator { background: #c62828; color: #fff; padding: 2px 4px 2px 10px; border-radius: 4px; }
.bf-who { font-weight: 600; padding: 0 6px; }
.bf-signout button { min-height: 48px; padding: 0 14px; background: transparent; color: #f0f0f0;
                     border: 1px solid #bdbdbd; border-radius: 4px; font-weight: 700; letter-spacing: .04em;
                     cursor: pointer; }
.bf-tabs .q-tab { min-height: 48px; font-weight: 700; }
.bf-tab-panels { background: transparent; }
/* Controller faceplates: grey when normal. An abnormal state is a word with a shape and a border in
   the colour of the alarm it raises (tripped / input fault: high; held: medium). */
.bf-faceplate { width: 360px; }
.bf-fp-state { font-weight: 700; letter-spacing: .05em; padding: 2px 8px; border-radius: 3px;
               border: 2px solid transparent; color: var(--bf-muted); }
.bf-fp-tripped .bf-fp-state, .bf-fp-fault .bf-fp-state { background: #ef6c00; color: #fff; border-color: #202020; }
.bf-fp-held .bf-fp-state { background: #f9a825; color: #202020; border-color: #202020; }
.bf-fp-notice .bf-fp-state { border-color: var(--bf-ink); color: var(--bf-ink); }
.bf-fp-tripped, .bf-fp-fault { outline: 3px solid #202020; }
.bf-mode { min-width: 72px; }
.bf-mode-on { background: #4d4d4d !important; color: #fff !important; }
.bf-mode-off { background: #e0e0e0 !important; color: #202020 !important; border: 1px solid var(--bf-line); }
.bf-faceplate-trend { width: 100%; height: 140px; }
/* The process mimic (ui/mimic.py): grey equipment; dark grey = running / open / on; a flowing pipe is
   dark with a moving dash; hatched = not live; colour only for an alarm (with its shape and word).
   The drawing scales to the width and to the height left under the header, so it never scrolls. */
.bf-mimic { width: 100%; }
.bf-mimic-svg { display: block; width: 100%; height: auto;
                max-height: calc(100vh - var(--bf-header-h, 64px) - 28px); margin: 0 auto; }
/* On a phone the drawing scaled to the width is unreadable (a 1200-unit layout at 366 px: 5 px text,
   24 px tap targets). Below 900 px it keeps at least MIMIC_PHONE_SCALE of its size (--bf-mimic-phone-w,
   set by ui/mimic.py) and scrolls sideways inside its own box; the page itself never does. */
@media (max-width: 899.98px) {
  .bf-mimic { overflow-x: auto; overflow-y: hidden; -webkit-overflow-scrolling: touch; overscroll-behavior-x: contain; }
  .bf-mimic-svg { width: max(100%, var(--bf-mimic-phone-w, 100%)); max-width: none; max-height: none; margin: 0; }
}
.bf-mimic-svg text { font-family: sans-serif; text-anchor: middle; fill: #202020; pointer-events: none; }
.bf-pipe { fill: none; stroke-width: 9; stroke-linejoin: round; }
.bf-pipe-still { stroke: #b4b4b4; }
.bf-pipe-flow { stroke: #3c3c3c; stroke-dasharray: 14 8; animation: bf-flow 0.8s linear infinite; }
@keyframes bf-flow { to { stroke-dashoffset: -22; } }
.bf-mm { cursor: pointer; }
.bf-mm-hit { fill: transparent; stroke: none; }
.bf-mm-vessel { fill: #f2f2f2; stroke: #6d6d6d; stroke-width: 3; }
.bf-mm-fill { stroke: none; }
.bf-mm-fill-live { fill: #bdbdbd; }
.bf-mm-body { stroke: #3c3c3c; stroke-width: 2; }
.bf-mm-on { fill: #4d4d4d; }
.bf-mm-off { fill: #f7f7f7; }
.bf-mm-notlive, .bf-mm-fill.bf-mm-notlive { fill: url(#bf-hatch); }
.bf-mm-impeller { fill: #9e9e9e; stroke: none; }
.bf-mm-title { font-size: 17px; font-weight: 700; fill: #5f5f5f !important; }
.bf-mm-value { font-size: 22px; font-weight: 700; font-variant-numeric: tabular-nums; }
.bf-mm-small, .bf-mm-state { font-size: 15px; font-variant-numeric: tabular-nums; }
.bf-mm-label { font-size: 15px; font-weight: 700; fill: #5f5f5f !important; }
.bf-mm-alarm { font-size: 16px; font-weight: 700; }
.bf-mm-inside { font-size: 13px; font-weight: 700; }
.bf-mimic-svg text.bf-mm-on { fill: #ffffff; }
.bf-mimic-svg text.bf-mm-off, .bf-mimic-svg text.bf-mm-notlive { fill: #202020; }
.bf-mimic-dialog { width: 460px; max-width: 96vw; max-height: 92vh; overflow-y: auto; background: var(--bf-panel); }
.bf-mimic-dialog .bf-tile, .bf-mimic-dialog .bf-faceplate { width: 100%; }
/* Programs (ui/programs.py): grey steps, the current one dark and outlined (not coloured); the countdown in
   digits readable from two metres; an abnormal step state (paused, out of band, waiting) gets a shape, a word and
   the faceplate's held / notice look. */
.bf-program, body.bf-kiosk .bf-tile.bf-program { width: 100%; max-width: 1000px; flex: 1 1 100%; min-width: 0; }
.bf-prog-steps { min-width: 260px; max-width: 40%; }
.bf-countdown { white-space: nowrap; }
@media (max-width: 640px) {  /* a phone: the steps above the countdown, nothing wider than the screen */
  .bf-prog-body { flex-wrap: wrap !important; }
  .bf-prog-steps { min-width: 0; max-width: 100%; }
  .bf-countdown, body.bf-kiosk .bf-countdown { font-size: 4.5rem; }
}
.bf-prog-step-row { white-space: pre; padding: 4px 8px; border-left: 6px solid transparent; color: var(--bf-ink);
                    font-size: 1.05rem; overflow: hidden; text-overflow: ellipsis; }
.bf-prog-step-row.bf-step-done { color: var(--bf-muted); text-decoration: line-through; }
.bf-prog-step-row.bf-step-current { background: #4d4d4d; color: #fff; border-left-color: #202020; font-weight: 700; }
.bf-prog-step { font-size: 1.2rem; font-weight: 700; color: var(--bf-muted); }
.bf-countdown { font-size: 6rem; line-height: 1; font-weight: 700; font-variant-numeric: tabular-nums;
                letter-spacing: .02em; color: var(--bf-ink); }
body.bf-kiosk .bf-countdown { font-size: 7.5rem; }
.bf-prog-status { font-size: 1.2rem; font-weight: 700; padding: 2px 8px; border-radius: 3px;
                  border: 2px solid transparent; align-self: flex-start; }
.bf-prog-status-held, .bf-prog-state-held { background: #f9a825; color: #202020; border-color: #202020; }
.bf-prog-status-notice, .bf-prog-state-notice { border-color: var(--bf-ink); color: var(--bf-ink); }
.bf-prog-prompt { font-size: 1.2rem; font-weight: 600; }
.bf-prog-choice { min-width: 220px; }
.bf-prompt-dialog { border: 6px solid #202020; min-width: 480px; max-width: 96vw; background: var(--bf-panel); }
.bf-prompt-item { border-top: 1px solid var(--bf-line); padding-top: 6px; }
.bf-tile-program { font-weight: 700; font-size: 1.15rem; font-variant-numeric: tabular-nums; }
#popup { display: none !important; } /* our own connection banner replaces NiceGUI's popup */
.bf-alarm-now { color: #3c3c3c; font-variant-numeric: tabular-nums; }
.bf-trip { font-weight: 700; color: #202020; border-left: 6px solid #ef6c00; padding-left: 6px; }
.bf-message-line { max-width: 45vw; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
                    font-weight: 600; background: #e0e0e0; color: #202020; border: 1px solid #6d6d6d;
                    border-left-width: 6px; padding: 2px 8px; border-radius: 3px; }
.bf-message-positive { border-left-color: #2e7d32; }
.bf-message-warning { border-left-color: #f9a825; }
.bf-message-negative { border-left-color: #c62828; }
#bf-connection { position: fixed; bottom: 8px; right: 8px; z-index: 7000; padding: 6px 12px; border-radius: 4px;
                 font: 600 14px sans-serif; background: #3c3c3c; color: #e0e0e0; }
#bf-connection[data-state="offline"], #bf-connection[data-state="connecting"] {
  left: 0; right: 0; bottom: auto; top: 0; border-radius: 0; text-align: center; font-size: 20px; padding: 14px;
  background: repeating-linear-gradient(135deg, #7a0000 0 14px, #5a0000 14px 28px); color: #fff; }
body.bf-offline .bf-control { opacity: .35; pointer-events: none; }
/* No link to the server (and until the first fresh redraw after it returns): no value looks live. */
body.bf-nolink .bf-value { color: #6d6d6d; font-style: italic; }
body.bf-nolink .bf-row { background: repeating-linear-gradient(135deg, #e8e8e8 0 8px, #d0d0d0 8px 16px); }
body.bf-nolink .bf-badge-good { font-size: 0; background: #fff3c4; border-color: #5b4500; }
body.bf-nolink .bf-badge-good::after { content: "NO LINK"; font-size: .8rem; color: #5b4500; }
body.bf-offline .bf-tappable, body.bf-offline .bf-keypad { pointer-events: none; }
body.bf-offline .bf-keypad { opacity: .35; }
/* Kiosk: big type, big targets, no hover-only affordances. */
body.bf-kiosk { font-size: 20px; }
body.bf-kiosk .bf-btn { min-height: 64px; min-width: 120px; font-size: 1.2rem; }
body.bf-kiosk .bf-value { font-size: 1.9rem; }
body.bf-kiosk .bf-tile { width: 420px; }
/* A phone (390 px) never scrolls sideways: tiles and their columns give up width before the page does. */
.bf-node, .bf-tile, .bf-tabs { max-width: 100%; min-width: 0; }
body.bf-kiosk .q-tooltip, body.bf-kiosk .q-focus-helper { display: none !important; }
/* The header is one row (≤ 12 % of a 600 px screen: 52 px, 68 px on a kiosk with its 64 px targets); it
   gives up the site name and the smaller words first. A narrow screen (a phone) wraps it instead of
   scrolling sideways. */
.bf-header { padding-top: 2px; padding-bottom: 2px; font-size: 14px; column-gap: 4px; }
.bf-header > .nicegui-row, .bf-header .bf-nav { column-gap: 2px; }
.bf-nav .q-btn, .bf-header .bf-btn, .bf-signout button { font-size: 14px; padding: 0 8px; letter-spacing: 0; }
.bf-header .bf-alarm-banner { padding: 2px 6px; }
.bf-header .bf-alarm-count { padding: 2px 4px; margin-left: 2px; }
.bf-header .bf-who { font-size: 13px; padding: 0 2px; }
.bf-header .text-lg { font-size: 1rem; }
body.bf-kiosk .bf-nav .q-btn, body.bf-kiosk .bf-header .bf-btn, body.bf-kiosk .bf-signout button {
  min-height: 64px; min-width: 64px; font-size: 14px; }
body.bf-kiosk .bf-alarm-banner { min-height: 64px; }
body.bf-kiosk .bf-annunciator { padding-top: 0; padding-bottom: 0; }
@media (max-width: 1439px) {
  .bf-site-name { display: none; }
  /* while the kiosk's tone sounds its SILENCE joins the row: the zero counts and the user's name make room */
  body.bf-kiosk .bf-header:has(.bf-annunciator:not(.hidden)) :is(.bf-who, .bf-alarm-count-zero, .bf-alarm-title) {
    display: none; }
}
@media (max-width: 1279px) { .bf-alarm-title { display: none; } }
/* The message line (ui/feedback.py) joins the row without wrapping it: below 1440 px the zero counts, the
   words UNACK ALARMS and the user's name make room, and a message still too long is cut (its whole text
   is its tooltip and the journal's). A phone wraps as before. */
@media (min-width: 1024px) {
  .bf-header > .nicegui-row:nth-child(2) { flex: 1 1 0; min-width: 0; justify-content: flex-end; flex-wrap: nowrap; }
  .bf-header > .nicegui-row:nth-child(2) > * { flex-shrink: 0; }
  .bf-header > .nicegui-row:nth-child(2) > .bf-message-line { flex-shrink: 1; min-width: 0; }
}
@media (max-width: 1439px) {
  .bf-header:has(.bf-message-line:not(.hidden)) :is(.bf-who, .bf-alarm-count-zero, .bf-alarm-title) { display: none; }
}
"""


def apply(kiosk: bool) -> None:
    """Style the current page; kiosk mode is a body class so CSS alone decides what changes."""
    ui.add_css(CSS)
    ui.colors(primary="#4d4d4d", secondary="#757575", accent="#616161", positive="#2e7d32",
              negative="#b71c1c", warning="#8d6e00", info="#455a64")
    if kiosk:
        ui.query("body").classes("bf-kiosk")
