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

// ---- choosing a file -------------------------------------------------------------------------------------------

function refuse(message) {
  $('fileMsg').textContent = message;
  $('run').disabled = true;
  state.file = null;
}

async function pick(file) {
  $('fileMsg').textContent = '';
  if (!state.config) return refuse('The server settings are not loaded yet; try again in a moment.');
  const pdf = isPdfFile(file);
  if (!pdf && !file.type.startsWith('image/')) {
    return refuse(file.name + ' is neither an image nor a PDF.');
  }
  const limit = maxFileBytes();
  if (file.size > limit) {
    return refuse(file.name + ' is ' + fmtBytes(file.size) + ': larger than this server accepts, ' +
      fmtBytes(limit) + ' (its request limit max_body_bytes is ' + fmtInt(state.config.limits.max_body_bytes) +
      ' bytes, and base64 adds a third). Nothing was uploaded.');
  }
  let url = null;
  let renderable = !pdf;
  if (!pdf) {
    url = URL.createObjectURL(file);
    const size = await imageSize(url);
    renderable = size !== null;
    const max = state.config.limits.max_image_pixels;
    if (size && size.w * size.h > max) {
      URL.revokeObjectURL(url);
      return refuse(file.name + ' is ' + size.w + 'x' + size.h + ' = ' + fmtInt(size.w * size.h) +
        ' pixels: more than this server accepts, max_image_pixels = ' + fmtInt(max) + '. Nothing was uploaded.');
    }
  }
  if (state.fileUrl) URL.revokeObjectURL(state.fileUrl);
  Object.assign(state, {file, fileUrl: renderable ? url : null, isPdf: pdf, needsRender: !renderable});
  $('fileInfo').textContent = file.name + ' · ' + fmtBytes(file.size) + (pdf ? ' · PDF' : '');
  for (const field of document.querySelectorAll('.pdf-only')) field.hidden = !pdf;
  $('run').disabled = state.busy;
  if (!state.busy && !state.result && state.fileUrl) showImageOnly(state.fileUrl);
  setStatus('Ready: press OCR.');
}

function imageSize(url) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve({w: img.naturalWidth, h: img.naturalHeight});
    img.onerror = () => resolve(null);  // a format the browser cannot show (TIFF): the server renders it
    img.src = url;
  });
}

function showImageOnly(src) {
  $('boxes').textContent = '';
  $('pageImage').src = src;
  $('pageImage').alt = 'The chosen page';
  $('sheet').classList.add('shown');
  $('noImage').hidden = true;
}

// ---- running a request -----------------------------------------------------------------------------------------

function readDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function requestBody(dataUrl) {
  const part = state.isPdf ?
    {type: 'file', file: {file_data: dataUrl.replace(/^data:[^;,]*/, 'data:application/pdf')}} :
    {type: 'image_url', image_url: {url: dataUrl}};
  return {
    model: state.config.models[0], stream: true, stream_options: {include_usage: true},
    messages: [{role: 'user', content: [part]}], ocr: collectOptions(),
  };
}

async function run() {
  if (state.busy || !state.file) return;
  if (state.config.api_key_required && !apiKey()) {
    state.pendingRun = true;
    return askKey('This server requires an API key.');
  }
  const job = {file: state.file, fileUrl: state.fileUrl, isPdf: state.isPdf};
  const body = requestBody(await readDataUrl(job.file));
  state.lastOptions = body.ocr;
  state.busy = true;
  state.controller = new AbortController();
  $('run').disabled = true;
  $('stop').disabled = false;
  setState('sending');
  setStatus('Uploading ' + job.file.name + '…');
  let res;
  try {
    res = await fetch(new URL(state.config.chat_path, ROOT), {
      method: 'POST', headers: headers(), body: JSON.stringify(body), signal: state.controller.signal,
    });
  } catch (err) {
    return finish(err.name === 'AbortError' ? 'Stopped before the server answered.' :
      'The connection failed before the server answered: the request may be retried (press OCR).', 'error');
  }
  if (!res.ok) return finish(await httpError(res), 'error');
  startResult(job);
  try {
    await readStream(res);
  } catch (err) {
    const kept = state.text.length ? ' The text so far (' + state.text.length + ' characters) is kept.' : '';
    return finish(err.name === 'AbortError' ? 'Stopped.' + kept :
      'The connection dropped while the text was streaming: the request may be retried (press OCR).' + kept,
    'error');
  }
  if (document.body.dataset.state === 'error') return finish(null, 'error');
  if (!state.result) {
    return finish('The stream ended before the server finished: the request may be retried (press OCR). ' +
      'The text so far is kept.', 'error');
  }
  finish(null, 'done');
}

