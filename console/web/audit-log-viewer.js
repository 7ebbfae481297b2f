// <audit-log-viewer token="…" api="https://audit.example.com" time-zone="Europe/Paris">
//
// A product's audit log page in one element: filters over a table of events, pages,
// an event's detail and exports, all through the audit log API with a read token the
// product's backend mints. The view lives in the page's URL (optionally under a prefix,
// `url-prefix="audit_"`; `url-state="off"` leaves the URL alone) so it can be shared.
// Events: `token-expired` (detail: {code, message}) when the API refuses the token.

import { Api } from './api.js';
import { h, replace } from './dom.js';
import { styles } from './styles.js';
import { localZone, validZone, zoneName } from './format.js';
import { defaults, fromParams, toParams, ownedKeys, apiFilters, exportBody, sameFilters, isLoginHistory, LOGIN_ACTIONS } from './view-state.js';
import { FilterBar } from './filter-bar.js';
import { Results } from './results.js';
import { Detail } from './detail.js';
import { ExportPanel } from './export-panel.js';

export class AuditLogViewer extends HTMLElement {
  static observedAttributes = ['token', 'api', 'time-zone', 'url-prefix', 'url-state'];

  #token = '';
  /** @type {Api | null} */
  #client = null;
  #view = defaults();
  /** The API filters of the view as loaded: every page and the count ask exactly this. */
  #query = new URLSearchParams();
  /** cursors[i] opens page i (page 0 needs none). */
  #cursors = [null];
  #page = 0;
  #items = [];
  #budget = false;
  #total = null;
  #seq = 0;
  /** @type {AbortController | null} */
  #abort = null;
  #onPop = () => this.#setView(this.#urlView(), { url: false });

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    root.adoptedStyleSheets = [styles()];
    this.filters = new FilterBar({
      api: () => this.#api(), zone: () => this.#zone(),
      onChange: (patch) => this.#setView({ ...this.#view, ...patch }),
      onLookup: (id) => this.#openEvent(id),
      onReset: () => this.#setView({ ...defaults(), limit: this.#view.limit }),
    });
    this.results = new Results({
      open: (id) => this.#openEvent(id),
      page: (delta) => this.#goTo(this.#page + delta),
      limit: (n) => this.#setView({ ...this.#view, limit: n }),
      reset: () => this.#setView({ ...defaults(), limit: this.#view.limit }),
    });
    this.detail = new Detail({ closed: () => this.#detailClosed(), actor: (a) => this.#actorCard(a) });
    this.exports = new ExportPanel({
      api: () => this.#api(), zone: () => this.#zone(),
      filters: () => this.#query, body: exportBody,
    });
    this.zoneLabel = h('span', { class: 'tz' });
    this.loginButton = h('button', { type: 'button', name: 'login-history', 'aria-pressed': 'false', onclick: () => this.#toggleLogins() }, 'Login history');
    this.status = h('div', { class: 'status', role: 'status' });
    root.append(
      h('header', { class: 'top' }, h('h2', {}, 'Audit log'), this.zoneLabel, h('div', { class: 'presets' }, this.loginButton)),
      this.filters.el, this.status, this.results.el, this.results.pager, this.exports.el, this.detail.el);
  }

  /** The bearer token. Write-only: it is never read back out of the element. */
  set token(value) {
    const t = typeof value === 'string' ? value.trim() : '';
    if (t === this.#token) return;
    this.#token = t;
    this.#client = null;
    if (this.isConnected) this.#load();
  }

  get token() {
    return undefined;
  }

  connectedCallback() {
    window.addEventListener('popstate', this.#onPop);
    this.#view = this.#urlView();
    // Fold the filters on a narrow screen, once the element is first laid out (a hidden
    // element has no width yet).
    const sizes = new ResizeObserver(([entry]) => {
      if (entry.contentRect.width === 0) return;
      this.filters.foldBelow(entry.contentRect.width, 600);
      sizes.disconnect();
    });
    sizes.observe(this);
    this.#render();
    this.#load();
  }

  disconnectedCallback() {
    window.removeEventListener('popstate', this.#onPop);
    this.exports.stop();
    this.#abort?.abort();
  }

  attributeChangedCallback(name, old, value) {
    if (name === 'token') {
      this.token = value || '';
    } else if (old !== value && this.isConnected) {
      this.#client = null;
      if (name !== 'url-state') this.#view = this.#urlView();
      this.#render();
      this.#load();
    }
  }

  #api() {
    if (!this.#token) return null;
    this.#client ||= new Api(this.getAttribute('api') || '', this.#token);
    return this.#client;
  }

  #zone() {
    const tz = this.getAttribute('time-zone');
    return tz && validZone(tz) ? tz : localZone();
  }

  #prefix() {
    return this.getAttribute('url-prefix') || '';
  }

  #urlView() {
    if (this.getAttribute('url-state') === 'off') return { ...this.#view };
    return fromParams(new URLSearchParams(location.search), this.#prefix());
  }

  #writeUrl(push) {
    if (this.getAttribute('url-state') === 'off') return;
    const sp = new URLSearchParams(location.search);
    for (const k of ownedKeys(this.#prefix())) sp.delete(k);
    for (const [k, v] of toParams(this.#view, this.#prefix())) sp.append(k, v);
    const qs = sp.toString();
    const url = `${location.pathname}${qs ? `?${qs}` : ''}${location.hash}`;
    if (url !== `${location.pathname}${location.search}${location.hash}`) history[push ? 'pushState' : 'replaceState'](null, '', url);
  }

  /** Moves to a view: the URL follows, and the results reload if the filters changed. */
  #setView(view, { url = true } = {}) {
    const reload = !sameFilters(view, this.#view);
    const eventChanged = view.event !== this.#view.event;
    this.#view = view;
    if (url) this.#writeUrl(reload);
    this.#render();
    if (reload) this.#load({ detail: false });
    if (eventChanged) {
      if (view.event) this.#openEvent(view.event);
      else this.detail.close();
    }
  }

  #render() {
    const zone = this.#zone();
    const short = zoneName(zone);
    this.zoneLabel.textContent = `Times in ${zone}${short === zone ? '' : ` (${short})`}; hover a time for UTC`;
    this.loginButton.setAttribute('aria-pressed', String(isLoginHistory(this.#view)));
    this.filters.show(this.#view);
  }

  #toggleLogins() {
    this.#setView({ ...this.#view, actions: isLoginHistory(this.#view) ? [] : [...LOGIN_ACTIONS] });
  }

  #load({ detail = true } = {}) {
    this.#abort?.abort();
    this.exports.stop();
    if (!this.#api()) {
      this.results.clear();
      replace(this.status, h('p', { class: 'notice warn' }, 'No access token: set the element’s token to see the log.'));
      return;
    }
    this.#query = apiFilters(this.#view);
    this.#cursors = [null];
    this.#page = 0;
    this.#total = null;
    this.#fetchPage();
    this.#fetchCount();
    this.exports.refresh();
    if (detail && this.#view.event) this.#openEvent(this.#view.event);
  }

  #goTo(page) {
    if (page < 0 || page >= this.#cursors.length || (page > 0 && !this.#cursors[page])) return;
    this.#page = page;
    this.#fetchPage();
  }

  async #fetchPage() {
    const api = this.#api();
    if (!api) return;
    this.#abort?.abort();
    const abort = new AbortController();
    this.#abort = abort;
    const seq = ++this.#seq;
    this.results.loading(this.#view.limit);
    replace(this.status);
    const sp = new URLSearchParams(this.#query);
    sp.set('limit', String(this.#view.limit));
    const cursor = this.#cursors[this.#page];
    if (cursor) sp.set('cursor', cursor);
    try {
      const res = await api.get('/v1/events', sp, abort.signal);
      if (seq !== this.#seq) return;
      this.#items = Array.isArray(res.items) ? res.items : [];
      this.#took(res);
    } catch (e) {
      if (seq === this.#seq) this.#fail(e);
    }
  }

  /** Records a page's answer: its cursor onwards, and whether its budget ended it. */
  #took(res) {
    this.#cursors.length = this.#page + 1;
    const next = typeof res.next_cursor === 'string' && res.next_cursor ? res.next_cursor : null;
    if (next) this.#cursors.push(next);
    this.#budget = res.budget_exhausted === true && next !== null;
    this.#show();
  }

  #show() {
    this.results.show(this.#items, {
      zone: this.#zone(), page: this.#page + 1, limit: this.#view.limit,
      hasPrev: this.#page > 0, hasNext: this.#cursors.length > this.#page + 1,
    });
    this.results.showTotal(this.#page + 1, this.#total);
    if (this.#budget) {
      const found = this.#items.length;
      replace(this.status, h('div', { class: 'notice warn budget' },
        h('span', {}, `This search stopped early to stay fast, with ${found} event${found === 1 ? '' : 's'} found on this page so far. More may match.`),
        h('button', { type: 'button', name: 'keep-searching', onclick: () => this.#keepSearching() }, 'Keep searching')));
    } else {
      replace(this.status);
    }
  }

  /** Continues a page its budget ended, from its cursor, until the page is full. */
  async #keepSearching() {
    const api = this.#api();
    const cursor = this.#cursors[this.#page + 1];
    if (!api || !cursor) return;
    const seq = ++this.#seq;
    this.results.loading(this.#view.limit);
    const sp = new URLSearchParams(this.#query);
    sp.set('limit', String(Math.max(1, this.#view.limit - this.#items.length)));
    sp.set('cursor', cursor);
    try {
      const res = await api.get('/v1/events', sp);
      if (seq !== this.#seq) return;
      this.#items = this.#items.concat(Array.isArray(res.items) ? res.items : []);
      this.#took(res);
    } catch (e) {
      if (seq === this.#seq) this.#fail(e);
    }
  }

  async #fetchCount() {
    const api = this.#api();
    const query = this.#query;
    const limit = this.#view.limit;
    try {
      const res = await api.get('/v1/events/count', query);
      if (query !== this.#query || typeof res.count !== 'number') return;
      this.#total = { count: res.count, exact: res.exact !== false, limit };
      this.results.showTotal(this.#page + 1, this.#total);
    } catch {
      // The page itself reports what went wrong; the pager then shows no total.
    }
  }

  #fail(e) {
    if (e instanceof DOMException && e.name === 'AbortError') return;
    this.results.clear();
    const retry = h('button', { type: 'button', name: 'retry', onclick: () => this.#fetchPage() }, 'Retry');
    if (e.status === 401) {
      replace(this.status, h('div', { class: 'notice error', role: 'alert', dataset: { code: e.code } }, e.message));
      this.dispatchEvent(new CustomEvent('token-expired', { bubbles: true, composed: true, detail: { code: e.code, message: e.message } }));
    } else if (e.code === 'range_archived') {
      replace(this.status, h('div', { class: 'notice warn', role: 'alert', dataset: { code: e.code } },
        h('span', {}, `${e.message}. Older events are in the archive, which exports read.`),
        h('button', { type: 'button', name: 'export-range', onclick: () => { this.exports.create(); this.exports.el.scrollIntoView({ block: 'nearest' }); } }, 'Export this range instead')));
    } else {
      replace(this.status, h('div', { class: 'notice error', role: 'alert', dataset: { code: e.code } }, h('span', {}, e.message), e.status === 400 ? null : retry));
    }
  }

  async #openEvent(id) {
    const api = this.#api();
    if (!api) return;
    if (this.#view.event !== id) {
      this.#view = { ...this.#view, event: id };
      this.#writeUrl(false);
    }
    try {
      const e = await api.get(`/v1/events/${encodeURIComponent(id)}`);
      if (this.#view.event === id) this.detail.show(e, this.#zone());
    } catch (e) {
      if (this.#view.event !== id) return;
      if (e.status === 404) this.detail.message('No such event', `There is no event with the id “${id}” in this log.`);
      else this.detail.message('Could not open the event', e.message);
    }
  }

  #detailClosed() {
    if (!this.#view.event) return;
    this.#view = { ...this.#view, event: '' };
    this.#writeUrl(false);
  }

  /** The operator as the actor directory knows them now (for "last seen"). */
  async #actorCard(actor) {
    const api = this.#api();
    const q = (actor && (actor.email || actor.name)) || '';
    if (!api || !q) return null;
    const res = await api.get('/v1/actors', new URLSearchParams({ q }));
    return (Array.isArray(res.items) ? res.items : []).find((a) => a.id === actor.id) || null;
  }
}

if (!customElements.get('audit-log-viewer')) customElements.define('audit-log-viewer', AuditLogViewer);
