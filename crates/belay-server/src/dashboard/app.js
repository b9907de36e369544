// belay's dashboard: plain JavaScript, no framework, no build step.
// Jobs and hosts come live from /v1/events (server-sent events from the
// daemon's one store watcher); a job page adds its events, its app link
// and a live, resumable log tail. Changes (cancel, release) carry the
// X-Belay-Dashboard header the API asks of a cookie-authenticated change.
'use strict';

const CHANGE_HEADERS = { 'X-Belay-Dashboard': '1', 'Content-Type': 'application/json' };
const DAY_MS = 24 * 3600 * 1000;
const LOG_KEEP = 256 * 1024;
// Each state has its own shape as well as its colour.
const ICONS = {
  queued: '◷', submitting: '⇡', pending: '…', running: '▶', held: '⏸',
  succeeded: '✔', failed: '✘', cancelled: '⊘', lost: '?',
};
const HEALTH_ICONS = { healthy: '✔', degraded: '▲', unreachable: '✘', unknown: '?' };
const LIVE = new Set(['queued', 'submitting', 'pending', 'running', 'held']);

const model = { jobs: new Map(), hosts: [], ready: false };
let page = null; // the job page being shown, if any

function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined) continue;
    node.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return node;
}

function stateBadge(state) {
  return el('span', { class: 'state state-' + state, 'data-state': state },
    el('span', { class: 'icon', 'aria-hidden': 'true' }, ICONS[state] || '•'), state);
}

function ms(iso) { return iso ? Date.parse(iso) : null; }

