// RecForge experiment dashboard: a dependency-free single-page app over /api/*.
// Routes live in the URL hash so every view can be bookmarked and reloaded:
//   #/?experiment=&filter=&order_by=   runs table
//   #/run/ID                           run detail
//   #/compare?ids=a,b                  runs side by side
//   #/models                           registered models
// Every value from the store is user text: it only ever reaches the page through
// textContent / attributes (never innerHTML).
'use strict';

const SVG_NS = 'http://www.w3.org/2000/svg';
const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777'];
const selected = new Set();  // run ids ticked for comparison (kept across filters)

// ---------------------------------------------------------------- DOM helpers
function build(ns, tag, attrs, children) {
  const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'class') node.setAttribute('class', value);
    else if (name in node && !ns && name !== 'list') node[name] = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
const h = (tag, attrs, ...children) => build(null, tag, attrs, children);
const svg = (tag, attrs, ...children) => build(SVG_NS, tag, attrs, children);

async function api(path) {
  const response = await fetch('/api/' + path, {headers: {Accept: 'application/json'}});
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    throw new Error(`${path}: HTTP ${response.status}`);
  }
  if (!response.ok) throw new Error(body && body.error ? body.error : `HTTP ${response.status}`);
  return body;
}

// ---------------------------------------------------------------- formatting
function fmtNum(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value !== 'number') return String(value);
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e9)) return value.toExponential(4);
  return String(parseFloat(value.toPrecision(6)));
}
function pad2(n) { return String(n).padStart(2, '0'); }
function fmtTime(ms) {
  if (!ms) return '—';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
         `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}
function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0) return '—';
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} m ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} m`;
}
function fmtBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; ++unit; }
  return `${value.toFixed(1)} ${units[unit]}`;
}
const shortId = id => (id || '').slice(0, 8);
const statusPill = status => h('span', {class: 'pill status-' + String(status).toLowerCase()}, status);
const runLink = (id, text) => h('a', {href: '#/run/' + id, class: 'mono', title: id}, text || shortId(id));
// Lower is better for losses and errors; higher for everything else (ndcg, recall...).
const lowerIsBetter = key => /loss|rmse|mae|mse|error|seconds|time|_s$/.test(key);

function message(kind, text) { return h('div', {class: 'message ' + kind}, text); }
function section(title, ...content) { return h('section', {class: 'card'}, h('h2', {}, title), ...content); }
function keyValueTable(object, numeric) {
  const keys = Object.keys(object || {}).sort();
  if (!keys.length) return h('p', {class: 'muted'}, 'none');
  return h('table', {class: 'kv'}, h('tbody', {},
      keys.map(key => h('tr', {}, h('th', {}, key),
                         h('td', {class: numeric ? 'num' : '', title: String(object[key])},
                           numeric ? fmtNum(object[key]) : object[key])))));
}

// ---------------------------------------------------------------- charts (SVG)
// Round tick values spanning [min, max]; `integer` (steps, epochs) never splits a unit.
function niceTicks(min, max, count, integer) {
  if (!(max > min)) { const pad = integer ? 1 : Math.abs(min) * 0.05 || 1; min -= pad; max += pad; }
  const rough = (max - min) / count;
  const power = Math.pow(10, Math.floor(Math.log10(rough)));
  const ratio = rough / power;
  let step = power * (ratio < 1.5 ? 1 : ratio < 3 ? 2 : ratio < 7 ? 5 : 10);
  if (integer) step = Math.max(1, Math.round(step));
  const lo = Math.floor(min / step) * step, hi = Math.ceil(max / step) * step;
  const ticks = [];
  for (let v = lo; v <= hi + step / 2; v += step) ticks.push(parseFloat(v.toPrecision(12)));
  return {lo, hi, ticks};
}

