// One event in full: the operator's card, the changes as before and after, and the
// whole event as formatted JSON with a copy button. A modal <dialog>: focus stays in
// it, Escape closes it.

import { h, replace } from './dom.js';
import { zoned, utc } from './format.js';
import { timeCell } from './results.js';

const str = (v) => (typeof v === 'string' ? v : '');
const json = (v) => (v === undefined ? '' : JSON.stringify(v, null, 2));

function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== '' && v !== null && v !== undefined)
    .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export class Detail {
  /** @param {{closed: () => void, actor: (a: object) => Promise<object | null>}} host */
  constructor(host) {
    this.host = host;
    this.inner = h('div', { class: 'inner' });
    this.dialog = h('dialog', { class: 'detail', 'aria-label': 'Event details', onclose: () => this.host.closed() }, this.inner);
    this.el = this.dialog;
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }

  /** A message in the dialog (unknown id, an error). */
  message(title, text) {
    this.#show(h('header', {}, h('h3', {}, title), this.#closeButton()), h('p', { role: 'alert' }, text));
  }

  /** @param {any} e the event @param {string} zone */
  show(e, zone) {
    const actor = e.actor || {};
    const card = h('div', { class: 'card operator' }, h('h4', {}, 'Operator'),
      kv([['Name', str(actor.name)], ['Email', str(actor.email)], ['Type', str(actor.type)], ['Id', h('span', { class: 'mono' }, str(actor.id))]]));
    const lastSeen = h('dd', {}, '…');
    card.querySelector('dl').append(h('dt', {}, 'Last seen'), lastSeen);
    this.host.actor(actor).then((a) => {
      lastSeen.textContent = a && a.last_seen ? zoned(a.last_seen, zone) : 'not in the directory';
      if (a && a.last_seen) lastSeen.title = utc(a.last_seen);
    }, () => { lastSeen.textContent = 'unknown'; });

    const resource = e.resource || {};
    const parent = resource.parent || {};
    const facts = h('div', { class: 'card' }, h('h4', {}, 'Event'), kv([
      ['Time', timeCell(e.occurred_at, zone)], ['Received', e.received_at ? timeCell(e.received_at, zone) : ''],
      ['Outcome', str(e.outcome)], ['Description', str(e.description)],
      ['Resource', [str(resource.type), str(resource.name), str(resource.id)].filter(Boolean).join(' · ')],
      ['Parent', [str(parent.type), str(parent.name), str(parent.id)].filter(Boolean).join(' · ')],
      ['Workspace', [str((e.workspace || {}).name), str((e.workspace || {}).id)].filter(Boolean).join(' · ')],
      ['Source', [str((e.source || {}).ip), str((e.source || {}).location), str((e.source || {}).platform)].filter(Boolean).join(' · ')],
      ['User agent', str((e.source || {}).user_agent)], ['Request id', str(e.request_id)],
      ['Hash', h('span', { class: 'mono' }, str(e.hash))],
    ]));

    const changes = Array.isArray(e.changes) && e.changes.length
      ? h('div', { class: 'card' }, h('h4', {}, 'Changes'), h('table', { class: 'changes' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Field'), h('th', { scope: 'col' }, 'Before'), h('th', { scope: 'col' }, 'After'))),
        h('tbody', {}, e.changes.map((c) => h('tr', {},
          h('td', { class: 'mono' }, str(c && c.field)),
          h('td', { class: 'old mono' }, json(c && c.old)),
          h('td', { class: 'new mono' }, json(c && c.new)))))))
      : null;

    const text = JSON.stringify(e, null, 2);
    const copied = h('span', { class: 'muted', role: 'status' });
    const copy = h('button', {
      type: 'button', name: 'copy', onclick: async () => {
        try {
          await navigator.clipboard.writeText(text);
          copied.textContent = 'Copied';
        } catch {
          copied.textContent = 'Copy failed: select the text and copy it';
        }
      },
    }, 'Copy JSON');

    this.#show(
      h('header', {}, h('h3', {}, str(e.action)),
        h('span', { class: `badge ${e.outcome === 'failure' ? 'failure' : 'success'}` }, str(e.outcome)),
        e.archived === true ? h('span', { class: 'badge archived', title: 'Read from the archive' }, 'Archived') : null,
        this.#closeButton()),
      card, facts, changes,
      h('div', {}, h('div', { class: 'json-head' }, h('h4', {}, 'Event JSON'), copy, copied), h('pre', { class: 'json', tabindex: '0' }, text)));
  }

  #closeButton() {
    return h('button', { type: 'button', class: 'close', name: 'close', onclick: () => this.close() }, 'Close');
  }

  #show(...children) {
    replace(this.inner, ...children);
    if (!this.dialog.open) this.dialog.showModal();
  }
}
