// DeepSeek-OCR playground: one file in, the OpenAI chat API streamed out, boxes drawn over the page.
// Plain browser JavaScript, no dependencies and no build step; everything goes to the server that served the page.
'use strict';

const $ = (id) => document.getElementById(id);
const PAGE_SPLIT = '\n\n<--- Page Split --->\n\n';  // the server's own, from config.json, wins
const KEY_STORE = 'deepseek-ocr-api-key';
const LOW_CONFIDENCE = 0.8;
// Options this page knows how to offer, shown only when the server lists them in /ui/config.json.
const EXTRA_OPTIONS = [
  {name: 'figures', label: 'Crop figures', kind: 'bool'},
  {name: 'pages', label: 'PDF pages (e.g. 1-3,7)', kind: 'text', hint: 'all'},
  {name: 'dpi', label: 'PDF DPI', kind: 'number', min: 72, max: 300, hint: '144'},
  {name: 'math', label: 'Math delimiters', kind: 'choice', choices: ['latex', 'dollar']},
  {name: 'table_format', label: 'Tables', kind: 'choice', choices: ['html', 'markdown']},
  {name: 'tables', label: 'Tables', kind: 'choice', choices: ['html', 'markdown']},
  {name: 'on_repetition', label: 'When a page loops', kind: 'choice', choices: ['flag', 'retry']},
];
const PDF_ONLY = new Set(['pages', 'dpi']);

// The server's root, whatever prefix the page is served under (…/ui -> …/).
const ROOT = new URL(location.pathname.replace(/\/ui\/?(index\.html)?$/, '/'), location.href);
const state = {
  config: null, file: null, fileUrl: null, isPdf: false, needsRender: false, busy: false, controller: null,
  text: '', deltas: 0, result: null, pages: [], page: 0, selected: null, pendingRun: false, lastOptions: null,
};

// ---- small helpers ---------------------------------------------------------------------------------------------

function fmtBytes(n) {
  if (n >= 1024 * 1024) return (n / (1024 * 1024)).toFixed(1) + ' MB';
  if (n >= 1024) return (n / 1024).toFixed(1) + ' KB';
  return n + ' bytes';
}

function fmtInt(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ','); }

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') node.className = v; else node.setAttribute(k, v);
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

function setStatus(text, kind) {
  const node = $('status');
  node.textContent = text;
  node.className = 'status' + (kind ? ' ' + kind : '');
}

function setState(name) { document.body.dataset.state = name; }

function pageSplit() { return (state.config && state.config.page_separator) || PAGE_SPLIT; }

function apiKey() { return sessionStorage.getItem(KEY_STORE) || ''; }

function headers() {
  const h = {'Content-Type': 'application/json'};
  if (apiKey()) h.Authorization = 'Bearer ' + apiKey();
  return h;
}

function isPdfFile(file) { return file.type === 'application/pdf' || /\.pdf$/i.test(file.name); }

function baseName() { return state.file ? state.file.name.replace(/\.[^.]+$/, '') || 'page' : 'page'; }

// ---- server settings -------------------------------------------------------------------------------------------

async function loadConfig() {
  let config;
  try {
    const res = await fetch(new URL('ui/config.json', ROOT), {cache: 'no-store'});
    if (!res.ok) throw new Error('HTTP ' + res.status);
    config = await res.json();
  } catch (err) {
    $('server').textContent = 'Could not read the server settings (' + err.message + '); retrying…';
    setTimeout(loadConfig, 3000);
    return;
  }
  const first = !state.config;
  state.config = config;
  const limits = config.limits;
  $('server').textContent = (config.ready ? 'Model ' + config.models[0] + ' (' + config.family + ')' :
    'Model ' + config.models[0] + ' is loading') + ' · files up to ' + fmtBytes(maxFileBytes()) +
    ' · PDFs up to ' + limits.max_pdf_pages + ' pages' + (config.api_key_required ? ' · API key required' : '');
  if (first) buildOptions();
  fillModes();
  if (!config.ready) setTimeout(loadConfig, 3000);
  setState('idle');
}

// The body is JSON with the file as base64 (4 bytes per 3) plus a little framing: the file must fit in that.
function maxFileBytes() {
  return Math.max(0, Math.floor((state.config.limits.max_body_bytes - 2048) / 4) * 3);
}

function option(name) { return state.config.options.includes(name); }

function defaultOf(name) {
  const v = state.config.defaults[name];
  return v === undefined || v === null ? null : v;
}

function buildOptions() {
  const config = state.config;
  const task = $('task');
  for (const name of config.tasks) {
    const opt = el('option', {value: name}, name + (name === defaultOf('task') ? ' (default)' : ''));
    if (name === defaultOf('task')) opt.selected = true;
    task.append(opt);
  }
  task.addEventListener('change', () => { $('refField').hidden = task.value !== 'locate'; });
  const tokens = $('maxTokens');
  tokens.value = defaultOf('max_tokens') || '';
  tokens.max = config.limits.max_new_tokens;
  $('maxTokens').previousElementSibling.textContent = 'Max tokens (default ' + defaultOf('max_tokens') + ')';
  const box = $('extraOptions');
  const seen = new Set();
  for (const spec of EXTRA_OPTIONS) {
    if (!option(spec.name) || seen.has(spec.label)) continue;
    seen.add(spec.label);
    box.append(optionField(spec));
  }
}