async function httpError(res) {
  let message = '';
  let param = null;
  try {
    const body = await res.json();
    const error = body.error;
    message = typeof error === 'string' ? error : (error && error.message) || '';
    param = error && error.param;
  } catch (_) { /* not JSON: the status says enough */ }
  if (res.status === 401) {
    sessionStorage.removeItem(KEY_STORE);
    state.pendingRun = true;
    askKey('API key required or wrong.');
    return 'API key required or wrong (401).';
  }
  const field = param ? ' (field: ' + param + ')' : '';
  if (res.status === 503 || res.status === 429 || res.status === 502 || res.status === 504) {
    const after = res.headers.get('Retry-After');
    return 'The server cannot take this request now (' + res.status + '): ' + (message || res.statusText) +
      '. The request may be retried' + (after ? ' in ' + after + ' s' : '') + ' (press OCR).';
  }
  return 'The server refused the request (' + res.status + '): ' + (message || res.statusText) + field + '.';
}

function finish(message, kind) {
  state.busy = false;
  state.controller = null;
  $('run').disabled = !state.file;
  $('stop').disabled = true;
  if (kind === 'error') {
    if (message) setStatus(message, 'error');
    setState('error');
    return;
  }
  const r = state.result;
  const looped = state.pages.filter((p) => p.flag).length;
  const blocks = state.pages.reduce((n, p) => n + p.blocks.length, 0);
  setStatus('Done: ' + state.pages.length + ' page' + (state.pages.length === 1 ? '' : 's') + ', ' + blocks +
    ' block' + (blocks === 1 ? '' : 's') + ', ' + (r.usage ? r.usage.completion_tokens + ' tokens, ' : '') +
    'finish reason ' + r.choices[0].finish_reason +
    (looped ? ', ' + looped + ' page(s) flagged as looping' : '') + '.', looped ? 'warn' : 'ok');
  setState('done');
}

// A new answer replaces the old one only once the server has accepted the request: a refused request loses nothing.
function startResult(run) {
  Object.assign(state, {text: '', deltas: 0, result: null, pages: [], page: 0, selected: null, shown: run});
  $('text').textContent = '';
  $('figures').textContent = '';
  $('figuresBox').hidden = true;
  for (const id of ['copy', 'downloadMd', 'downloadJson']) $(id).disabled = true;
  if (run.fileUrl) showImageOnly(run.fileUrl);
  else { $('sheet').classList.remove('shown'); $('noImage').hidden = false; $('noImage').textContent = 'The page appears when the server has rendered it.'; }
  $('pageLabel').textContent = 'Streaming…';
  $('pageFlag').hidden = true;
  setState('streaming');
  setStatus('Streaming the text…');
}

async function readStream(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const meta = {};
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, {stream: true});
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (onFrame(frame, meta) === 'stop') return;
    }
  }
}

function onFrame(frame, meta) {
  const data = frame.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
  if (!data) return null;
  if (data === '[DONE]') return 'stop';
  let obj;
  try { obj = JSON.parse(data); } catch (_) { return null; }
  if (obj.error) {
    const e = obj.error;
    const retry = e.type === 'server_error' || e.code === 503 || /retry/i.test(e.message || '');
    setStatus('The server stopped with an error: ' + e.message + (e.param ? ' (field: ' + e.param + ')' : '') +
      (retry ? '. The request may be retried (press OCR).' : '.') + ' The text so far is kept.', 'error');
    setState('error');
    return null;
  }
  Object.assign(meta, {id: obj.id, model: obj.model, created: obj.created});
  if (obj.usage) {
    meta.usage = obj.usage;
    if (state.result) state.result.usage = obj.usage;
  }
  const choice = obj.choices && obj.choices[0];
  if (!choice) return null;
  if (choice.delta && choice.delta.content) appendText(choice.delta.content);
  if (choice.finish_reason) complete(meta, choice.finish_reason, obj.ocr || null);
  return null;
}