// series: [{name, color, points: [{x, y}]}]. Returns a <figure> with an inline SVG.
function lineChart(title, series, xLabel) {
  const W = 480, H = 260, M = {left: 58, right: 14, top: 14, bottom: 36};
  const all = series.flatMap(s => s.points).filter(p => Number.isFinite(p.y));
  const figure = h('figure', {class: 'chart'}, h('figcaption', {}, title));
  if (!all.length) { figure.appendChild(h('p', {class: 'muted'}, 'no finite values')); return figure; }
  const xs = niceTicks(Math.min(...all.map(p => p.x)), Math.max(...all.map(p => p.x)), 6,
                       all.every(p => Number.isInteger(p.x)));
  const ys = niceTicks(Math.min(...all.map(p => p.y)), Math.max(...all.map(p => p.y)), 5);
  const px = x => M.left + (x - xs.lo) / (xs.hi - xs.lo) * (W - M.left - M.right);
  const py = y => H - M.bottom - (y - ys.lo) / (ys.hi - ys.lo) * (H - M.top - M.bottom);
  const root = svg('svg', {viewBox: `0 0 ${W} ${H}`, class: 'plot', role: 'img', 'aria-label': title});
  for (const y of ys.ticks) {
    root.appendChild(svg('line', {x1: M.left, x2: W - M.right, y1: py(y), y2: py(y), class: 'grid'}));
    root.appendChild(svg('text', {x: M.left - 6, y: py(y) + 4, class: 'tick', 'text-anchor': 'end'}, fmtNum(y)));
  }
  for (const x of xs.ticks) {
    root.appendChild(svg('line', {x1: px(x), x2: px(x), y1: H - M.bottom, y2: H - M.bottom + 4, class: 'axis'}));
    root.appendChild(svg('text', {x: px(x), y: H - M.bottom + 16, class: 'tick', 'text-anchor': 'middle'}, fmtNum(x)));
  }
  root.appendChild(svg('line', {x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, class: 'axis'}));
  root.appendChild(svg('line', {x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom, class: 'axis'}));
  root.appendChild(svg('text', {x: (W + M.left) / 2, y: H - 4, class: 'label', 'text-anchor': 'middle'}, xLabel));
  for (const s of series) {
    const points = s.points.filter(p => Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
    if (points.length > 1) {
      const d = points.map((p, i) => `${i ? 'L' : 'M'}${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ');
      root.appendChild(svg('path', {d, class: 'line', stroke: s.color}));
    }
    if (points.length <= 60) {
      for (const p of points) {
        root.appendChild(svg('circle', {cx: px(p.x), cy: py(p.y), r: 3, fill: s.color, class: 'dot'},
            svg('title', {}, `${s.name} · ${xLabel} ${p.x}: ${fmtNum(p.y)}`)));
      }
    }
  }
  figure.appendChild(root);
  if (series.length > 1) {
    figure.appendChild(h('div', {class: 'legend'}, series.map(s =>
        h('span', {}, h('i', {class: 'swatch', 'data-color': s.color}), s.name))));
    // CSP forbids inline style attributes; colour the swatches through the CSSOM.
    figure.querySelectorAll('.swatch').forEach(node => { node.style.background = node.dataset.color; });
  }
  return figure;
}

// ---------------------------------------------------------------- routing
function parseRoute() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query] = raw.split('?');
  return {parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query || '')};
}
function go(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) if (value) query.set(key, value);
  const text = query.toString();
  location.hash = '#' + path + (text ? '?' + text : '');
}

let renderToken = 0;
async function render() {
  const token = ++renderToken;
  const app = document.getElementById('app');
  const {parts, query} = parseRoute();
  const page = parts[0] || 'runs';
  document.querySelectorAll('[data-nav]').forEach(link =>
      link.classList.toggle('active', link.dataset.nav === (page === 'models' ? 'models' : 'runs')));
  let view;
  try {
    if (page === 'run' && parts[1]) view = await runPage(parts[1]);
    else if (page === 'compare') view = await comparePage(query);
    else if (page === 'models') view = await modelsPage();
    else view = await runsPage(query);
  } catch (error) {
    view = h('div', {}, message('error', error.message), h('p', {}, h('a', {href: '#/'}, '← all runs')));
  }
  if (token !== renderToken) return;  // a newer navigation won
  app.replaceChildren(view);
  app.dataset.page = page;
  document.body.dataset.ready = 'true';
}

// ---------------------------------------------------------------- runs page
const ATTRIBUTE_COLUMNS = [
  {label: 'Name', order: 'attributes.name', value: r => r.name},
  {label: 'Experiment', order: 'attributes.experiment', value: r => r.experiment},
  {label: 'Status', order: 'attributes.status', value: r => statusPill(r.status)},
  {label: 'Started', order: 'attributes.start_ms', value: r => fmtTime(r.start_ms)},
  {label: 'Duration', order: 'attributes.duration', value: r => fmtDuration(r.duration_s), num: true},
];

async function runsPage(query) {
  const experiment = query.get('experiment') || '';
  const filter = query.get('filter') || '';
  const orderBy = query.get('order_by') || '';
  const params = new URLSearchParams();
  if (experiment) params.set('experiment', experiment);
  if (filter) params.set('filter', filter);
  if (orderBy) params.set('order_by', orderBy);
  const [experiments, listing] = await Promise.all([
    api('experiments'),
    api('runs?' + params.toString()).catch(error => ({error: error.message})),
  ]);
  const state = {experiment, filter, order_by: orderBy};

  const select = h('select', {id: 'experiment', 'aria-label': 'Experiment',
                              onchange: e => go('/', {...state, experiment: e.target.value})},
      h('option', {value: ''}, 'All experiments'),
      experiments.experiments.map(e => h('option', {value: e.name, selected: e.name === experiment},
                                        `${e.name} (${e.run_count})`)));
  select.value = experiment;
  const input = h('input', {id: 'filter', type: 'search', value: filter, spellcheck: false,
                            placeholder: "metrics.ndcg@10 > 0.3 and params.family = 'ials'"});
  const compareButton = h('button', {id: 'compare', type: 'button', disabled: selected.size < 2,
                                     onclick: () => go('/compare', {ids: [...selected].join(',')})},
                          `Compare (${selected.size})`);
  const updateCompare = () => {
    compareButton.disabled = selected.size < 2;
    compareButton.textContent = `Compare (${selected.size})`;
  };
  const form = h('form', {class: 'toolbar', onsubmit: e => { e.preventDefault(); go('/', {...state, filter: input.value.trim()}); }},
      select, input, h('button', {type: 'submit'}, 'Filter'),
      h('button', {type: 'button', onclick: () => go('/', {experiment})}, 'Clear'),
      compareButton,
      h('button', {type: 'button', class: 'ghost', onclick: () => render()}, 'Refresh'));
  const help = h('details', {class: 'help small'}, h('summary', {}, 'Filter syntax'),
      h('p', {}, 'Terms ', h('code', {}, 'metrics.KEY | params.KEY | tags.KEY | attributes.NAME'),
        ' compared with ', h('code', {}, '= != < <= > >= like'), ' to a number or a quoted text, joined by ',
        h('code', {}, 'and / or'), ' with parentheses. Attributes: status, name, experiment, run_id, parent_id, start_ms, end_ms, duration. ',
        'Example: ', h('code', {}, "params.family = 'ials' and metrics.ndcg@10 >= 0.2")));

  const view = h('div', {class: 'runs-page'}, form, help);
  if (listing.error) {
    view.appendChild(message('error', listing.error));
    return view;
  }
  const runs = listing.runs;
  view.appendChild(h('p', {class: 'muted small', id: 'run-count'},
      `${listing.count} run${listing.count === 1 ? '' : 's'}` + (listing.truncated ? ' (first ones only: narrow the filter)' : '')));
  if (!runs.length) {
    view.appendChild(message('info', filter ? 'No run matches the filter.' : 'No runs recorded yet.'));
    return view;
  }

  const columns = [...ATTRIBUTE_COLUMNS,
    ...listing.param_keys.map(k => ({label: k, group: 'param', order: `params.${k}`, value: r => r.params[k] ?? '—'})),
    ...listing.metric_keys.map(k => ({label: k, group: 'metric', order: `metrics.${k}`, num: true,
                                      value: r => fmtNum(r.metrics[k]), title: r => r.metrics[k]}))];
  const [currentKey, currentDir] = orderBy.split(/\s+/);
  const header = h('tr', {},
      h('th', {}, h('input', {type: 'checkbox', 'aria-label': 'Select all', checked: runs.every(r => selected.has(r.id)),
                              onchange: e => {
                                for (const r of runs) e.target.checked ? selected.add(r.id) : selected.delete(r.id);
                                view.querySelectorAll('tbody input[type=checkbox]').forEach(box => { box.checked = e.target.checked; });
                                updateCompare();
                              }})),
      h('th', {}, 'Run'),
      columns.map(col => {
        const active = currentKey === col.order;
        const desc = active && (currentDir || 'asc').toLowerCase() === 'desc';
        const next = active && desc ? col.order : `${col.order} desc`;
        return h('th', {class: ['sortable', col.group || '', col.num ? 'num' : ''].join(' '),
                        title: `Sort by ${col.order}`, onclick: () => go('/', {...state, order_by: next})},
                 col.group ? h('span', {class: 'group'}, col.group) : null, col.label,
                 active ? (desc ? ' ▼' : ' ▲') : '');
      }));
  const body = h('tbody', {}, runs.map(run => h('tr', {'data-run': run.id},
      h('td', {}, h('input', {type: 'checkbox', checked: selected.has(run.id), 'aria-label': 'Select ' + run.id,
                              onchange: e => { e.target.checked ? selected.add(run.id) : selected.delete(run.id); updateCompare(); }})),
      h('td', {}, runLink(run.id), run.parent_id ? h('span', {class: 'muted small', title: 'child of ' + run.parent_id}, ' ↳') : null),
      columns.map(col => h('td', {class: col.num ? 'num' : '', title: col.title ? String(col.title(run) ?? '') : undefined},
                           col.value(run))))));
  view.appendChild(h('div', {class: 'table-wrap'}, h('table', {class: 'runs', id: 'runs'}, h('thead', {}, header), body)));
  return view;
}

// ---------------------------------------------------------------- run page
async function metricCharts(runs, keys) {
  // One chart per metric key; each run with two or more steps of it is a line.
  const figures = [];
  for (const key of keys) {
    const histories = await Promise.all(runs.filter(r => r.metric_keys.includes(key)).map(r =>
        api(`runs/${r.id}/metrics/${encodeURIComponent(key)}`).then(m => ({run: r, history: m.history}))));
    const series = histories.filter(x => x.history.length > 1).map(x => ({
      name: x.run.name || shortId(x.run.id),
      color: COLORS[runs.indexOf(x.run) % COLORS.length],
      points: x.history.map(p => ({x: p.step, y: p.value})),
    }));
    if (series.length) figures.push(lineChart(key, series, 'step'));
  }
  return figures;
}

async function runPage(id) {
  const run = await api('runs/' + encodeURIComponent(id));
  const charts = await metricCharts([run], run.metric_keys);
  const info = {
    'Run id': run.id,
    Experiment: h('a', {href: '#/?experiment=' + encodeURIComponent(run.experiment)}, run.experiment),
    Status: [statusPill(run.status), run.status_reason ? ' ' + run.status_reason : ''],
    Started: fmtTime(run.start_ms), Ended: fmtTime(run.end_ms), Duration: fmtDuration(run.duration_s),
    'User @ host': `${run.user}@${run.host} (pid ${run.pid})`,
    Command: h('code', {class: 'command'}, run.command || '—'),
    Version: `recforge ${run.recforge_version} (${run.git_commit})`,
  };
  if (run.parent_id) info.Parent = runLink(run.parent_id, run.parent_id);
  const head = h('div', {class: 'run-head'},
      h('h1', {}, run.name || shortId(run.id), ' ', statusPill(run.status)),
      h('div', {class: 'actions'},
        h('button', {type: 'button', onclick: () => { selected.add(run.id); go('/'); }}, 'Select for compare'),
        h('a', {href: '#/?experiment=' + encodeURIComponent(run.experiment), class: 'button ghost'}, '← runs')));
  const infoTable = h('table', {class: 'kv'}, h('tbody', {},
      Object.entries(info).map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v)))));

  const artifacts = run.artifacts.length ? h('table', {class: 'list'},
      h('thead', {}, h('tr', {}, ['Path', 'Kind', 'Size', 'SHA-256'].map(t => h('th', {}, t)))),
      h('tbody', {}, run.artifacts.map(a => h('tr', {}, h('td', {class: 'mono'}, a.path), h('td', {}, a.kind),
          h('td', {class: 'num'}, fmtBytes(a.size)), h('td', {class: 'mono', title: a.sha256}, a.sha256.slice(0, 16)))))) :
      h('p', {class: 'muted'}, 'none');
  const lineage = run.lineage.length ? h('table', {class: 'list'},
      h('thead', {}, h('tr', {}, ['Direction', 'Kind', 'Hash', 'Path', 'Other runs'].map(t => h('th', {}, t)))),
      h('tbody', {}, run.lineage.map(e => h('tr', {class: 'edge-' + e.direction},
          h('td', {}, e.direction === 'input' ? '← input' : '→ output'), h('td', {}, e.kind),
          h('td', {class: 'mono', title: e.hash}, e.hash.slice(0, 16)), h('td', {class: 'mono'}, e.path),
          h('td', {}, e.runs.length ? e.runs.map((r, i) => [i ? ', ' : '', runLink(r)]) : '—'))))) :
      h('p', {class: 'muted'}, 'none');
  const children = run.children.length ? h('ul', {class: 'children'}, run.children.map(c =>
      h('li', {}, runLink(c.id), ' ', c.name, ' ', statusPill(c.status)))) : null;

  return h('div', {class: 'run-page', id: 'run-' + run.id}, head,
      h('div', {class: 'grid2'}, section('Run', infoTable), section('Metrics', keyValueTable(run.metrics, true))),
      charts.length ? section('Metric curves', h('div', {class: 'charts'}, charts)) : null,
      h('div', {class: 'grid2'}, section('Parameters', keyValueTable(run.params)), section('Tags', keyValueTable(run.tags))),
      section('Artifacts', artifacts),
      section('Lineage', lineage),
      children ? section('Child runs', children) : null);
}

// ---------------------------------------------------------------- compare page
async function comparePage(query) {
  const ids = query.get('ids') || '';
  if (!ids) return message('info', 'Select two or more runs on the runs page, then press Compare.');
  const data = await api('compare?ids=' + encodeURIComponent(ids));
  const runs = data.runs;
  let onlyDiff = query.get('diff') === '1';
  const best = row => {
    const numbers = row.values.map(v => (typeof v === 'number' ? v : null));
    const finite = numbers.filter(v => v !== null && Number.isFinite(v));
    if (finite.length < 2 || !row.differs) return -1;
    const target = lowerIsBetter(row.key) ? Math.min(...finite) : Math.max(...finite);
    return numbers.indexOf(target);
  };
  const groupRows = (title, rows, numeric) => [
    h('tr', {class: 'group-row'}, h('th', {colspan: runs.length + 1}, `${title} (${rows.length})`)),
    rows.map(row => {
      const winner = numeric ? best(row) : -1;
      return h('tr', {class: row.differs ? 'diff' : 'same', 'data-key': row.key},
          h('th', {}, row.key),
          row.values.map((v, i) => h('td', {class: (numeric ? 'num' : '') + (i === winner ? ' best' : ''),
                                             title: v === null ? 'missing' : String(v)},
                                     numeric ? fmtNum(v) : (v ?? '—'))));
    })];
  const table = h('table', {class: 'compare' + (onlyDiff ? ' only-diff' : ''), id: 'compare-table'},
      h('thead', {}, h('tr', {}, h('th', {}, 'Run'), runs.map((r, i) => h('th', {},
          h('i', {class: 'swatch', 'data-color': COLORS[i % COLORS.length]}), runLink(r.id),
          h('div', {class: 'small'}, r.name), statusPill(r.status))))),
      h('tbody', {},
        groupRows('Parameters', data.params, false),
        groupRows('Metrics', data.metrics, true),
        groupRows('Tags', data.tags, false)));
  table.querySelectorAll('.swatch').forEach(node => { node.style.background = node.dataset.color; });
  const toggle = h('label', {class: 'small'}, h('input', {type: 'checkbox', checked: onlyDiff,
      onchange: e => { onlyDiff = e.target.checked; table.classList.toggle('only-diff', onlyDiff); }}),
      ' only rows that differ');
  const keys = [...new Set(runs.flatMap(r => r.metric_keys))].sort().slice(0, 24);
  const charts = await metricCharts(runs, keys);
  const differing = data.params.filter(r => r.differs).length + data.metrics.filter(r => r.differs).length;
  return h('div', {class: 'compare-page'},
      h('div', {class: 'run-head'}, h('h1', {}, `Comparing ${runs.length} runs`),
        h('div', {class: 'actions'}, toggle, h('a', {href: '#/', class: 'button ghost'}, '← runs'))),
      h('p', {class: 'muted small'}, `${differing} parameter/metric rows differ (highlighted); the best value of each differing metric is bold.`),
      h('div', {class: 'table-wrap card'}, table),
      charts.length ? section('Metric curves', h('div', {class: 'charts'}, charts)) : null);
}

// ---------------------------------------------------------------- models page
async function modelsPage() {
  const data = await api('models');
  if (!data.models.length) return h('div', {}, h('h1', {}, 'Registered models'),
      message('info', 'No registered models yet (recforge models register).'));
  return h('div', {class: 'models-page'}, h('h1', {}, 'Registered models'), data.models.map(model =>
      section(model.name,
        h('p', {class: 'aliases'}, Object.keys(model.aliases).length ?
            Object.entries(model.aliases).map(([alias, v]) => h('span', {class: 'pill alias'}, `@${alias} → v${v}`)) :
            h('span', {class: 'muted small'}, 'no aliases')),
        h('table', {class: 'list'},
          h('thead', {}, h('tr', {}, ['Version', 'Aliases', 'Run', 'Size', 'Registered', 'SHA-256', 'Description'].map(t => h('th', {}, t)))),
          h('tbody', {}, [...model.versions].reverse().map(v => h('tr', {},
              h('td', {class: 'num'}, 'v' + v.version),
              h('td', {}, v.aliases.map(a => h('span', {class: 'pill alias'}, '@' + a))),
              h('td', {}, runLink(v.run_id)),
              h('td', {class: 'num'}, fmtBytes(v.size)),
              h('td', {}, fmtTime(v.created_ms)),
              h('td', {class: 'mono', title: v.sha256}, v.sha256.slice(0, 16)),
              h('td', {}, v.description))))))));
}

// ---------------------------------------------------------------- start
window.addEventListener('hashchange', render);
api('info').then(info => { document.getElementById('store').textContent = info.database; }).catch(() => {});
render();