function optionField(spec) {
  const id = 'opt-' + spec.name;
  const def = defaultOf(spec.name);
  const shown = def !== null ? def : spec.hint;  // the server applies it, though the option's own default is unset
  const field = el('div', {class: 'field' + (spec.kind === 'bool' ? ' check' : '')});
  const label = el('label', {for: id},
    spec.label + (shown !== undefined && spec.kind !== 'bool' ? ' (default ' + shown + ')' : ''));
  let input;
  if (spec.kind === 'bool') {
    input = el('input', {id, type: 'checkbox'});
    input.checked = def === true;
    field.append(input, label);
  } else if (spec.kind === 'choice') {
    input = el('select', {id});
    const choices = def !== null && !spec.choices.includes(def) ? [def, ...spec.choices] : spec.choices;
    for (const c of choices) {
      const opt = el('option', {value: c}, c + (c === def ? ' (default)' : ''));
      if (c === def) opt.selected = true;
      input.append(opt);
    }
    field.append(label, input);
  } else {
    input = el('input', {id, type: spec.kind === 'number' ? 'number' : 'text'});
    if (spec.min !== undefined) { input.min = spec.min; input.max = spec.max; }
    if (shown !== undefined) input.placeholder = String(shown);
    field.append(label, input);
  }
  input.dataset.option = spec.name;
  input.dataset.kind = spec.kind;
  if (PDF_ONLY.has(spec.name)) {
    field.classList.add('pdf-only');
    field.hidden = true;  // shown once a PDF is chosen
  }
  return field;
}

function fillModes() {
  const mode = $('mode');
  const config = state.config;
  if (mode.options.length && mode.options.length === config.modes.length + 1) return;
  mode.textContent = '';
  const def = defaultOf('mode');
  mode.append(el('option', {value: ''}, 'server default' + (def ? ' (' + def + ')' : '')));
  for (const m of config.modes) mode.append(el('option', {value: m}, m));
}

// Only what differs from the server's defaults is sent: the request says exactly what was chosen.
function collectOptions() {
  const ocr = {};
  const task = $('task').value;
  if (task && task !== defaultOf('task')) ocr.task = task;
  if (task === 'locate') ocr.ref = $('ref').value;
  if ($('mode').value) ocr.mode = $('mode').value;
  const tokens = parseInt($('maxTokens').value, 10);
  if (tokens && tokens !== defaultOf('max_tokens')) ocr.max_tokens = tokens;
  for (const input of $('extraOptions').querySelectorAll('[data-option]')) {
    const name = input.dataset.option;
    if (PDF_ONLY.has(name) && !state.isPdf) continue;
    let value;
    if (input.dataset.kind === 'bool') value = input.checked;
    else if (input.dataset.kind === 'number') value = input.value === '' ? null : Number(input.value);
    else value = input.value === '' ? null : input.value;
    if (value !== null && value !== defaultOf(name) && !(value === false && defaultOf(name) === null)) {
      ocr[name] = value;
    }
  }
  if (state.needsRender) ocr.render = true;  // the browser cannot draw a PDF page itself: the server renders it
  return ocr;
}

// ---- API key ---------------------------------------------------------------------------------------------------

function askKey(message) {
  $('keyMsg').textContent = message || '';
  $('keyInput').value = '';
  if (!$('keyDialog').open) $('keyDialog').showModal();
  $('keyInput').focus();
}

function saveKey() {
  const key = $('keyInput').value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORE, key);
  setStatus('API key saved for this tab.');
  if (state.pendingRun) { state.pendingRun = false; run(); }
}

// ---- wiring ----------------------------------------------------------------------------------------------------

function wire() {
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer.files.length) pick(e.dataTransfer.files[0]);
  });
  $('file').addEventListener('change', () => { if ($('file').files.length) pick($('file').files[0]); });
  $('run').addEventListener('click', run);
  // Enter in a text or number option runs the OCR; the form itself never submits (that would reload the page)
  $('options').addEventListener('submit', (e) => e.preventDefault());
  $('options').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && e.target.tagName === 'INPUT' && e.target.type !== 'checkbox') {
      e.preventDefault();
      run();
    }
  });
  $('stop').addEventListener('click', () => state.controller && state.controller.abort());
  $('prev').addEventListener('click', () => showPage(Math.max(0, state.page - 1)));
  $('next').addEventListener('click', () => showPage(Math.min(state.pages.length - 1, state.page + 1)));
  $('copy').addEventListener('click', copyMarkdown);
  $('downloadMd').addEventListener('click', () => download(baseName() + '.md', 'text/markdown', state.text));
  $('downloadJson').addEventListener('click', () => download(baseName() + '.json', 'application/json',
    JSON.stringify(state.result, null, 2)));
  $('keyButton').addEventListener('click', () => askKey(apiKey() ? 'A key is saved for this tab; enter a new one.' : ''));
  $('keyForm').addEventListener('submit', saveKey);
  $('keyCancel').addEventListener('click', () => { state.pendingRun = false; $('keyDialog').close(); });
  loadConfig();
}

wire();