function duration(job) {
  const start = ms(job.started_at);
  if (!start) return '';
  const end = ms(job.ended_at) || Date.now();
  let s = Math.max(0, Math.round((end - start) / 1000));
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  return (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + s + 's';
}

function ago(iso) {
  const t = ms(iso);
  if (!t) return 'never';
  const s = Math.round((Date.now() - t) / 1000);
  if (s < 60) return s + 's ago';
  if (s < 3600) return Math.round(s / 60) + 'm ago';
  if (s < 86400) return Math.round(s / 3600) + 'h ago';
  return Math.round(s / 86400) + 'd ago';
}

function sortedJobs() {
  return [...model.jobs.values()].sort((a, b) => (ms(b.created_at) || 0) - (ms(a.created_at) || 0));
}

function setConn(live, text) {
  const c = document.getElementById('conn');
  c.dataset.live = live ? 'yes' : 'no';
  c.textContent = text;
}

// ---- live data ------------------------------------------------------------

function connect() {
  const source = new EventSource('/v1/events');
  source.addEventListener('snapshot', (e) => {
    const data = JSON.parse(e.data);
    model.jobs = new Map(data.jobs.map((j) => [j.id, j]));
    model.hosts = data.hosts;
    model.ready = true;
    setConn(true, 'live');
    refresh(null);
  });
  source.addEventListener('change', (e) => {
    const data = JSON.parse(e.data);
    const touched = new Set();
    for (const j of data.jobs) { model.jobs.set(j.id, j); touched.add(j.id); }
    for (const id of data.gone) { model.jobs.delete(id); touched.add(id); }
    if (data.hosts) model.hosts = data.hosts;
    refresh(touched);
  });
  source.onerror = () => setConn(false, 'reconnecting…');
  source.onopen = () => setConn(true, 'live');
}

// ---- pages ----------------------------------------------------------------

function route() {
  const hash = location.hash || '#/';
  const m = hash.match(/^#\/jobs\/([A-Za-z0-9_.-]+)$/);
  if (page) { page.close(); page = null; }
  const main = document.getElementById('main');
  if (m) {
    page = new JobPage(m[1], main);
  } else {
    renderOverview(main);
  }
}

function refresh(touched) {
  if (!model.ready) return;
  if (page) page.update(touched);
  else renderOverview(document.getElementById('main'));
}

function renderOverview(main) {
  if (!model.ready) return;
  // Keep the keyboard focus on the same link or button across re-renders.
  const focusKey = document.activeElement && document.activeElement.dataset
    ? document.activeElement.dataset.key : null;
  main.replaceChildren(
    el('h2', { id: 'hosts-title' }, 'Hosts'),
    hostsTable(),
    el('h2', { id: 'jobs-title' }, 'Jobs'),
    jobsTable(),
    el('h2', { id: 'timeline-title' }, 'Last 24 hours'),
    timeline(),
  );
  if (focusKey) {
    const again = main.querySelector('[data-key="' + CSS.escape(focusKey) + '"]');
    if (again) again.focus();
  }
}

function gpuText(gpu) {
  if (typeof gpu !== 'object' || gpu === null) return String(gpu);
  const name = gpu.name || gpu.model || ('GPU ' + (gpu.index ?? ''));
  const bits = [];
  if (gpu.utilization_pct != null) bits.push(gpu.utilization_pct + '% busy');
  if (gpu.memory_used_mib != null && gpu.memory_total_mib != null) {
    bits.push(gpu.memory_used_mib + '/' + gpu.memory_total_mib + ' MiB');
  }
  return bits.length ? name + ' (' + bits.join(', ') + ')' : name;
}

function hostsTable() {
  const anyGpus = model.hosts.some((h) => Array.isArray(h.gpus));
  const head = ['Host', 'Health', 'Live jobs', 'Last contact', 'Last error'];
  if (anyGpus) head.push('GPUs');
  const rows = model.hosts.map((h) => {
    const health = h.health || 'unknown';
    const cells = [
      el('th', { scope: 'row' }, h.host),
      el('td', {}, el('span', { class: 'state health-' + health, 'data-health': health },
        el('span', { class: 'icon', 'aria-hidden': 'true' },
          HEALTH_ICONS[health] || '•'),
        health)),
      el('td', { class: 'num' }, h.live_jobs ?? ''),
      el('td', {}, h.last_ok ? el('time', { datetime: h.last_ok, title: h.last_ok }, ago(h.last_ok)) : 'never'),
      el('td', { class: h.last_error ? 'error' : 'muted' },
        h.last_error ? [h.last_error, h.last_error_at ? ' (' + ago(h.last_error_at) + ')' : ''] : 'none'),
    ];
    if (anyGpus) {
      cells.push(el('td', {}, Array.isArray(h.gpus)
        ? (h.gpus.length ? el('ul', {}, h.gpus.map((g) => el('li', {}, gpuText(g)))) : 'none')
        : ''));
    }
    return el('tr', { 'data-host': h.host }, cells);
  });
  return el('div', { class: 'scroll' }, el('table', { id: 'hosts', 'aria-labelledby': 'hosts-title' },
    el('thead', {}, el('tr', {}, head.map((t) => el('th', { scope: 'col' }, t)))),
    el('tbody', {}, rows)));
}

function jobsTable() {
  const jobs = sortedJobs();
  if (!jobs.length) return el('p', { id: 'jobs', class: 'muted' }, 'No jobs in the last 24 hours.');
  const rows = jobs.map((j) => el('tr', { 'data-job': j.id },
    el('th', { scope: 'row' }, el('a', { href: '#/jobs/' + j.id, class: 'mono', 'data-key': 'job-' + j.id }, j.id)),
    el('td', {}, j.name || ''),
    el('td', { class: 'job-state' }, stateBadge(j.state)),
    el('td', { class: 'num' }, j.exit_code ?? ''),
    el('td', { class: 'num' }, duration(j)),
    el('td', {}, j.host),
    el('td', {}, j.owner || ''),
  ));
  return el('div', { class: 'scroll' }, el('table', { id: 'jobs', 'aria-labelledby': 'jobs-title' },
    el('thead', {}, el('tr', {}, ['Job', 'Name', 'State', 'Exit', 'Duration', 'Host', 'Owner']
      .map((t) => el('th', { scope: 'col' }, t)))),
    el('tbody', {}, rows)));
}

function timeline() {
  const now = Date.now();
  const from = now - DAY_MS;
  const byHost = new Map();
  for (const j of sortedJobs()) {
    const start = ms(j.started_at) || ms(j.created_at);
    const end = ms(j.ended_at) || now;
    if (end < from) continue;
    if (!byHost.has(j.host)) byHost.set(j.host, []);
    byHost.get(j.host).push({ j, start: Math.max(start, from), end });
  }
  if (!byHost.size) return el('p', { id: 'timeline', class: 'muted' }, 'Nothing ran in the last 24 hours.');
  const rows = [...byHost.keys()].sort().map((host) => el('div', { class: 'tl-row', 'data-host': host },
    el('span', { class: 'mono' }, host),
    el('div', { class: 'tl-track' }, byHost.get(host).map(({ j, start, end }) => {
      const left = ((start - from) / DAY_MS) * 100;
      const width = ((end - start) / DAY_MS) * 100;
      const label = j.id + (j.name ? ' ' + j.name : '') + ': ' + j.state + ', ' + duration(j);
      const bar = el('a', {
        class: 'tl-bar state-' + j.state, href: '#/jobs/' + j.id, title: label, 'aria-label': label,
      });
      bar.style.left = left.toFixed(3) + '%';
      bar.style.width = Math.max(width, 0.2).toFixed(3) + '%';
      return bar;
    }))));
  return el('div', { id: 'timeline', class: 'timeline' },
    rows,
    el('div', { class: 'tl-axis', 'aria-hidden': 'true' }, el('span', {}, '24 h ago'), el('span', {}, '12 h ago'), el('span', {}, 'now')),
    el('p', { class: 'legend' }, 'Bars: solid = running or succeeded, striped = failed or lost, dashed outline = cancelled.'));
}

// ---- a job's page ----------------------------------------------------------

class JobPage {
  constructor(id, main) {
    this.id = id;
    this.main = main;
    this.closed = false;
    this.streams = [];
    this.lastState = null;
    this.facts = el('dl', { class: 'facts', id: 'job-facts' });
    this.actions = el('div', { id: 'job-actions' });
    this.notice = el('p', { id: 'job-notice', role: 'status', 'aria-live': 'polite' });
    this.app = el('p', { id: 'job-app' });
    this.events = el('ol', { class: 'events', id: 'job-events' });
    this.stdout = el('pre', { class: 'log stdout', id: 'log-stdout', tabindex: '0', 'aria-label': 'standard output' });
    this.stderr = el('pre', { class: 'log stderr', id: 'log-stderr', tabindex: '0', 'aria-label': 'standard error' });
    main.replaceChildren(
      el('p', {}, el('a', { href: '#/' }, '← all jobs')),
      el('h2', { id: 'job-title' }, 'Job ', el('span', { class: 'mono' }, id)),
      this.facts, this.actions, this.notice, this.app,
      el('h2', {}, 'Events'), this.events,
      el('h2', {}, 'Output'), this.stdout,
      el('h2', {}, 'Errors'), this.stderr,
    );
    main.focus();
    this.update(null);
    this.loadDetails();
    this.tail('stdout', this.stdout);
    this.tail('stderr', this.stderr);
  }

  job() { return model.jobs.get(this.id); }

  close() {
    this.closed = true;
    for (const c of this.streams) c.abort();
  }

  update(touched) {
    if (touched && !touched.has(this.id)) return;
    const j = this.job();
    if (!j) {
      this.facts.replaceChildren(el('dt', {}, 'State'), el('dd', {}, model.ready ? 'not among the last 24 hours\u2019 jobs' : '…'));
      return;
    }
    const fact = (k, v) => [el('dt', {}, k), el('dd', {}, v)];
    this.facts.replaceChildren(
      ...fact('State', el('span', { id: 'job-state' }, stateBadge(j.state))),
      ...fact('Name', j.name || '—'),
      ...fact('Host', j.host),
      ...fact('Command', el('code', {}, (j.command || []).join(' '))),
      ...fact('Exit code', j.exit_code ?? '—'),
      ...fact('Duration', duration(j) || '—'),
      ...fact('Reason', j.reason || '—'),
      ...fact('Created', j.created_at),
    );
    if (j.state !== this.lastState) {
      this.lastState = j.state;
      this.renderActions(j);
      if (touched) this.loadDetails();
    }
  }

  renderActions(j) {
    const kids = [];
    if (LIVE.has(j.state)) {
      kids.push(el('button', { type: 'button', id: 'cancel', class: 'danger', onclick: () => this.act('cancel') }, 'Cancel job'));
    }
    if (j.state === 'held') {
      kids.push(el('button', { type: 'button', id: 'release', onclick: () => this.act('release') }, 'Release hold'));
    }
    const had = document.activeElement && this.actions.contains(document.activeElement);
    this.actions.replaceChildren(...kids);
    if (had) (this.actions.querySelector('button') || this.main).focus();
  }

  async act(what) {
    const [url, body] = what === 'cancel'
      ? ['/v1/cancellations', { jobs: [this.id] }]
      : ['/v1/releases', { job: this.id }];
    for (const b of this.actions.querySelectorAll('button')) b.disabled = true;
    this.notice.textContent = what === 'cancel' ? 'Cancelling…' : 'Releasing…';
    try {
      const r = await fetch(url, { method: 'POST', headers: CHANGE_HEADERS, body: JSON.stringify(body), credentials: 'same-origin' });
      const data = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error((data.error && data.error.message) || r.statusText);
      const problem = (data.results || []).find((x) => x.error);
      if (problem) throw new Error(problem.error.message);
      this.notice.textContent = what === 'cancel' ? 'Cancel sent.' : 'Released.';
    } catch (e) {
      this.notice.textContent = 'Failed: ' + e.message;
      this.notice.className = 'error';
    } finally {
      for (const b of this.actions.querySelectorAll('button')) b.disabled = false;
    }
  }

  async loadDetails() {
    try {
      // From the store only: opening a page reaches no host.
      const r = await fetch('/v1/jobs/' + encodeURIComponent(this.id) + '/events', { credentials: 'same-origin' });
      if (!r.ok) return;
      const data = await r.json();
      if (this.closed) return;
      this.events.replaceChildren(...(data.job.events || []).map((ev) => el('li', {},
        el('time', { datetime: ev.at }, ev.at), ' ',
        ev.from ? ev.from + ' → ' : '', el('strong', {}, ev.to),
        ev.reason ? ': ' + ev.reason : '')));
      // Only an app job (`belay app run`) has an app to link to.
      if (data.job.env && data.job.env.BELAY_APP) this.loadApp();
    } catch (e) { /* shown again on the next change */ }
  }

  async loadApp() {
    const r = await fetch('/v1/jobs/' + encodeURIComponent(this.id) + '/app', { credentials: 'same-origin' });
    if (!r.ok || this.closed) return; // not an app
    const app = await r.json();
    if (app.state !== 'ready') {
      this.app.textContent = 'App: ' + app.state;
      return;
    }
    const f = await fetch('/v1/forwards', { credentials: 'same-origin' }).then((x) => x.json()).catch(() => ({ forwards: [] }));
    const fwd = (f.forwards || []).find((x) => x.job_id === this.id && x.state === 'listening' && /^[0-9.:[\]a-f]+$/.test(x.local));
    if (!fwd) {
      this.app.textContent = 'App ready on its node; no forward open here (belay forward ' + this.id + ').';
      return;
    }
    let href = 'http:' + '//' + fwd.local + (app.path || '/');
    if (app.token) href += (href.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(app.token);
    this.app.replaceChildren('App: ', el('a', { href, id: 'app-link', rel: 'noreferrer' }, 'open ' + fwd.local + (app.path || '/')));
  }

  // Follows one stream from the bytes already shown; a cut stream is asked
  // for again from there, so every byte shows once.
  async tail(stream, pre) {
    let offset = 0;
    let text = '';
    const decoder = new TextDecoder();
    while (!this.closed) {
      const ctl = new AbortController();
      this.streams.push(ctl);
      let ended = false;
      try {
        const r = await fetch('/v1/jobs/' + encodeURIComponent(this.id) + '/logs/' + stream + '?follow=true&offset=' + offset,
          { credentials: 'same-origin', signal: ctl.signal });
        if (r.ok) {
          const reader = r.body.getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            offset += value.length;
            text += decoder.decode(value, { stream: true });
            if (text.length > LOG_KEEP) text = text.slice(text.length - LOG_KEEP);
            const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
            pre.textContent = text;
            if (atEnd) pre.scrollTop = pre.scrollHeight;
          }
          const j = this.job();
          ended = !j || !LIVE.has(j.state);
        }
      } catch (e) { /* cut: ask again from the offset */ }
      this.streams = this.streams.filter((c) => c !== ctl);
      if (ended || this.closed) break;
      await new Promise((ok) => setTimeout(ok, 1000));
    }
    if (!this.closed && !text) pre.textContent = '(empty)';
  }
}

window.addEventListener('hashchange', route);
document.addEventListener('DOMContentLoaded', () => {
  route();
  connect();
});