function appendText(delta) {
  state.text += delta;
  state.deltas += 1;
  const pre = $('text');
  const following = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;  // the reader is at the end
  pre.append(document.createTextNode(delta));
  if (following) pre.scrollTop = pre.scrollHeight;
  const streamed = state.text.split(pageSplit()).length;
  if (state.shown && state.shown.isPdf) $('pageLabel').textContent = 'Streaming page ' + streamed + '…';
}

function complete(meta, finishReason, ocr) {
  state.result = {id: meta.id, object: 'chat.completion', created: meta.created, model: meta.model,
    choices: [{index: 0, message: {role: 'assistant', content: state.text}, finish_reason: finishReason}],
    usage: meta.usage, ocr};
  const texts = state.text.split(pageSplit());
  const pages = ocr && Array.isArray(ocr.pages) && ocr.pages.length ? ocr.pages : [{blocks: []}];
  state.pages = pages.map((p, i) => ({
    text: typeof p.text === 'string' ? p.text : (texts.length === pages.length ? texts[i] : (i ? '' : state.text)),
    blocks: Array.isArray(p.blocks) ? p.blocks : [],
    src: p.rendered_png ? 'data:image/png;base64,' + p.rendered_png : (i === 0 ? state.shown.fileUrl : null),
    flag: loopFlag(p),
    number: typeof p.number === 'number' ? p.number : null,
    figures: figuresOf(ocr, p, i, pages.length),
  }));
  for (const id of ['copy', 'downloadMd', 'downloadJson']) $(id).disabled = false;
  showPage(0);
  showFigures();
}

// The trust options add these; without them nothing is marked.
function loopFlag(page) {
  const r = page.repetition;
  if (!r || !r.suspected) return null;
  const span = typeof r.span === 'string' && r.span ? '; it repeats "' + r.span.slice(0, 80) +
    (r.span.length > 80 ? '…' : '') + '"' : '';
  return 'This page looks like it loops' + (r.reason ? ' (' + r.reason + ')' : '') + span +
    (page.attempts ? '; attempts: ' + JSON.stringify(page.attempts) : '') + '.';
}

function figuresOf(ocr, page, index, count) {
  const own = Array.isArray(page.figures) ? page.figures : [];
  const all = ocr && Array.isArray(ocr.figures) ? ocr.figures : [];
  const mine = all.filter((f) => f.page === undefined ? count === 1 : f.page === index + 1 || f.page === index);
  return own.length ? own : (count === 1 ? all : mine);
}

function figureSrc(fig) {
  for (const key of ['data_url', 'url', 'jpeg', 'image', 'data', 'b64_json', 'base64']) {
    const v = fig[key];
    if (typeof v === 'string' && v) {
      return v.startsWith('data:') ? v : 'data:' + (fig.mime || 'image/jpeg') + ';base64,' + v;
    }
  }
  return null;
}

// ---- showing a page --------------------------------------------------------------------------------------------

function showPage(index) {
  state.page = index;
  state.selected = null;
  const page = state.pages[index];
  const count = state.pages.length;
  // with a page selection, the PDF's own page number differs from the position among the answered pages
  const own = page.number && page.number !== index + 1 ? ' (PDF page ' + page.number + ')' : '';
  $('pageLabel').textContent = 'Page ' + (index + 1) + ' of ' + count + own;
  $('prev').disabled = index === 0;
  $('next').disabled = index >= count - 1;
  $('pageFlag').textContent = page.flag || '';
  $('pageFlag').hidden = !page.flag;
  const boxes = $('boxes');
  boxes.textContent = '';
  if (page.src) {
    $('pageImage').src = page.src;
    $('pageImage').alt = 'Page ' + (index + 1) + ' with ' + page.blocks.length + ' blocks';
    $('sheet').classList.add('shown');
    $('noImage').hidden = true;
  } else {
    $('sheet').classList.remove('shown');
    $('noImage').hidden = false;
    $('noImage').textContent = 'No picture of this page (the server did not render it).';
  }
  page.blocks.forEach((block, i) => boxes.append(boxFor(block, i)));
  renderText(page);
}

function low(block) { return typeof block.confidence === 'number' && block.confidence < LOW_CONFIDENCE; }

