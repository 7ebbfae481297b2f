// The filter bar: every control edits the view through `onChange`, which puts it in the
// URL and reloads the results. Suggestions come from /v1/actors and /v1/actions.

import { h, replace, debounce, uid } from './dom.js';
import { RANGE_LABELS, MAX_VALUES } from './view-state.js';
import { startOfDay, nextDay, dateIn } from './format.js';

/** Most catalog pages read for one picker (each page is one request). */
const CATALOG_PAGES = 10;

/** Reads every page of a catalog endpoint, following `next_cursor` where the API pages. */
async function catalog(api, path, q) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < CATALOG_PAGES; i += 1) {
    const sp = new URLSearchParams();
    if (q) sp.set('q', q);
    if (cursor) sp.set('cursor', cursor);
    const page = await api.get(path, sp);
    items.push(...(Array.isArray(page.items) ? page.items : []));
    cursor = typeof page.next_cursor === 'string' && page.next_cursor ? page.next_cursor : null;
    if (!cursor) break;
  }
  return items;
}

const category = (action) => action.split('.')[0];

function field(label, control, cls) {
  return h('label', { class: `field${cls ? ` ${cls}` : ''}` }, label, control);
}

export class FilterBar {
  /**
   * @param {{api: () => import('./api.js').Api | null, onChange: (patch: object) => void,
   *   onLookup: (id: string) => void, onReset: () => void, zone: () => string}} host
   */
  constructor(host) {
    this.host = host;
    /** @type {import('./view-state.js').View | null} */
    this.view = null;
    /** Actor id -> the name shown on its chip. */
    this.actorNames = new Map();
    /** @type {{action: string, count: number}[]} */
    this.actions = [];
    this.actionsLoaded = false;

    this.range = h('select', { name: 'range', onchange: () => this.#rangeChanged() },
      Object.entries(RANGE_LABELS).map(([k, label]) => h('option', { value: k }, label)));
    this.fromDate = h('input', { type: 'date', name: 'from_date', onchange: () => this.#datesChanged() });
    this.toDate = h('input', { type: 'date', name: 'to_date', onchange: () => this.#datesChanged() });
    this.fromField = field('From (first day)', this.fromDate);
    this.toField = field('To (last day)', this.toDate);

    const listId = uid('actors');
    this.actor = h('input', {
      type: 'search', name: 'actor', autocomplete: 'off', placeholder: 'Name, email or id',
      role: 'combobox', 'aria-autocomplete': 'list', 'aria-controls': listId, 'aria-expanded': 'false',
      oninput: debounce(() => this.#suggestActors(), 200),
      onkeydown: (e) => this.#actorKey(e),
    });
    this.suggestions = h('ul', { class: 'suggestions', id: listId, role: 'listbox', hidden: true, onkeydown: (e) => this.#suggestionKey(e) });
    this.suggested = [];

    this.actionSearch = h('input', { type: 'search', name: 'action_search', placeholder: 'Search event types', autocomplete: 'off', oninput: debounce(() => this.#loadActions(), 200) });
    this.actionGroups = h('div', { class: 'groups' });
    this.actionSummary = h('summary', {}, 'All event types');
    this.picker = h('details', { class: 'picker', ontoggle: () => this.picker.open && !this.actionsLoaded && this.#loadActions() },
      this.actionSummary, h('div', { class: 'panel' }, this.actionSearch, this.actionGroups));

    const text = (name, placeholder) => h('input', { type: 'search', name, placeholder, autocomplete: 'off', maxlength: 256, onchange: () => this.#apply() });
    this.resourceType = text('resource_type', 'e.g. channel');
    this.resourceId = text('resource_id', 'e.g. ch-42');
    this.workspace = text('workspace', 'Workspace id');
    this.q = text('q', 'Words in description, names, ids');
    this.outcome = h('select', { name: 'outcome', onchange: () => this.#apply() },
      h('option', { value: '' }, 'Any outcome'), h('option', { value: 'success' }, 'Success'), h('option', { value: 'failure' }, 'Failure'));

    this.form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter events', onsubmit: (e) => { e.preventDefault(); this.#apply(); } },
      field('Date range', this.range), this.fromField, this.toField,
      field('Operator', h('div', { class: 'combo' }, this.actor, this.suggestions), 'wide'),
      h('div', { class: 'field wide' }, h('span', {}, 'Event types'), this.picker),
      field('Resource type', this.resourceType), field('Resource id', this.resourceId),
      field('Workspace', this.workspace), field('Outcome', this.outcome),
      field('Keyword', this.q, 'wide'),
      h('div', { class: 'actions-row' },
        h('button', { type: 'submit', class: 'primary' }, 'Apply'),
        h('button', { type: 'button', name: 'reset', onclick: () => this.host.onReset() }, 'Reset')));

    const lookupId = uid('lookup');
    this.lookupInput = h('input', { type: 'search', name: 'event_id', id: lookupId, placeholder: 'Event id', autocomplete: 'off', maxlength: 128 });
    this.lookup = h('form', { class: 'lookup', onsubmit: (e) => { e.preventDefault(); const id = this.lookupInput.value.trim(); if (id) this.host.onLookup(id); } },
      h('label', { class: 'sr', for: lookupId }, 'Look up an event by id'),
      this.lookupInput, h('button', { type: 'submit' }, 'Open event'));
    this.chips = h('div', { class: 'chips', 'aria-label': 'Active filters' });
    this.summary = h('summary', {}, 'Filters');
    // Folded on a narrow screen so the events come first; open on a wide one.
    this.box = h('details', { class: 'filter-box', open: true }, this.summary, this.form);
    this.el = h('div', {}, this.box, this.chips, this.lookup);
  }

  /** Shows `view` in the controls. */
  show(view) {
    this.view = view;
    this.range.value = view.range;
    const custom = view.range === 'custom';
    this.fromField.hidden = !custom;
    this.toField.hidden = !custom;
    const zone = this.host.zone();
    this.fromDate.value = view.from ? dateIn(view.from, zone) : '';
    // `to` is exclusive: the last day shown is the one before it.
    this.toDate.value = view.to ? dateIn(new Date(Date.parse(view.to) - 1).toISOString(), zone) : '';
    this.resourceType.value = view.resource_type;
    this.resourceId.value = view.resource_id;
    this.workspace.value = view.workspace;
    this.q.value = view.q;
    this.outcome.value = view.outcome;
    const n = view.actions.length;
    this.actionSummary.textContent = n ? `${n} event type${n > 1 ? 's' : ''} selected` : 'All event types';
    const active = ['resource_type', 'resource_id', 'workspace', 'q', 'outcome'].filter((k) => view[k]).length + view.actors.length + view.actions.length;
    this.summary.textContent = active ? `Filters (${active} active)` : 'Filters';
    this.#renderActions();
    this.#renderChips();
  }

  /** Folds the filters when the component is narrower than `px`. */
  foldBelow(width, px) {
    if (width < px) this.box.open = false;
  }

  #apply() {
    const patch = {
      resource_type: this.resourceType.value.trim(), resource_id: this.resourceId.value.trim(),
      workspace: this.workspace.value.trim(), q: this.q.value.trim(), outcome: this.outcome.value,
    };
    const typed = this.actor.value.trim();
    if (typed) {
      const exact = this.suggested.filter((a) => [a.id, a.email, a.name].some((s) => typeof s === 'string' && s.toLowerCase() === typed.toLowerCase()));
      const pick = exact.length === 1 ? exact[0] : this.suggested.length === 1 ? this.suggested[0] : null;
      patch.actors = this.#withActor(pick ? pick.id : typed, pick ? pick.name || pick.email : '');
      this.actor.value = '';
      this.#closeSuggestions();
    }
    this.host.onChange(patch);
  }

  #withActor(id, label) {
    if (label) this.actorNames.set(id, label);
    const actors = this.view ? this.view.actors : [];
    return actors.includes(id) ? actors : [...actors, id].slice(0, MAX_VALUES);
  }

  #rangeChanged() {
    const range = this.range.value;
    if (range !== 'custom') {
      this.host.onChange({ range, from: '', to: '' });
      return;
    }
    // Custom starts from the last 7 days, as dates the user can then change.
    const zone = this.host.zone();
    const today = dateIn(new Date().toISOString(), zone);
    const weekAgo = dateIn(new Date(Date.now() - 6 * 86400e3).toISOString(), zone);
    this.host.onChange({ range, from: startOfDay(weekAgo, zone), to: startOfDay(nextDay(today), zone) });
  }

  #datesChanged() {
    const zone = this.host.zone();
    const from = this.fromDate.value ? startOfDay(this.fromDate.value, zone) : '';
    const to = this.toDate.value ? startOfDay(nextDay(this.toDate.value), zone) : '';
    if (from && to && from >= to) return;
    this.host.onChange({ range: 'custom', from: from || '', to: to || '' });
  }

  async #suggestActors() {
    const api = this.host.api();
    const q = this.actor.value.trim();
    if (!api || !q) {
      this.#closeSuggestions();
      return;
    }
    let items = [];
    try {
      items = (await catalog(api, '/v1/actors', q)).slice(0, 20);
    } catch {
      items = [];
    }
    if (this.actor.value.trim() !== q) return;
    this.suggested = items;
    replace(this.suggestions, items.map((a) => h('li', { role: 'option' },
      h('button', { type: 'button', dataset: { actorId: String(a.id) }, onclick: () => this.#pickActor(a) },
        a.name || a.id, h('span', { class: 'email' }, [a.email, a.type].filter(Boolean).join(' · '))))));
    this.suggestions.hidden = items.length === 0;
    this.actor.setAttribute('aria-expanded', String(items.length > 0));
  }

  #pickActor(a) {
    this.actor.value = '';
    this.#closeSuggestions();
    this.host.onChange({ actors: this.#withActor(String(a.id), a.name || a.email || '') });
    this.actor.focus();
  }

  #closeSuggestions() {
    this.suggested = [];
    this.suggestions.hidden = true;
    this.suggestions.replaceChildren();
    this.actor.setAttribute('aria-expanded', 'false');
  }

  #actorKey(e) {
    if (e.key === 'ArrowDown' && !this.suggestions.hidden) {
      e.preventDefault();
      this.suggestions.querySelector('button')?.focus();
    } else if (e.key === 'Escape') {
      this.#closeSuggestions();
    }
  }

  #suggestionKey(e) {
    const buttons = [...this.suggestions.querySelectorAll('button')];
    const i = buttons.indexOf(/** @type {any} */ (this.suggestions.getRootNode()).activeElement);
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const next = i + (e.key === 'ArrowDown' ? 1 : -1);
      if (next < 0) this.actor.focus();
      else buttons[Math.min(next, buttons.length - 1)].focus();
    } else if (e.key === 'Escape') {
      this.#closeSuggestions();
      this.actor.focus();
    }
  }

  async #loadActions() {
    const api = this.host.api();
    if (!api) return;
    const q = this.actionSearch.value.trim();
    try {
      const items = await catalog(api, '/v1/actions', q);
      if (this.actionSearch.value.trim() !== q) return;
      this.actions = items.filter((a) => a && typeof a.action === 'string');
      this.actionsLoaded = true;
    } catch (e) {
      replace(this.actionGroups, h('p', { class: 'muted' }, e.message));
      return;
    }
    this.#renderActions();
  }

  #renderActions() {
    if (!this.actionsLoaded || !this.view) return;
    const chosen = new Set(this.view.actions);
    const groups = new Map();
    for (const a of this.actions) {
      const c = category(a.action);
      if (!groups.has(c)) groups.set(c, []);
      groups.get(c).push(a);
    }
    const full = chosen.size >= MAX_VALUES;
    const set = (actions) => this.host.onChange({ actions: actions.slice(0, MAX_VALUES) });
    const sorted = [...groups.entries()].sort(([a], [b]) => a.localeCompare(b));
    replace(this.actionGroups, sorted.length === 0 ? h('p', { class: 'muted' }, 'No event types match.') : sorted.map(([c, items]) => {
      const all = chosen.has(`${c}.*`);
      return h('fieldset', {},
        h('legend', {}, c),
        h('label', { class: 'all' }, h('input', {
          type: 'checkbox', name: 'category', value: `${c}.*`, checked: all, disabled: full && !all,
          onchange: (e) => set(e.target.checked
            ? [...this.view.actions.filter((x) => category(x) !== c), `${c}.*`]
            : this.view.actions.filter((x) => x !== `${c}.*`)),
        }), `All of ${c}`),
        items.sort((a, b) => a.action.localeCompare(b.action)).map((a) => h('label', {},
          h('input', {
            type: 'checkbox', name: 'action', value: a.action, checked: all || chosen.has(a.action), disabled: all || (full && !chosen.has(a.action)),
            onchange: (e) => set(e.target.checked ? [...this.view.actions, a.action] : this.view.actions.filter((x) => x !== a.action)),
          }),
          a.action, h('span', { class: 'n' }, typeof a.count === 'number' ? a.count.toLocaleString() : ''))));
    }));
  }

  #renderChips() {
    const v = this.view;
    const chip = (label, value, remove) => h('span', { class: 'chip' }, h('span', {}, `${label}: `, value),
      h('button', { type: 'button', 'aria-label': `Remove ${label.toLowerCase()} ${value}`, onclick: remove }, '×'));
    replace(this.chips,
      v.actors.map((a) => chip('Operator', this.actorNames.get(a) || a, () => this.host.onChange({ actors: v.actors.filter((x) => x !== a) }))),
      v.actions.map((a) => chip('Event type', a, () => this.host.onChange({ actions: v.actions.filter((x) => x !== a) }))));
  }
}
