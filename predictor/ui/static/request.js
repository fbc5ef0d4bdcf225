// Choosing a file and running the request (stream reading); part of the playground page (app.js wires it). Plain browser JavaScript, no build step.
'use strict';

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
