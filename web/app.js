// The bertqa page: ask questions over passages and run evaluations, through the public API
// only (the same calls a client makes). No framework, no build step: this file is served as
// written, embedded in the binary.

const $ = (id) => document.getElementById(id);

const EXAMPLE_PASSAGE =
  'Super Bowl 50 was an American football game to determine the champion of the National ' +
  'Football League (NFL) for the 2015 season. The American Football Conference (AFC) champion ' +
  'Denver Broncos defeated the National Football Conference (NFC) champion Carolina Panthers ' +
  '24–10 to earn their third Super Bowl title. The game was played on February 7, 2016, at ' +
  "Levi's Stadium in the San Francisco Bay Area at Santa Clara, California.";

const POLL_MS = 300;
const TABLE_ROWS = 500;

/** An error the API answered with: its words, its type, its status. */
class ApiError extends Error {
  constructor(message, type, status) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

/** Calls the API with the key, if one is set; throws ApiError with the server's words. */
async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = $('api-key').value.trim();
  if (key) headers.set('Authorization', `Bearer ${key}`);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (e) {
    throw new ApiError(`Cannot reach the server (${e.message}).`, 'network', 0);
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const words = body && body.error ? body.error : `${response.status} ${response.statusText}`;
    const type = body && body.error_type ? body.error_type : 'http';
    if (response.status === 401) $('key-box').open = true;
    throw new ApiError(words, type, response.status);
  }
  return { body, response };
}

function showError(error) {
  const box = $('error');
  box.textContent = '';
  const title = document.createElement('strong');
  title.textContent = error.status ? `Error ${error.status} (${error.type}): ` : 'Error: ';
  box.append(title, document.createTextNode(error.message));
  if (error.status === 401) box.append(document.createTextNode(' Enter the API key above.'));
  box.hidden = false;
}

function clearError() {
  $('error').hidden = true;
}

/** `text` with the character (code point) ranges of `spans` wrapped in <mark>s. */
function highlighted(text, spans) {
  const chars = Array.from(text);
  const classes = chars.map(() => new Set());
  for (const span of spans) {
    for (let i = span.start; i < Math.min(span.end, chars.length); i++) classes[i].add(span.cls);
  }
  const fragment = document.createDocumentFragment();
  let i = 0;
  while (i < chars.length) {
    const key = [...classes[i]].sort().join(' ');
    let j = i;
    while (j < chars.length && [...classes[j]].sort().join(' ') === key) j++;
    const piece = chars.slice(i, j).join('');
    if (key) {
      const mark = document.createElement('mark');
      mark.className = key;
      mark.textContent = piece;
      fragment.append(mark);
    } else {
      fragment.append(document.createTextNode(piece));
    }
    i = j;
  }
  return fragment;
}

function percent(x, digits = 1) {
  return `${(100 * x).toFixed(digits)}%`;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---- model facts and views -------------------------------------------------------------

async function loadFacts() {
  try {
    const { body } = await api('/info');
    const facts = [
      body.model,
      `SQuAD ${body.squad_version}`,
      `${body.graph.weights} graph`,
      `${body.architecture.layers} layers`,
      body.score === 'calibrated' ? 'calibrated scores' : `${body.score} scores`,
      body.device,
    ];
    $('model-facts').textContent = facts.join(' · ');
  } catch (e) {
    $('model-facts').textContent = `Model facts unavailable: ${e.message}`;
  }
}

function showView() {
  const view = location.hash === '#evaluate' ? 'evaluate' : 'ask';
  for (const name of ['ask', 'evaluate']) {
    $(name).hidden = name !== view;
    $(`tab-${name}`).setAttribute('aria-selected', String(name === view));
  }
}

// ---- Ask -------------------------------------------------------------------------------

function addPassage(text = '') {
  const item = $('passage-template').content.firstElementChild.cloneNode(true);
  item.querySelector('textarea').value = text;
  item.querySelector('.remove').addEventListener('click', () => {
    if ($('passages').children.length > 1) item.remove();
    numberPassages();
  });
  $('passages').append(item);
  numberPassages();
  return item;
}

function numberPassages() {
  [...$('passages').children].forEach((item, i) => {
    item.querySelector('textarea').setAttribute('aria-label', `Passage ${i + 1}`);
  });
}

function passageTexts() {
  return [...$('passages').querySelectorAll('textarea')].map((t) => t.value);
}

async function ask(event) {
  event.preventDefault();
  clearError();
  const passages = passageTexts();
  const request = {
    question: $('question').value,
    contexts: passages,
    top_k: Number($('top-k').value) || 1,
  };
  const minScore = $('min-score').value;
  if (minScore !== '') request.min_score = Number(minScore);
  $('ask-button').disabled = true;
  try {
    const { body } = await api('/answer', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(request),
    });
    renderAnswer(body, passages);
  } catch (e) {
    $('answer').textContent = '';
    showError(e);
  } finally {
    $('ask-button').disabled = false;
  }
}

