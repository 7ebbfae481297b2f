// The view: filters, page size and the open event, and its two spellings: the page's
// URL (so a view can be shared and reloaded) and the API's query parameters.

export const RANGES = { '24h': 1, '7d': 7, '30d': 30, '90d': 90 };
export const RANGE_LABELS = { '24h': 'Last 24 hours', '7d': 'Last 7 days', '30d': 'Last 30 days', '90d': 'Last 90 days', custom: 'Custom range' };
export const PAGE_SIZES = [10, 25, 50, 100];
export const DEFAULT_LIMIT = 25;
/** The API takes at most this many values of a repeatable filter. */
export const MAX_VALUES = 20;
export const LOGIN_ACTIONS = ['auth.*'];

const TEXT = ['resource_type', 'resource_id', 'workspace', 'q'];
const ACTION = /^[a-z0-9_-]+(\.[a-z0-9_-]+)+$|^[a-z0-9_-]+\.\*$/;
const EVENT_ID = /^[A-Za-z0-9._:@/-]{1,128}$/;

/**
 * @typedef {{range: string, from: string, to: string, actors: string[], actions: string[],
 *   resource_type: string, resource_id: string, workspace: string, outcome: string, q: string,
 *   limit: number, event: string}} View
 */

/** @returns {View} the last 7 days, newest first, nothing else. */
export function defaults() {
  return { range: '7d', from: '', to: '', actors: [], actions: [], resource_type: '', resource_id: '', workspace: '', outcome: '', q: '', limit: DEFAULT_LIMIT, event: '' };
}

function isTime(s) {
  return typeof s === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(s) && !Number.isNaN(Date.parse(s));
}

const uniq = (xs) => [...new Set(xs)];

/**
 * Reads a view from URL parameters; what is malformed is dropped, not guessed.
 * @param {URLSearchParams} sp
 * @param {string} prefix
 * @returns {View}
 */
export function fromParams(sp, prefix = '') {
  const v = defaults();
  const get = (k) => sp.get(prefix + k) || '';
  const all = (k) => sp.getAll(prefix + k).filter(Boolean);
  const range = get('range');
  if (range === 'custom' || (!range && (get('from') || get('to')))) {
    v.range = 'custom';
    v.from = isTime(get('from')) ? get('from') : '';
    v.to = isTime(get('to')) ? get('to') : '';
  } else if (range in RANGES) {
    v.range = range;
  }
  v.actors = uniq(all('actor').filter((a) => a.length <= 320)).slice(0, MAX_VALUES);
  v.actions = uniq(all('action').filter((a) => ACTION.test(a))).slice(0, MAX_VALUES);
  for (const k of TEXT) {
    const s = get(k);
    if (s.length <= 256) v[k] = s;
  }
  if (['success', 'failure'].includes(get('outcome'))) v.outcome = get('outcome');
  const limit = Number(get('limit'));
  if (PAGE_SIZES.includes(limit)) v.limit = limit;
  if (EVENT_ID.test(get('event'))) v.event = get('event');
  return v;
}

/** The URL parameters of a view: only what differs from the default. */
export function toParams(view, prefix = '') {
  const sp = new URLSearchParams();
  const d = defaults();
  if (view.range === 'custom') {
    sp.set(`${prefix}range`, 'custom');
    if (view.from) sp.set(`${prefix}from`, view.from);
    if (view.to) sp.set(`${prefix}to`, view.to);
  } else if (view.range !== d.range) {
    sp.set(`${prefix}range`, view.range);
  }
  for (const a of view.actors) sp.append(`${prefix}actor`, a);
  for (const a of view.actions) sp.append(`${prefix}action`, a);
  for (const k of [...TEXT, 'outcome']) if (view[k]) sp.set(prefix + k, view[k]);
  if (view.limit !== d.limit) sp.set(`${prefix}limit`, String(view.limit));
  if (view.event) sp.set(`${prefix}event`, view.event);
  return sp;
}

/** The names this component owns in the page's URL. */
export function ownedKeys(prefix = '') {
  return ['range', 'from', 'to', 'actor', 'action', ...TEXT, 'outcome', 'limit', 'event'].map((k) => prefix + k);
}

/**
 * The API filters of a view as of `now`: a preset becomes a fixed `from`, so every page
 * and the count of one view ask exactly the same question (cursors are bound to it).
 * @returns {URLSearchParams}
 */
export function apiFilters(view, now = Date.now()) {
  const sp = new URLSearchParams();
  if (view.range === 'custom') {
    if (view.from) sp.set('from', view.from);
    if (view.to) sp.set('to', view.to);
  } else {
    sp.set('from', new Date(now - RANGES[view.range] * 86400 * 1000).toISOString());
  }
  for (const a of view.actors) sp.append('actor', a);
  for (const a of view.actions) sp.append('action', a);
  for (const k of [...TEXT, 'outcome']) if (view[k]) sp.set(k, view[k]);
  return sp;
}

/** The same filters as the body of `POST /v1/exports`. */
export function exportBody(filters, format) {
  const body = { format };
  for (const [k, v] of filters) {
    if (k === 'actor' || k === 'action') (body[k] ||= []).push(v);
    else body[k] = v;
  }
  return body;
}

/** Whether two views show the same events (the open event aside). */
export function sameFilters(a, b) {
  return toParams({ ...a, event: '' }).toString() === toParams({ ...b, event: '' }).toString();
}

export function isLoginHistory(view) {
  return view.actions.length === 1 && view.actions[0] === LOGIN_ACTIONS[0];
}
