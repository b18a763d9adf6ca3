// The restart question on an open screen before its page is drawn again: ui/restart_watch.py says why and how.
// Plain DOM built with textContent only (the messages come from the plant), no library: it runs while the
// page's Vue app is gone, and on the starting page (bevforge/api/screens_gate.py) where there is none.
(function () {
  const KEY = 'bf-restart-question', KEEP_MS = 60000, CONFIRM_MS = 6000;
  const RETRY_MS = 50, SLOW_RETRY_MS = 1000, FAST_FOR_MS = 30000;
  const prefix = () => window.path_prefix || '';
  let ws = null, watching = false, watchedSince = 0, retry = null, frames = {}, me = null, dismissed = new Set();
  let armed = {}, pending = {}, errors = {}, drawn = '', toned = false;
  const open = () => Object.values(frames).filter((f) => f.state === 'paused' && f.resumeQuestion);
  const keyOf = (f) => f.unit + '|' + (f.message || '');
  function el(tag, cls, text, testid) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    if (testid) node.dataset.testid = testid;
    return node;
  }
  function remove() {
    const box = document.getElementById('bf-restart');
    if (box) box.remove();
  }
  // a kiosk's prompt tone (ui/annunciator.py's window.bevforgeTone) while the question is up, unless a tone
  // sounds already (an alarm's goes first); stopped when the question goes, if it is still the one started here
  function sound(on) {
    const tone = window.bevforgeTone;
    if (!tone) return;
    if (on && !toned && !tone.status().playing) { tone.start('prompt'); toned = true; }
    else if (!on && toned) { toned = false; if (tone.status().playing === 'prompt') tone.stop(); }
  }
  function store(items) {
    try {
      if (items.length) sessionStorage.setItem(KEY, JSON.stringify({ at: Date.now(), frames: items }));
      else sessionStorage.removeItem(KEY);
    } catch (e) { /* storage full or blocked: the overlay still shows on this page */ }
  }
  async function act(unit, steps) {
    pending[unit] = true; errors[unit] = ''; draw();
    const headers = { 'Content-Type': 'application/json' };
    if (me && me.csrfToken) headers['X-CSRF-Token'] = me.csrfToken;
    for (const step of steps) {
      try {
        const answer = await fetch(prefix() + '/api/os/programs/' + encodeURIComponent(unit) + '/' + step,
          { method: 'POST', credentials: 'same-origin', headers: headers, body: '{}' });
        if (!answer.ok) {
          let text = 'refused (' + answer.status + ')';
          try { const body = await answer.json(); text = body.message || text; } catch (e) { /* not JSON */ }
          errors[unit] = text;
          break;
        }
      } catch (e) {
        errors[unit] = 'the panel did not answer: try again';
        break;
      }
    }
    pending[unit] = false; draw();
  }
  function button(text, testid, onClick, extra) {
    const b = el('button', 'bf-restart-btn' + (extra ? ' ' + extra : ''), text, testid);
    b.type = 'button';
    b.addEventListener('click', onClick);
    return b;
  }
  function draw() {
    const items = open().filter((f) => !dismissed.has(keyOf(f)));
    store(open());
    sound(items.length > 0);
    if (!items.length) { remove(); drawn = ''; return; }
    const operator = me !== null && me.role !== 'viewer';
    const now = Date.now();
    // drawn again only when what it shows changes: a tap is not lost to a redraw for an unrelated frame
    const look = JSON.stringify([operator, me === null, items.map((f) => [
      f.unit, f.name, f.templateName, f.step && f.step.index, f.step && f.step.name, f.message, !!pending[f.unit],
      errors[f.unit] || '', !!armed[f.unit] && now - armed[f.unit] < CONFIRM_MS])]);
    if (look === drawn && document.getElementById('bf-restart')) return;
    drawn = look;
    let box = document.getElementById('bf-restart');
    if (!box) {
      box = el('div', 'bf-restart', undefined, 'restart-overlay');
      box.id = 'bf-restart';
      box.setAttribute('role', 'alertdialog');
      box.setAttribute('aria-modal', 'true');
      document.body.appendChild(box);
    }
    const card = el('div', 'bf-restart-card');
    card.appendChild(el('div', 'bf-restart-title', '? PANEL RESTARTED · PROGRAM PAUSED'));
    for (const f of items) {
      const item = el('div', 'bf-restart-item', undefined, 'restart-' + f.unit);
      const step = f.step ? ' · step ' + (f.step.index + 1) + ': ' + f.step.name : '';
      item.appendChild(el('div', 'bf-restart-where', f.name + ' · ' + (f.templateName || '') + step));
      item.appendChild(el('div', 'bf-restart-text', f.message || '', 'restart-prompt-text-' + f.unit));
      const row = el('div', 'bf-restart-row');
      if (operator) {
        const busy = !!pending[f.unit];
        const resume = button('RESUME', 'restart-resume-' + f.unit, () => act(f.unit, ['resume']));
        const again = button('RESTART STEP', 'restart-restart-' + f.unit, () => act(f.unit, ['back', 'resume']));
        const confirming = armed[f.unit] && now - armed[f.unit] < CONFIRM_MS;
        const abort = button(confirming ? 'CONFIRM ABORT' : 'ABORT', 'restart-abort-' + f.unit, () => {
          if (armed[f.unit] && Date.now() - armed[f.unit] < CONFIRM_MS) {
            delete armed[f.unit];
            act(f.unit, ['abort']);
          } else { armed[f.unit] = Date.now(); draw(); setTimeout(draw, CONFIRM_MS + 50); }
        }, 'bf-restart-stop');
        for (const b of [resume, again, abort]) { b.disabled = busy; row.appendChild(b); }
        if (confirming) {
          item.appendChild(el('div', 'bf-restart-warning', f.kind === 'brewhouse'
            ? 'The program stops for good; the brewhouse\'s controllers are switched off. Press CONFIRM ABORT.'
            : 'The program stops for good; the fermenter keeps its present setpoint. Press CONFIRM ABORT.'));
        }
      } else {
        item.appendChild(el('div', 'bf-restart-where', me === null ? 'Waiting for the panel…'
          : 'An operator must answer this question.'));
        row.appendChild(button('CLOSE', 'restart-close-' + f.unit, () => { dismissed.add(keyOf(f)); draw(); }));
      }
      item.appendChild(row);
      if (errors[f.unit]) item.appendChild(el('div', 'bf-restart-error', errors[f.unit], 'restart-error-' + f.unit));
      card.appendChild(item);
    }
    card.appendChild(el('div', 'bf-restart-where', 'This screen is drawn again as soon as the panel has loaded it.'));
    box.replaceChildren(card);
  }
  function handedOver() {
    const state = window.bevforgeConnection && window.bevforgeConnection();
    return !!(state && state.online && state.fresh);
  }
  function stop() {
    watching = false;
    clearTimeout(retry);
    if (ws) { const s = ws; ws = null; s.onclose = null; s.close(); }
  }
  // every 50 ms while a restart is likely (the first 30 s), then every second: a panel down for long is not
  // asked twenty times a second by every screen
  const later = () => (Date.now() - watchedSince < FAST_FOR_MS ? RETRY_MS : SLOW_RETRY_MS);
  function connect() {
    if (!watching || ws) return;
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + prefix() + '/ws';
    let socket;
    try { socket = new WebSocket(url); } catch (e) { retry = setTimeout(connect, later()); return; }
    ws = socket;
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: 'subscribe', channel: 'programs' }));
      fetch(prefix() + '/api/os/auth/me', { credentials: 'same-origin' })
        .then((r) => (r.ok ? r.json() : null)).then((who) => { if (who) { me = who; draw(); } })
        .catch(() => {});
    };
    socket.onmessage = (event) => {
      let msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      if (msg.type === 'program') { frames[msg.unit] = msg; draw(); }
      else if (msg.type === 'ping') socket.send(JSON.stringify({ type: 'pong' }));
    };
    socket.onclose = (event) => {
      if (ws === socket) ws = null;
      if (event.code === 1008) { stop(); return; }  // refused credentials: the reloaded page signs in
      if (watching) retry = setTimeout(connect, later());
    };
  }
  function watch() {
    if (watching) return;
    watching = true;
    watchedSince = Date.now();
    connect();
  }
  window.bevforgeRestartWatch = () => ({ watching: watching, shown: !!document.getElementById('bf-restart') });
  // the starting page (bevforge/api/screens_gate.py) has no screen socket to lose: it watches at once
  if (window.bevforgeStarting) watch();
  // drawn again at once after the reload: the question the previous page of this tab showed
  try {
    const kept = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    if (kept && Date.now() - kept.at < KEEP_MS) {
      for (const f of kept.frames) frames[f.unit] = f;
      const draw_when_ready = () => (document.body ? (draw(), watch()) : setTimeout(draw_when_ready, 10));
      draw_when_ready();
    } else sessionStorage.removeItem(KEY);
  } catch (e) { /* no storage: nothing kept */ }
  // the page is live again with present values: its own dialog asks from now on (and its annunciator
  // sounds the tone if a prompt is due: the tone started here stops only if the annunciator is quiet)
  setInterval(() => {
    if (watching && handedOver()) {
      stop(); frames = {}; remove(); store([]);
      const annunciator = document.querySelector('[data-testid="annunciator"]');
      if (toned && annunciator && !annunciator.classList.contains('hidden')) toned = false;
      sound(false);
    } else if (document.getElementById('bf-restart')) sound(true);  // the tone's script came after this one
  }, 100);
  let hooked = false;
  const hook = setInterval(() => {
    if (hooked || !window.socket) return;
    hooked = true;
    clearInterval(hook);
    window.socket.on('disconnect', watch);
    window.socket.on('connect_error', watch);
  }, 50);
})();
