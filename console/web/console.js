// The /console page: takes a token from the URL fragment (then removes it from the
// address bar) or from the form, and hands it to <audit-log-viewer>. The token lives in
// memory only.

import './audit-log-viewer.js';

const viewer = /** @type {any} */ (document.getElementById('viewer'));
const form = /** @type {HTMLFormElement} */ (document.getElementById('token-form'));
const input = /** @type {HTMLInputElement} */ (document.getElementById('token'));
const message = /** @type {HTMLElement} */ (document.getElementById('token-message'));
const forget = /** @type {HTMLButtonElement} */ (document.getElementById('forget'));

/** Reads `#token=…` and rewrites the address without it, before anything else runs. */
function fragmentToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get('token') || '';
  if (fragment.has('token')) {
    fragment.delete('token');
    const rest = fragment.toString();
    history.replaceState(history.state, '', `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`);
  }
  return token.trim();
}

function open(token) {
  viewer.token = token;
  viewer.hidden = false;
  form.hidden = true;
  forget.hidden = false;
  message.textContent = '';
}

function ask(text) {
  viewer.token = '';
  viewer.hidden = true;
  form.hidden = false;
  forget.hidden = true;
  message.textContent = text;
  input.value = '';
  input.focus();
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  const token = input.value.trim();
  input.value = '';
  if (token) open(token);
});
forget.addEventListener('click', () => ask(''));
viewer.addEventListener('token-expired', (/** @type {CustomEvent} */ e) => ask(e.detail.message));

const token = fragmentToken();
if (token) open(token);
else ask('');