function describe(block) {
  return block.label + (typeof block.confidence === 'number' ? ' · confidence ' + block.confidence.toFixed(2) : '');
}

// One button per block, over the union of its boxes (0-999 scale of the page, so it scales with the picture).
function boxFor(block, index) {
  const boxes = Array.isArray(block.boxes) && block.boxes.length ? block.boxes : [[0, 0, 0, 0]];
  const x1 = Math.min(...boxes.map((b) => b[0])); const y1 = Math.min(...boxes.map((b) => b[1]));
  const x2 = Math.max(...boxes.map((b) => b[2])); const y2 = Math.max(...boxes.map((b) => b[3]));
  // a box at the top edge carries its label inside, where the picture does not cut it off
  const classes = 'box' + (low(block) ? ' low' : '') + (y1 < 40 ? ' top' : '');
  const button = el('button', {type: 'button', class: classes, 'data-block': index,
    'aria-label': 'Block ' + (index + 1) + ': ' + describe(block), title: describe(block)});
  Object.assign(button.style, {left: x1 / 9.99 + '%', top: y1 / 9.99 + '%', width: (x2 - x1) / 9.99 + '%',
    height: (y2 - y1) / 9.99 + '%'});
  button.append(el('span', {}, block.label));
  button.addEventListener('click', () => select(index, 'box'));
  return button;
}

// The page's text with each block's text made a link to its box (found in order; a block whose text is not in
// the clean text, e.g. a figure, has only its box).
function renderText(page) {
  const pre = $('text');
  pre.textContent = '';
  const text = page.text;
  let cursor = 0;
  const grounding = $('task').value === 'grounding';
  page.blocks.forEach((block, i) => {
    const needle = ((block.text || '').trim() || (grounding ? block.label || '' : '')).trim();
    if (!needle) return;
    const at = text.indexOf(needle, cursor);
    if (at < 0) return;
    pre.append(document.createTextNode(text.slice(cursor, at)));
    const seg = el('span', {class: 'seg' + (low(block) ? ' low' : ''), 'data-block': i, tabindex: '0',
      role: 'button', title: describe(block)}, needle);
    seg.addEventListener('click', () => select(i, 'text'));
    seg.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); select(i, 'text'); }
    });
    pre.append(seg);
    cursor = at + needle.length;
  });
  pre.append(document.createTextNode(text.slice(cursor)));
}

function select(index, from) {
  state.selected = index;
  for (const node of document.querySelectorAll('.box.sel, .seg.sel')) node.classList.remove('sel');
  const box = $('boxes').querySelector('[data-block="' + index + '"]');
  const seg = $('text').querySelector('[data-block="' + index + '"]');
  for (const node of [box, seg]) if (node) node.classList.add('sel');
  const other = from === 'box' ? seg : box;
  if (other) other.scrollIntoView({block: 'nearest', behavior: 'smooth'});
  const block = state.pages[state.page].blocks[index];
  setStatus('Block ' + (index + 1) + ': ' + describe(block) + (seg ? '' : ' (no text of its own)') + '.');
}

function showFigures() {
  const box = $('figures');
  box.textContent = '';
  let count = 0;
  state.pages.forEach((page, p) => page.figures.forEach((fig, i) => {
    const src = figureSrc(fig);
    if (!src) return;
    const name = fig.name || fig.filename || p + '_' + i + '.jpg';
    const figure = el('figure');
    // the name the Markdown links to (images/NAME): saving it under that name keeps the links working
    const link = el('a', {href: src, download: name, title: 'Download ' + name});
    link.append(el('img', {src, alt: 'Figure ' + name}));
    figure.append(link, el('figcaption', {}, name));
    box.append(figure);
    count += 1;
  }));
  $('figuresBox').hidden = count === 0;
}

// ---- copy and download -----------------------------------------------------------------------------------------

function download(name, type, content) {
  const url = URL.createObjectURL(new Blob([content], {type}));
  const a = el('a', {href: url, download: name});
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function copyMarkdown() {
  try {
    await navigator.clipboard.writeText(state.text);
    setStatus('Markdown copied (' + state.text.length + ' characters).', 'ok');
  } catch (_) {
    const range = document.createRange();
    range.selectNodeContents($('text'));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    setStatus('The browser refused the clipboard: the text is selected, press Ctrl+C.', 'warn');
  }
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
