// RecForge serving demo: plain JavaScript over the server's JSON API (no framework, no
// build step). Every value from the API is put into the page with textContent, never
// as HTML.
'use strict';

const $ = (id) => document.getElementById(id);
const state = { user: '', info: null };

// fetch + JSON; throws an Error carrying the API's {"error": {"code", "message"}}.
async function api(path, options = {}) {
  const init = { ...options, headers: { Accept: 'application/json', ...(options.headers || {}) } };
  if (options.json !== undefined) {
    init.method = init.method || 'POST';
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(options.json);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
  if (!response.ok) {
    const message = body && body.error ? body.error.message : text || response.statusText;
    const error = new Error(`${response.status}: ${message}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function setStatus(id, message, kind = '') {
  const node = $(id);
  node.textContent = message;
  node.className = `status ${kind}`;
}

function formatScore(score) {
  if (typeof score !== 'number' || !isFinite(score)) return '';
  return Math.abs(score) >= 100 ? score.toFixed(0) : score.toPrecision(3);
}

// One item row: title (or id), id, score and category tags. Click → similar items.
function itemRow(item, { withScore = true, scoreLabel = 'score', withUse = false, fresh = false } = {}) {
  const li = el('li', fresh ? 'fresh' : '');
  li.dataset.itemId = item.item_id;
  const line = el('div', 'item-line');
  line.append(el('span', 'item-title', item.title || `item ${item.item_id}`));
  line.append(el('span', 'item-id', item.item_id));
  if (withScore && typeof item.score === 'number') {
    const score = el('span', 'item-score', formatScore(item.score));
    score.title = `${scoreLabel}: ${item.score}`;
    line.append(score);
  }
  if (withUse) {
    const use = el('button', 'use', 'use');
    use.type = 'button';
    use.title = 'fill the event form with this item';
    use.addEventListener('click', (event) => {
      event.stopPropagation();
      $('event-user').value = state.user;
      $('event-item').value = item.item_id;
      $('event-item').focus();
    });
    line.append(use);
  }
  li.append(line);
  if (item.categories && item.categories.length) {
    const cats = el('div', 'item-cats');
    for (const category of item.categories) cats.append(el('span', 'cat', category));
    li.append(cats);
  }
  li.addEventListener('click', () => showSimilar(item));
  return li;
}

function fillList(id, items, emptyText, rowOptions) {
  const list = $(id);
  list.replaceChildren();
  if (!items || items.length === 0) {
    list.append(el('li', 'empty', emptyText));
    return;
  }
  for (const item of items) list.append(itemRow(item, rowOptions(item)));
}

function listError(id, error) {
  const list = $(id);
  list.replaceChildren(el('li', 'empty', `error ${error.message}`));
}

async function loadInfo() {
  try {
    const info = await api('/info');
    state.info = info;
    const model = info.model || {};
    const parts = [`model ${model.name || '?'}${model.version ? ' v' + model.version : ''}`];
    if (model.spec) parts.push(model.spec);
    parts.push(`${info.users} users`, `${info.items} items`);
    if (info.ann !== undefined) parts.push(info.ann ? 'ANN retrieval' : 'exact retrieval');
    $('model-info').textContent = parts.join(' · ');
    for (const select of [$('rec-category'), $('popular-category')]) {
      for (const category of info.categories || []) select.append(new Option(category, category));
    }
    await loadSampleUsers(info);
  } catch (error) {
    $('model-info').textContent = `model info unavailable (${error.message})`;
  }
}

// A few users to click: the server's own sample when /info has one, else the first ids
// of the usual id schemes (MovieLens "1", "2", …; `recforge data synth` "u0", "u1", …)
// that the server knows.
async function loadSampleUsers(info) {
  let users = Array.isArray(info.sample_users) ? info.sample_users.slice(0, 8) : [];
  if (users.length === 0) {
    const candidates = ['1', '2', '3', '4', '5', '6', 'u0', 'u1', 'u2', 'u3', 'u4', 'u5'];
    const known = await Promise.all(candidates.map(async (id) => {
      try {
        const history = await api(`/users/${encodeURIComponent(id)}/history?limit=1`);
        return history && history.known !== false && (history.items || []).length > 0 ? id : null;
      } catch (_) { return null; }
    }));
    users = known.filter((id) => id !== null);
  }
  const chips = $('sample-users');
  chips.replaceChildren();
  if (users.length) chips.append(el('span', 'hint', 'try:'));
  for (const id of users) {
    const chip = el('button', 'chip', id);
    chip.type = 'button';
    chip.dataset.user = id;
    chip.addEventListener('click', () => selectUser(id));
    chips.append(chip);
    $('user-list').append(new Option(id, id));
  }
  if (users.length && !state.user) await selectUser(users[0]);
}

function recommendRequest() {
  const request = {
    user_id: state.user,
    top_k: Math.min(1000, Math.max(1, parseInt($('top-k').value, 10) || 10)),
    exclude_seen: $('exclude-seen').checked,
  };
  const category = $('rec-category').value;
  if (category) request.filter = { categories: [category] };
  return request;
}

async function loadRecommendations(previousIds = null) {
  if (!state.user) return;
  try {
    const response = await api('/recommend', { json: recommendRequest() });
    const source = $('rec-source');
    source.textContent = response.source || '';
    source.className = `badge ${response.source && response.source !== 'model' ? 'fallback' : ''}`;
    source.title = response.model ? `${response.model.name} ${response.model.spec || ''}` : '';
    fillList('recommendations', response.items, 'No recommendations.', (item) => ({
      withUse: true,
      fresh: previousIds !== null && !previousIds.has(item.item_id),
    }));
  } catch (error) {
    $('rec-source').textContent = '';
    listError('recommendations', error);
  }
}

async function loadHistory() {
  if (!state.user) return;
  try {
    const history = await api(`/users/${encodeURIComponent(state.user)}/history?limit=50`);
    const empty = history.known === false ? 'Unknown user: the recommendations come from a fallback.' : 'No history.';
    fillList('history', history.items, empty, () => ({ scoreLabel: 'rating' }));
  } catch (error) {
    if (error.status === 404) {
      $('history').replaceChildren(el('li', 'empty', 'Unknown user: the recommendations come from a fallback.'));
    } else {
      listError('history', error);
    }
  }
}

async function selectUser(id) {
  state.user = id.trim();
  if (!state.user) return;
  $('user-input').value = state.user;
  $('event-user').value = state.user;
  for (const chip of document.querySelectorAll('.chip')) chip.classList.toggle('active', chip.dataset.user === state.user);
  setStatus('status', `user ${state.user}`);
  await Promise.all([loadRecommendations(), loadHistory()]);
}

async function showSimilar(item) {
  for (const node of document.querySelectorAll('.items li.selected')) node.classList.remove('selected');
  for (const node of document.querySelectorAll(`.items li`)) {
    if (node.dataset.itemId === item.item_id) node.classList.add('selected');
  }
  $('similar-of').textContent = `of ${item.title || item.item_id}`;
  try {
    const response = await api(`/items/${encodeURIComponent(item.item_id)}/similar?k=10`);
    fillList('similar', response.items, 'No similar items.', () => ({ scoreLabel: 'similarity' }));
  } catch (error) {
    listError('similar', error);
  }
}

async function loadPopular() {
  const category = $('popular-category').value;
  const query = category ? `&category=${encodeURIComponent(category)}` : '';
  try {
    const response = await api(`/popular?k=10${query}`);
    fillList('popular', response.items, 'No popular items.', () => ({ scoreLabel: 'popularity' }));
  } catch (error) {
    listError('popular', error);
  }
}

async function postEvent(event) {
  event.preventDefault();
  await submitEvent();
}

async function submitEvent() {
  const body = { user_id: $('event-user').value.trim(), item_id: $('event-item').value.trim() };
  const rating = parseFloat($('event-rating').value);
  if (isFinite(rating)) body.rating = rating;
  try {
    const response = await api('/events', { json: body });
    setStatus('event-status', `stored ${response && response.stored !== undefined ? response.stored : 1} event: ${body.user_id} → ${body.item_id}`, 'ok');
    const previous = new Set([...document.querySelectorAll('#recommendations li')].map((li) => li.dataset.itemId));
    if (body.user_id !== state.user) {
      await selectUser(body.user_id);
    } else {
      await Promise.all([loadRecommendations(previous), loadHistory()]);
    }
  } catch (error) {
    setStatus('event-status', `event refused: ${error.message}`, 'error');
  }
}

function init() {
  $('user-form').addEventListener('submit', (event) => { event.preventDefault(); selectUser($('user-input').value); });
  for (const id of ['top-k', 'rec-category', 'exclude-seen']) $(id).addEventListener('change', () => loadRecommendations());
  $('popular-category').addEventListener('change', loadPopular);
  $('event-form').addEventListener('submit', postEvent);
  // Deep link: /?user=U shows U; /?user=U&event=ITEM then posts the event "U viewed
  // ITEM" through the event form, as a click on "post event" would (a demo one can link
  // to, and how the browser test drives the event flow).
  const params = new URLSearchParams(window.location.search);
  const linked = async () => {
    if (params.get('user')) await selectUser(params.get('user'));
    if (params.get('user') && params.get('event')) {
      $('event-item').value = params.get('event');
      await submitEvent();
    }
  };
  // data-ready tells tests (and impatient humans) that the first render is complete.
  Promise.all([loadInfo(), loadPopular()]).then(linked).finally(() => { document.body.dataset.ready = 'true'; });
}

init();
