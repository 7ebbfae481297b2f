// The events table, its loading, empty and error states, and the pager.

import { h, replace } from './dom.js';
import { zoned, utc, count } from './format.js';
import { PAGE_SIZES } from './view-state.js';

const COLUMNS = [
  ['time', 'Time'], ['action', 'Event'], ['actor', 'Operator'], ['resource', 'Resource'],
  ['ws', 'Workspace'], ['ip', 'Source IP'], ['outcome', 'Outcome'],
];

const str = (v) => (typeof v === 'string' ? v : '');

/** The time cell: the tenant's zone shown, UTC on hover and for assistive tech. */
export function timeCell(iso, zone) {
  return h('time', { datetime: str(iso), title: utc(iso) }, zoned(iso, zone));
}

export class Results {
  /**
   * @param {{open: (id: string) => void, page: (delta: number) => void, limit: (n: number) => void,
   *   reset: () => void}} host
   */
  constructor(host) {
    this.host = host;
    this.body = h('tbody');
    this.table = h('table', { class: 'events' },
      h('caption', { class: 'sr' }, 'Audit log events, newest first'),
      h('colgroup', {}, COLUMNS.map(([c]) => h('col', { class: c }))),
      h('thead', {}, h('tr', {}, COLUMNS.map(([, label]) => h('th', { scope: 'col' }, label)))),
      this.body);
    this.empty = h('div', { class: 'empty', hidden: true },
      h('p', {}, 'No events match these filters.'),
      h('button', { type: 'button', name: 'empty-reset', onclick: () => this.host.reset() }, 'Reset filters'));
    this.el = h('div', { class: 'results', 'aria-live': 'polite' }, this.table, this.empty);

    this.where = h('span', { class: 'where', role: 'status' });
    this.prev = h('button', { type: 'button', name: 'prev', onclick: () => this.host.page(-1) }, '‹ Previous');
    this.next = h('button', { type: 'button', name: 'next', onclick: () => this.host.page(1) }, 'Next ›');
    this.limit = h('select', { name: 'limit', onchange: () => this.host.limit(Number(this.limit.value)) },
      PAGE_SIZES.map((n) => h('option', { value: String(n) }, String(n))));
    this.pager = h('nav', { class: 'pager', 'aria-label': 'Pages' }, this.where,
      h('label', {}, 'Per page', this.limit), this.prev, this.next);
  }

  /** Rows hold their place while a page loads: no layout shift. */
  loading(limit) {
    this.el.setAttribute('aria-busy', 'true');
    this.prev.disabled = true;
    this.next.disabled = true;
    if (this.body.children.length === 0) {
      this.empty.hidden = true;
      this.table.hidden = false;
      replace(this.body, Array.from({ length: Math.min(limit, 10) }, () =>
        h('tr', { class: 'skeleton', 'aria-hidden': 'true' }, COLUMNS.map(() => h('td')))));
    }
  }

  /** Clears the table (an error or no token). */
  clear() {
    this.el.removeAttribute('aria-busy');
    this.body.replaceChildren();
    this.empty.hidden = true;
    this.table.hidden = false;
    this.where.textContent = '';
    this.prev.disabled = true;
    this.next.disabled = true;
  }

  /**
   * @param {object[]} items events
   * @param {{zone: string, page: number, hasPrev: boolean, hasNext: boolean, limit: number}} at
   */
  show(items, at) {
    this.el.removeAttribute('aria-busy');
    this.limit.value = String(at.limit);
    this.prev.disabled = !at.hasPrev;
    this.next.disabled = !at.hasNext;
    this.empty.hidden = items.length > 0 || at.hasPrev || at.hasNext;
    this.table.hidden = !this.empty.hidden;
    replace(this.body, items.map((e) => this.#row(e, at.zone)));
  }

  /** `Page 2 of 12 · 287 events`, or `more than 10,000 events` when the count stopped. */
  showTotal(page, total) {
    if (!total) {
      this.where.textContent = `Page ${page}`;
      return;
    }
    const pages = Math.max(1, Math.ceil(total.count / total.limit));
    this.where.textContent = total.exact
      ? `Page ${page} of ${count(pages)} · ${count(total.count)} event${total.count === 1 ? '' : 's'}`
      : `Page ${page} of more than ${count(pages)} · more than ${count(total.count)} events`;
  }

  #row(e, zone) {
    const actor = e.actor || {};
    const resource = e.resource || {};
    const ws = e.workspace || {};
    const action = str(e.action);
    const open = () => this.host.open(str(e.id));
    // One wrapper per cell: the narrow layout is a two-column grid of label and content.
    const cell = (label, ...content) => h('td', { 'data-label': label }, h('div', {}, ...content));
    return h('tr', {
      tabindex: '0', dataset: { eventId: str(e.id) }, 'aria-label': `${action} by ${str(actor.name) || str(actor.id)}, open details`,
      onclick: open, onkeydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); open(); } },
    },
      cell('Time', timeCell(e.occurred_at, zone)),
      cell('Event', h('span', { class: 'cat' }, action.split('.')[0]), action),
      cell('Operator', str(actor.name) || str(actor.id), h('span', { class: 'sub' }, str(actor.email) || (actor.name ? str(actor.id) : ''))),
      cell('Resource', [str(resource.type), str(resource.name)].filter(Boolean).join(' · '), h('span', { class: 'sub mono' }, str(resource.id))),
      cell('Workspace', str(ws.name) || str(ws.id), ws.name ? h('span', { class: 'sub mono' }, str(ws.id)) : null),
      cell('Source IP', h('span', { class: 'mono' }, str((e.source || {}).ip))),
      cell('Outcome', h('span', { class: `badge ${e.outcome === 'failure' ? 'failure' : 'success'}` }, str(e.outcome) || 'success')));
  }
}