function renderAnswer(body, passages) {
  const box = $('answer');
  box.textContent = '';
  const card = element('div', body.no_answer ? 'card no-answer' : 'card best-answer');
  if (body.no_answer) {
    card.append(element('h2', null, 'No answer'));
    card.append(element('p', null, `The passages do not answer this (confidence ${percent(body.score)}).`));
  } else {
    card.append(element('h2', 'answer-text', body.answer));
    const where = passages.length > 1 ? ` · from passage ${body.context_index + 1}` : '';
    card.append(element('p', 'answer-score', `score ${percent(body.score)}${where}`));
  }
  box.append(card);
  const spans = body.answers || (body.no_answer ? [] : [body]);
  const marks = passages.map(() => []);
  if (!body.no_answer) marks[body.context_index].push({ start: body.start, end: body.end, cls: 'best' });
  const list = element('ol', 'alternatives');
  spans.forEach((span, i) => {
    const item = element('li', i === 0 && !body.no_answer ? 'chosen' : '');
    const button = element('button', 'alternative', span.answer);
    button.type = 'button';
    button.addEventListener('click', () => {
      const shown = passages.map(() => []);
      shown[span.context_index].push({ start: span.start, end: span.end, cls: i === 0 && !body.no_answer ? 'best' : 'alt' });
      renderPassages(passages, shown);
    });
    item.append(button, element('span', 'meta', ` ${percent(span.score)} · passage ${span.context_index + 1}`));
    list.append(item);
  });
  if (spans.length > 0) {
    box.append(element('h3', null, body.no_answer ? 'Spans turned down' : 'Top answers'));
    box.append(list);
  }
  box.append(element('div', 'passages-shown'));
  renderPassages(passages, marks);
}

function renderPassages(passages, marks) {
  const holder = $('answer').querySelector('.passages-shown');
  holder.textContent = '';
  passages.forEach((text, i) => {
    const block = element('div', 'passage-shown');
    block.append(element('h4', null, `Passage ${i + 1}`));
    const body = element('p', 'passage');
    body.append(highlighted(text, marks[i]));
    block.append(body);
    holder.append(block);
  });
}

// ---- Evaluate --------------------------------------------------------------------------

let currentJob = null;

function chosenFile() {
  return $('squad-file').files[0] || null;
}

async function startEvaluation(event) {
  event.preventDefault();
  clearError();
  const file = chosenFile();
  if (!file) {
    showError(new ApiError('Choose or drop a SQuAD file first.', 'no_file', 0));
    return;
  }
  const form = new FormData();
  form.append('file', file, file.name);
  const limit = $('limit').value;
  const query = limit ? `?limit=${encodeURIComponent(limit)}` : '';
  $('evaluate-button').disabled = true;
  $('result').hidden = true;
  try {
    const { body, response } = await api(`/evaluations${query}`, { method: 'POST', body: form });
    currentJob = response.headers.get('Location') || `/evaluations/${body.id}`;
    cancelRequested = false;
    $('cancel-button').hidden = false;
    showProgress(body);
    await follow(currentJob);
  } catch (e) {
    showError(e);
  } finally {
    $('evaluate-button').disabled = false;
    $('cancel-button').hidden = true;
    currentJob = null;
  }
}

let cancelRequested = false;

