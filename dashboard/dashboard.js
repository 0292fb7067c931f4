// FreeRide's status page: draws the gateway's figures (GET /freeride/dashboard, again every
// 30 s while the tab is visible) and its requests live (GET /freeride/events, server-sent
// events read through fetch, so that the gateway's key can go in a header). Everything shown
// is set as text, never as markup. No outside resource: the page's CSP allows none.
'use strict';

(() => {
  const KEY = 'freeride-key';        // sessionStorage: this tab only, gone when it closes
  const REFRESH_MS = 30000;
  const MAX_REQUESTS = 40;
  const COLOURS = ['#3b5bdb', '#e8590c', '#2b8a3e', '#ae3ec9', '#1098ad', '#f59f00', '#c2255c',
    '#5c940d', '#6741d9', '#0b7285', '#d9480f', '#495057'];

  const $ = (id) => document.getElementById(id);
  let data = null;            // the last /freeride/dashboard answer
  let skew = 0;               // the gateway's clock minus ours, in seconds
  let chartUnit = 'requests';
  let modelFilter = '';
  let filterInput = null;
  const requests = new Map(); // request id -> {request, attempts, end, fresh}
  let stream = null;          // the AbortController of the open event stream
  let refreshTimer = 0;

  // -- small DOM helpers ---------------------------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'text') node.textContent = value;
      else if (name === 'class') node.className = value;
      else node.setAttribute(name, value === true ? '' : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    for (const child of children.flat()) if (child) node.append(child);
    return node;
  }
  const fill = (id, ...children) => $(id).replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  const num = (n) => (n || 0).toLocaleString('en-US');
  const ms = (n) => (n === undefined || n === null ? '' : n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(1)} s`);
  const clock = (ts) => new Date(ts * 1000).toLocaleTimeString([], { hour12: false });
  const now = () => Date.now() / 1000 + skew;
  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor(s % 3600 / 60)).padStart(2, '0')}m`;
    return `${Math.floor(s / 86400)}d${String(Math.floor(s % 86400 / 3600)).padStart(2, '0')}h`;
  }
  const PER = { minute: 'this minute', hour: 'this hour', day: 'today', month: 'this month' };

  // -- the gateway's key ---------------------------------------------------------------------
  function authHeaders() {
    const key = sessionStorage.getItem(KEY);
    return key ? { Authorization: `Bearer ${key}` } : {};
  }
  function askKey(message) {
    stopStream();
    fill('gateway', 'waiting for the gateway key');
    document.querySelector('main').hidden = true;
    $('key-form').hidden = false;
    $('key-error').hidden = !message;
    $('key-error').textContent = message || '';
    $('key-input').focus();
  }
  $('key-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const key = $('key-input').value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY, key);
    $('key-input').value = '';
    $('key-form').hidden = true;
    start();
  });

  // -- figures -------------------------------------------------------------------------------
  async function load() {
    let response;
    try {
      response = await fetch('/freeride/dashboard', { headers: authHeaders(), cache: 'no-store' });
    } catch (e) {
      setLive('off', 'the gateway does not answer');
      return false;
    }
    if (response.status === 401) {
      askKey(sessionStorage.getItem(KEY) ? 'The gateway did not accept that key.' : '');
      sessionStorage.removeItem(KEY);
      return false;
    }
    if (!response.ok) {
      setLive('off', `the gateway answered ${response.status}`);
      return false;
    }
    data = await response.json();
    skew = data.now - Date.now() / 1000;
    render();
    return true;
  }

  function render() {
    document.querySelector('main').hidden = false;
    const status = data.status;
    const gateway = status.gateway || {};
    fill('gateway', `freeride ${gateway.version} at ${gateway.url}, up ${duration(gateway.uptime_s)}`);
    renderSummary(status);
    renderProviders(status);
    renderUsage();
    renderModels();
  }

  // Each key's state: spent (no request left in a day or longer window, or cooling on a
  // quota), cooling (a rate limit or an error, with why and until when), or healthy.
  function keyState(provider, index) {
    const cooling = provider.cooling.filter((c) => (c.key === index || c.key === '*') && c.until > now());
    const quota = provider.quota.filter((q) => q.key === index);
    const whole = cooling.filter((c) => c.model === '*' && c.key === index);
    const spent = quota.filter((q) => q.unit === 'requests' && q.remaining <= 0 && q.model === '*' && q.window !== 'minute');
    let state = 'healthy';
    if (whole.some((c) => c.class === 'QUOTA') || spent.length) state = 'spent';
    else if (cooling.length) state = 'cooling'; // for every model, or for some (it says which)
    return { state, cooling, quota };
  }

  function renderSummary(status) {
    let healthy = 0, cooling = 0, spent = 0, requestsToday = 0, tokensToday = 0;
    const local = [];
    for (const p of status.providers) {
      requestsToday += p.today.requests;
      tokensToday += p.today.tokens;
      if (p.local) { local.push(p); continue; }
      p.key_ids.forEach((_, i) => {
        const s = keyState(p, i).state;
        if (s === 'healthy') healthy += 1; else if (s === 'cooling') cooling += 1; else spent += 1;
      });
    }
    const card = (big, label, extra) => el('div', { class: 'card' },
      el('div', { class: 'big', text: big }), el('div', { class: 'label', text: label }), extra);
    fill('capacity', el('div', { class: 'cards' },
      card(num(status.capacity_today.requests), 'free requests left today, where providers say'),
      card(num(requestsToday), `requests served today, ${num(tokensToday)} tokens`),
      card(`${healthy} / ${healthy + cooling + spent}`, 'keys healthy',
        el('div', { class: 'label', text: `${cooling} cooling, ${spent} spent` })),
      card(local.filter((p) => p.answering).length, 'local servers answering',
        el('div', { class: 'label', text: local.length ? local.map((p) => `${p.name}: ${p.answering ? 'answering' : 'not found'}`).join(', ') : 'none looked for' }))),
      status.unconfigured.length ? el('p', { class: 'muted', text: `Not configured: ${status.unconfigured.map((u) => u.name).join(', ')} (freeride doctor says how).` }) : null);
  }

  function quotaRow(q) {
    const label = `${q.model === '*' ? 'all models' : q.model} · ${q.unit} ${PER[q.window] || q.window}`;
    const limit = Math.max(q.limit, q.remaining, 1);
    return el('div', { class: 'quota', title: `resets ${new Date(q.reset * 1000).toLocaleString()}` },
      el('span', { class: 'what', text: label }),
      el('span', { class: 'num', text: `${num(q.remaining)} / ${num(q.limit)}` }),
      el('meter', { min: 0, max: limit, value: q.remaining, low: limit * 0.15, high: limit * 0.4, optimum: limit }));
  }

  const left = (until) => (until > now() ? duration(until - now()) : 'a moment'); // then redrawn
  function countdown(until) {
    return el('span', { class: 'countdown', 'data-until': until, text: left(until) });
  }

  function renderProviders(status) {
    const cards = status.providers.map((p) => {
      const kind = p.local ? 'local server' : `${p.keys} key${p.keys === 1 ? '' : 's'}`;
      const card = el('div', { class: 'provider' },
        el('h3', {}, p.name, el('span', { class: 'muted', text: kind }),
          p.local ? el('span', { class: `badge ${p.answering ? 'answering' : 'down'}`, text: p.answering ? 'answering' : 'not answering' }) : null),
        el('div', { class: 'today', text: `today: ${num(p.today.requests)} requests, ${num(p.today.tokens)} tokens` }));
      p.key_ids.forEach((id, i) => {
        const { state, cooling, quota } = keyState(p, i);
        if (p.local && !cooling.length && !quota.length) return; // a local server has no key
        const key = el('div', { class: 'key' },
          el('div', { class: 'key-head' }, el('strong', { text: `key ${i}` }),
            el('span', { class: 'hash', title: 'the key\'s hash, as the state files name it', text: id.slice(0, 8) }),
            el('span', { class: `badge ${state}`, text: state })));
        for (const c of cooling) {
          const who = `${c.key === '*' ? 'every key' : ''}${c.model === '*' ? '' : ` ${c.model}`}`.trim();
          key.append(el('div', { class: 'why', title: c.reason || null }, `${who ? `${who}: ` : ''}${c.class}, back in `,
            countdown(c.until), c.reason ? ` (${c.reason})` : ''));
        }
        quota.filter((q) => q.window !== 'minute' || q.remaining <= 0).forEach((q) => key.append(quotaRow(q)));
        card.append(key);
      });
      return card;
    });
    fill('providers', cards.length ? el('div', { class: 'providers' }, cards)
      : el('p', { class: 'empty', text: 'No provider configured: freeride doctor says what to set.' }));
  }

  function tickCountdowns() {
    let expired = false;
    for (const node of document.querySelectorAll('.countdown')) {
      node.textContent = left(Number(node.dataset.until));
      expired ||= Number(node.dataset.until) <= now();
    }
    if (expired && !document.hidden) scheduleRefresh(1000);
  }

  // -- the 31 days as a stacked bar chart ----------------------------------------------------
  function renderUsage() {
    const days = [];
    const today = new Date((now()) * 1000);
    for (let i = 30; i >= 0; i -= 1) {
      const d = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i));
      days.push(d.toISOString().slice(0, 10));
    }
    const value = (d, n) => ((data.usage[d] || {})[n] || {})[chartUnit] || 0;
    const names = [...new Set(days.flatMap((d) => Object.keys(data.usage[d] || {})))].sort()
      .filter((n) => days.some((d) => value(d, n)));
    const totals = days.map((d) => names.reduce((s, n) => s + value(d, n), 0));
    const top = Math.max(1, ...totals);
    const W = 760, H = 210, left = 44, bottom = 22, top0 = 8;
    const bw = (W - left) / days.length;
    const y = (v) => H - bottom - (H - bottom - top0) * v / top;
    const chart = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${chartUnit} per day, last 31 days` });
    for (const f of [0, 0.5, 1]) {
      chart.append(svg('line', { class: 'grid', x1: left, x2: W, y1: y(top * f), y2: y(top * f) }));
      const label = svg('text', { x: left - 6, y: y(top * f) + 3, 'text-anchor': 'end' });
      label.textContent = compact(top * f);
      chart.append(label);
    }
    days.forEach((d, i) => {
      let base = 0;
      names.forEach((n, k) => {
        const v = value(d, n);
        if (!v) return;
        const rect = svg('rect', { x: left + i * bw + 1, width: Math.max(1, bw - 2), y: y(base + v), height: Math.max(0.5, y(base) - y(base + v)), fill: COLOURS[k % COLOURS.length] });
        rect.append(svg('title', {}, document.createTextNode(`${d} ${n}: ${num(v)} ${chartUnit}`)));
        chart.append(rect);
        base += v;
      });
      if (i % 5 === 0 || i === days.length - 1) {
        const last = i === days.length - 1;
        const label = svg('text', { x: last ? W : left + i * bw + bw / 2, y: H - 6, 'text-anchor': last ? 'end' : 'middle' });
        label.textContent = i === days.length - 1 ? 'today' : d.slice(5);
        chart.append(label);
      }
    });
    const button = (unit) => el('button', { type: 'button', class: chartUnit === unit ? 'on' : '', text: unit, 'data-unit': unit });
    const sum = totals.reduce((a, b) => a + b, 0);
    fill('usage', el('div', { class: 'chart-tools' }, button('requests'), button('tokens'),
      el('span', { class: 'muted', text: `${num(sum)} ${chartUnit} in 31 days` })),
    chart,
    el('div', { class: 'legend' }, names.map((n, k) => el('span', {},
      el('span', { class: `swatch c${k % COLOURS.length}` }), `${n}: ${num(days.reduce((s, d) => s + value(d, n), 0))}`))));
    // Swatch colours by CSSOM (allowed by the CSP, unlike style attributes).
    document.querySelectorAll('#usage .swatch').forEach((s, k) => { s.style.background = COLOURS[k % COLOURS.length]; });
  }
  function compact(n) {
    if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)}M`;
    if (n >= 1e3) return `${(n / 1e3).toFixed(n >= 1e4 ? 0 : 1)}k`;
    return String(Math.round(n));
  }
  $('usage').addEventListener('click', (event) => {
    const unit = event.target.dataset && event.target.dataset.unit;
    if (unit && unit !== chartUnit) { chartUnit = unit; renderUsage(); }
  });

  // -- the models ----------------------------------------------------------------------------
  function renderModels() {
    const models = data.models.filter((m) => m.available !== false)
      .sort((a, b) => (a.owned_by === 'freeride') - (b.owned_by === 'freeride') || a.id.localeCompare(b.id));
    const shown = models.filter((m) => !modelFilter || `${m.id} ${m.providers.join(' ')}`.toLowerCase().includes(modelFilter));
    const yes = (on) => el('td', { class: on ? 'yes' : 'muted', text: on ? '✓' : '–' });
    const rows = shown.map((m) => el('tr', {},
      el('td', { class: 'mono', text: m.id }),
      el('td', { text: m.owned_by === 'freeride' ? `alias: ${m.providers.join(', ')}` : m.providers.join(', ') }),
      el('td', { class: 'num ctx', text: m.context_length ? num(m.context_length) : '' }),
      yes(m.tools), yes(m.vision),
      el('td', { class: 'num left', text: m.requests_left_today === undefined ? '' : num(m.requests_left_today) })));
    if (!filterInput) { // built once: a redraw never takes the focus from it
      filterInput = el('input', { class: 'filter', type: 'search', placeholder: 'filter models', 'aria-label': 'filter models' });
      filterInput.addEventListener('input', () => { modelFilter = filterInput.value.trim().toLowerCase(); renderModels(); });
      fill('models', el('div', { class: 'chart-tools' }, filterInput, el('span', { class: 'muted', id: 'models-count' })),
        el('div', { class: 'scroll', id: 'models-table' }));
    }
    $('models-count').textContent = `${shown.length} of ${models.length}`;
    fill('models-table', el('table', { class: 'models-table' },
      el('thead', {}, el('tr', {}, el('th', { text: 'Model' }), el('th', { text: 'Served by' }),
        el('th', { class: 'num ctx', text: 'Context' }), el('th', { text: 'Tools' }),
        el('th', { text: 'Vision' }), el('th', { class: 'num left', text: 'Left today' }))),
      el('tbody', {}, rows)));
  }

  // -- the requests, live --------------------------------------------------------------------
  function take(event) {
    if (!event.req) {
      if (event.event === 'local') scheduleRefresh(500);
      return;
    }
    let row = requests.get(event.req);
    if (!row) {
      row = { request: {}, attempts: [], end: null, fresh: live };
      requests.set(event.req, row);
      if (requests.size > MAX_REQUESTS) requests.delete(requests.keys().next().value);
    }
    if (event.event === 'request') row.request = event;
    else if (event.event === 'attempt') row.attempts.push({ ...event, pending: true });
    else if (event.event === 'result' || event.event === 'skip') {
      const open = row.attempts.find((a) => a.pending && a.provider === event.provider && a.key === event.key && a.model === event.model);
      if (open && event.event === 'result') Object.assign(open, event, { pending: false });
      else row.attempts.push(event);
      if (event.event === 'result' && !event.ok) scheduleRefresh(2000); // a new cooldown
    } else if (['complete', 'interrupted', 'failed'].includes(event.event)) {
      row.end = event;
      if (data && event.provider) {
        const p = data.status.providers.find((x) => x.name === event.provider);
        if (p) { p.today.requests += 1; p.today.tokens += event.tokens || 0; }
      }
    }
    drawSoon();
  }

  let drawPending = false;
  let live = false;           // false while the backlog is read: those rows do not flash
  function drawSoon() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => { drawPending = false; renderRequests(); });
  }

  function attemptChip(a) {
    const cls = a.pending ? 'pending' : a.event === 'skip' ? 'skipped' : a.ok ? 'ok' : 'fail';
    const what = a.pending ? '…' : a.ok ? 'OK' : a.class;
    const title = [a.message, a.skipped && `skipped: ${a.skipped}`, a.status && `HTTP ${a.status}`,
      a.cooldown_s !== undefined && `cooling ${duration(a.cooldown_s)}`, a.timeout && `deadline: ${a.timeout}`].filter(Boolean).join(' · ');
    return el('span', { class: `attempt ${cls}`, title: title || null },
      el('span', { text: `${a.provider} k${a.key}` }),
      el('span', { class: 'mono', text: a.model }),
      el('span', { class: 'cls', text: what }),
      a.ms !== undefined ? el('span', { class: 'muted', text: ms(a.ms) }) : null);
  }

  // A figure of a request; its label shows only on a narrow window, where no header row is.
  const figure = (name, label, value) => el('span', { class: `${name} num` },
    value ? el('span', { class: 'label', text: `${label} ` }) : null, value);

  function renderRequests() {
    const rows = [...requests.values()].reverse();
    const head = el('div', { class: 'request head' },
      ['Time', 'Model asked', 'Attempts', 'Served by', 'First token', 'Total', 'Tokens'].map((t, i) => el('span', { class: i > 3 ? 'num' : '', text: t })));
    const lines = rows.map((r) => {
      const failures = r.attempts.filter((a) => a.event === 'result' && !a.ok).length;
      const failed = r.end && r.end.event !== 'complete';
      const end = r.end || {};
      let who = end.provider || '';
      if (failed) who = end.event === 'failed' ? `failed ${end.status || ''}`.trim() : `${who} (${end.outcome || end.event})`;
      if (!r.end) who = 'in progress…';
      const usedModel = end.model && end.model !== r.request.model ? el('div', { class: 'mono muted', text: end.model }) : null;
      const line = el('div', { class: `request${failures ? ' failover' : ''}${failed ? ' failed' : ''}${r.fresh ? ' fresh' : ''}`, title: end.message || null },
        el('span', { class: 'time mono', text: clock(r.request.ts || end.ts || now()) }),
        el('span', { class: 'model', text: r.request.model || '?' },
          r.request.stream ? el('span', { class: 'muted', text: ' stream' }) : null),
        el('span', { class: 'attempts' }, r.attempts.map(attemptChip),
          failures ? el('span', { class: 'badge failover', text: `${failures} failover${failures > 1 ? 's' : ''}` }) : null),
        el('span', { class: 'who' }, failed ? el('span', { class: 'badge failed', text: who }) : el('strong', { text: who }), usedModel),
        figure('ttft', 'first token', end.ttft_ms !== undefined ? ms(end.ttft_ms) : ''),
        figure('total', 'total', end.ms !== undefined ? ms(end.ms) : ''),
        figure('tokens', 'tokens', end.tokens ? num(end.tokens) : ''));
      r.fresh = false;
      return line;
    });
    fill('requests', rows.length ? el('div', { class: 'requests' }, head, lines)
      : el('p', { class: 'empty', text: 'No request yet. New ones appear here as they happen.' }));
  }

  // -- the event stream ----------------------------------------------------------------------
  function setLive(state, text) {
    const node = $('live');
    node.hidden = false;
    node.className = `live ${state}`;
    $('live-text').textContent = text;
  }

  function stopStream() {
    if (stream) stream.abort();
    stream = null;
  }

  async function follow() {
    stopStream();
    const controller = new AbortController();
    stream = controller;
    let response;
    try {
      response = await fetch('/freeride/events', { headers: authHeaders(), cache: 'no-store', signal: controller.signal });
    } catch (e) {
      return retry(controller);
    }
    if (response.status === 401) return askKey('The gateway did not accept that key.');
    if (!response.ok || !response.body) return retry(controller);
    requests.clear();
    live = false;
    setLive('on', 'live');
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    const backlog = setTimeout(() => { live = true; renderRequests(); }, 300);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const lines = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart());
          if (lines.length) {
            try { take(JSON.parse(lines.join('\n'))); } catch (e) { /* not an event of ours */ }
          }
        }
      }
    } catch (e) {
      // aborted, or the connection dropped
    }
    clearTimeout(backlog);
    if (!requests.size) renderRequests();
    retry(controller);
  }

  function retry(controller) {
    if (stream !== controller) return; // replaced or stopped on purpose
    setLive('off', 'reconnecting');
    setTimeout(() => { if (stream === controller) start(); }, 3000);
  }

  // The figures are read again every 30 s, and soon after something changed them (a new
  // cooldown, one ending, a local server found), but never more than once in 5 s.
  let loadedAt = 0;
  function scheduleRefresh(delay) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, Math.max(delay, loadedAt + 5000 - Date.now()));
  }
  async function refresh() {
    clearTimeout(refreshTimer);
    if (!document.hidden) { loadedAt = Date.now(); await load(); }
    refreshTimer = setTimeout(refresh, REFRESH_MS);
  }

  async function start() {
    if (await load()) {
      follow();
      scheduleRefresh(REFRESH_MS);
    } else if (!$('key-form').hidden) {
      // waiting for the key
    } else {
      setTimeout(start, 5000);
    }
  }

  document.addEventListener('visibilitychange', () => { if (!document.hidden) scheduleRefresh(0); });
  setInterval(() => { if (!document.hidden) tickCountdowns(); }, 1000);
  start();
})();
