// Exports of the current view: create one (CSV or JSON lines), follow it to its file,
// and list the recent ones. Each GET of a job signs a fresh download link.

import { h, replace } from './dom.js';
import { zoned, utc, count, bytes, relative } from './format.js';

const POLL_MS = [500, 1000, 1000, 2000, 2000, 5000];
const DONE = new Set(['succeeded', 'failed', 'expired']);

/** A download link is shown only if it is a plain http(s) URL. */
function safeUrl(u) {
  try {
    const url = new URL(u);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url : null;
  } catch {
    return null;
  }
}

/** When a presigned S3 link stops working: X-Amz-Date + X-Amz-Expires. */
function linkExpiry(url) {
  const date = url.searchParams.get('X-Amz-Date');
  const secs = Number(url.searchParams.get('X-Amz-Expires'));
  const m = date && /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(date);
  if (!m || !secs) return null;
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) + secs * 1000).toISOString();
}

export class ExportPanel {
  /** @param {{api: () => import('./api.js').Api | null, filters: () => URLSearchParams, zone: () => string, body: (f: URLSearchParams, format: string) => object}} host */
  constructor(host) {
    this.host = host;
    this.format = h('select', { name: 'format' }, h('option', { value: 'csv' }, 'CSV'), h('option', { value: 'jsonl' }, 'JSON lines'), h('option', { value: 'parquet' }, 'Parquet'));
    this.button = h('button', { type: 'button', name: 'export', class: 'primary', onclick: () => this.create() }, 'Export these events');
    this.current = h('div', { class: 'current', 'aria-live': 'polite' });
    this.recent = h('ul', { class: 'recent', 'aria-label': 'Recent exports' });
    this.el = h('section', { class: 'exports', 'aria-label': 'Exports' },
      h('h3', {}, 'Export'),
      h('div', { class: 'make' }, h('label', { class: 'field' }, 'Format', this.format), this.button),
      this.current,
      h('h4', {}, 'Recent exports'), this.recent);
    this.timer = 0;
  }

  stop() {
    clearTimeout(this.timer);
  }

  /** Creates an export of what the view shows now. */
  async create(format = this.format.value) {
    const api = this.host.api();
    if (!api) return;
    this.stop();
    this.button.disabled = true;
    replace(this.current, h('p', { class: 'muted' }, 'Creating the export…'));
    try {
      const job = await api.post('/v1/exports', this.host.body(this.host.filters(), format));
      this.#follow(job.id, 0);
    } catch (e) {
      replace(this.current, h('p', { class: 'notice error', role: 'alert' }, e.message));
    } finally {
      this.button.disabled = false;
    }
  }

  async #follow(id, n) {
    const api = this.host.api();
    if (!api || !this.el.isConnected) return;
    try {
      const job = await api.get(`/v1/exports/${encodeURIComponent(id)}`);
      replace(this.current, this.#job(job, true));
      if (DONE.has(job.status)) {
        this.refresh();
        return;
      }
    } catch (e) {
      replace(this.current, h('p', { class: 'notice error', role: 'alert' }, e.message));
      return;
    }
    this.timer = setTimeout(() => this.#follow(id, n + 1), POLL_MS[Math.min(n, POLL_MS.length - 1)]);
  }

  /** Reloads the list of recent exports. */
  async refresh() {
    const api = this.host.api();
    if (!api) return;
    try {
      const list = await api.get('/v1/exports');
      const items = Array.isArray(list.items) ? list.items.slice(0, 10) : [];
      replace(this.recent, items.length ? items.map((j) => h('li', {}, this.#job(j, false))) : h('li', { class: 'muted' }, 'No exports in the last 7 days.'));
      this.button.disabled = false;
    } catch (e) {
      if (e.status === 403) this.button.disabled = true;
      replace(this.recent, h('li', { class: 'muted' }, e.message));
    }
  }

  #job(j, main) {
    const zone = this.host.zone();
    const status = String(j.status || '');
    const url = j.download_url ? safeUrl(j.download_url) : null;
    const lines = [];
    const rows = typeof j.rows === 'number' ? `${count(j.rows)} row${j.rows === 1 ? '' : 's'}` : '';
    lines.push(h('div', { class: 'head' },
      h('strong', {}, String(j.format || '').toUpperCase() || 'Export'),
      h('span', { class: `status ${status}`, dataset: { status } }, status),
      !DONE.has(status) && main ? h('progress', { 'aria-label': 'Export in progress' }) : null,
      rows ? h('span', { class: 'rows' }, rows) : null,
      j.bytes ? h('span', { class: 'muted' }, bytes(j.bytes)) : null,
      j.created_at ? h('span', { class: 'muted', title: utc(j.created_at) }, `requested ${zoned(j.created_at, zone)}`) : null));
    if (j.truncated === true) {
      lines.push(h('p', { class: 'notice warn truncated' },
        typeof j.truncated_reason === 'string' && j.truncated_reason
          ? `Truncated: ${j.truncated_reason}`
          : `Truncated: more events matched than one export holds; it keeps the most recent ${rows}. Narrow the range for the rest.`));
    }
    const manifest = status === 'succeeded' && j.manifest_url ? safeUrl(j.manifest_url) : null;
    if (manifest) {
      lines.push(h('a', { href: manifest.href, download: 'manifest.json', class: 'manifest', rel: 'noopener noreferrer' }, 'Signed manifest (manifest.json)'));
    }
    if (j.error && typeof j.error.message === 'string') lines.push(h('p', { class: 'notice error' }, `Failed: ${j.error.message}`));
    if (status === 'succeeded' && url) {
      const ext = j.format === 'jsonl' || j.format === 'parquet' ? j.format : 'csv';
      const name = `audit-log-${String(j.id).slice(0, 12)}.${ext}`;
      const linkEnds = linkExpiry(url);
      lines.push(h('div', {},
        h('a', { href: url.href, download: name, class: 'download', rel: 'noopener noreferrer' }, `Download ${name}`),
        h('span', { class: 'sub valid' },
          linkEnds ? `Link valid until ${zoned(linkEnds, zone)} (${relative(linkEnds)}); ` : '',
          j.expires_at ? `file kept until ${zoned(j.expires_at, zone)} (${relative(j.expires_at)}).` : '')));
    } else if (status === 'succeeded' && Array.isArray(j.files) && j.files.length > 1) {
      // An export in several files: a link to each, under the name its manifest lists.
      lines.push(h('ul', { class: 'files' }, j.files.map((f) => {
        const u = safeUrl(f.download_url);
        return u ? h('li', {}, h('a', { href: u.href, download: String(f.name), class: 'download', rel: 'noopener noreferrer' }, `Download ${f.name}`)) : null;
      })));
    } else if (status === 'expired') {
      lines.push(h('span', { class: 'sub' }, 'The file has expired; create a new export.'));
    }
    return h('div', { class: 'job', dataset: { exportId: String(j.id || '') } }, lines);
  }
}
