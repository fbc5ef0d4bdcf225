// Showing the answer: pages, boxes, text links, figures, copy and download; part of the playground page (app.js wires it). Plain browser JavaScript, no build step.
'use strict';

// ---- the answer -------------------------------------------------------------------------------------------------

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