async function follow(location) {
  for (;;) {
    if (cancelRequested) return showCancelled();
    let body;
    try {
      ({ body } = await api(location));
    } catch (e) {
      if (cancelRequested) return showCancelled(); // deleted while this request was out
      throw e;
    }
    showProgress(body);
    if (body.state === 'done') return renderResult(body.result);
    if (body.state === 'failed') throw new ApiError(body.error.error, body.error.error_type, 0);
    if (body.state === 'cancelled') return showCancelled();
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function showProgress(status) {
  $('progress-box').hidden = false;
  const bar = $('progress');
  bar.max = status.questions_total;
  bar.value = status.questions_done;
  const parts = [`${status.questions_done} / ${status.questions_total} questions`, status.state];
  if (status.exact_match !== null && status.exact_match !== undefined) {
    parts.push(`EM ${status.exact_match.toFixed(1)}`, `F1 ${status.f1.toFixed(1)}`);
  }
  if (status.remaining_ms !== null && status.remaining_ms !== undefined) {
    parts.push(`about ${Math.ceil(status.remaining_ms / 1000)} s left`);
  }
  $('progress-text').textContent = parts.join(' · ');
}

function showCancelled() {
  $('progress-text').textContent += ' · cancelled';
}

/** Deletes the running job (the server cancels it); the polling loop then stops. */
async function cancelEvaluation() {
  if (!currentJob) return;
  cancelRequested = true;
  try {
    const { body } = await api(currentJob, { method: 'DELETE' });
    showProgress(body);
  } catch (e) {
    showError(e);
  }
}

function renderResult(result) {
  const { scores, report } = result;
  const box = $('scores');
  box.textContent = '';
  const figures = [
    ['Exact Match', scores.exact_match],
    ['F1', scores.f1],
  ];
  if (scores.has_ans_f1 !== undefined) figures.push(['HasAns F1', scores.has_ans_f1]);
  if (scores.no_ans_f1 !== undefined) figures.push(['NoAns F1', scores.no_ans_f1]);
  for (const [label, value] of figures) {
    const figure = element('div', 'score');
    figure.append(element('span', 'value', value.toFixed(2)), element('span', 'label', label));
    box.append(figure);
  }
  box.append(element('p', 'meta', `${scores.total} questions in ${(scores.duration_ms / 1000).toFixed(1)} s (${scores.questions_per_second.toFixed(1)} per second)`));
  renderChart($('chart-type'), report.by_question_type);
  renderChart($('chart-length'), report.by_answer_length);
  wrongQuestions = report.questions.filter((q) => q.exact_match < 100).sort((a, b) => a.f1 - b.f1);
  reportContexts = report.contexts;
  renderTable();
  $('result').hidden = false;
}

function renderChart(holder, groups) {
  holder.textContent = '';
  for (const group of groups) {
    const row = element('div', 'bar-row');
    row.append(element('span', 'bar-label', group.label));
    const track = element('span', 'bar-track');
    const bar = element('span', 'bar');
    bar.style.width = `${Math.max(0, Math.min(100, group.f1))}%`;
    track.append(bar);
    row.append(track, element('span', 'bar-value', `${group.f1.toFixed(1)} (${group.questions})`));
    holder.append(row);
  }
}

let wrongQuestions = [];
let reportContexts = [];

function renderTable() {
  const needle = $('search').value.trim().toLowerCase();
  const matches = wrongQuestions.filter((q) => !needle || [q.question, q.prediction, ...q.gold.map((g) => g.text)]
    .some((t) => t.toLowerCase().includes(needle)));
  const body = $('wrong').querySelector('tbody');
  body.textContent = '';
  for (const q of matches.slice(0, TABLE_ROWS)) {
    const row = element('tr');
    row.tabIndex = 0;
    row.append(
      element('td', null, q.question),
      element('td', null, q.prediction || '(no answer)'),
      element('td', null, [...new Set(q.gold.map((g) => g.text))].join(' | ') || '(no answer)'),
      element('td', 'number', q.f1.toFixed(0)),
    );
    const open = () => openDetail(q);
    row.addEventListener('click', open);
    row.addEventListener('keydown', (e) => { if (e.key === 'Enter') open(); });
    body.append(row);
  }
  const shown = Math.min(matches.length, TABLE_ROWS);
  $('wrong-count').textContent = `${matches.length} of ${wrongQuestions.length} wrong questions match` +
    (shown < matches.length ? ` (first ${shown} shown)` : '');
}

function openDetail(q) {
  $('detail-question').textContent = q.question;
  const spans = q.gold.map((g) => ({ start: g.answer_start, end: g.answer_start + Array.from(g.text).length, cls: 'gold' }));
  if (q.prediction_start !== null) {
    spans.push({ start: q.prediction_start, end: q.prediction_start + Array.from(q.prediction).length, cls: 'pred' });
  }
  const passage = $('detail-passage');
  passage.textContent = '';
  passage.append(highlighted(reportContexts[q.context], spans));
  $('detail-scores').textContent = `Predicted “${q.prediction || '(no answer)'}” · EM ${q.exact_match.toFixed(0)} · F1 ${q.f1.toFixed(1)}`;
  $('detail').showModal();
}

// ---- wiring ----------------------------------------------------------------------------

function wire() {
  const key = $('api-key');
  key.value = localStorage.getItem('bertqa-api-key') || '';
  key.addEventListener('change', () => localStorage.setItem('bertqa-api-key', key.value.trim()));
  window.addEventListener('hashchange', showView);
  showView();
  addPassage(EXAMPLE_PASSAGE);
  $('add-passage').addEventListener('click', () => addPassage().querySelector('textarea').focus());
  $('ask-form').addEventListener('submit', ask);
  $('passages').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) $('ask-form').requestSubmit();
  });
  $('evaluate-form').addEventListener('submit', startEvaluation);
  $('cancel-button').addEventListener('click', cancelEvaluation);
  $('squad-file').addEventListener('change', () => {
    $('file-name').textContent = chosenFile() ? chosenFile().name : '';
  });
  const zone = $('drop-zone');
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    if (e.dataTransfer.files.length) {
      $('squad-file').files = e.dataTransfer.files;
      $('file-name').textContent = chosenFile().name;
    }
  });
  $('search').addEventListener('input', renderTable);
  loadFacts();
}

wire();
