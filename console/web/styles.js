// The component's styles, adopted by its shadow root as a constructed stylesheet: no
// <style> element and no style attribute, so a page with a strict Content-Security-Policy
// (style-src without 'unsafe-inline') shows it as designed.

const css = `
:host {
  --alv-bg: #ffffff; --alv-fg: #1b1f24; --alv-muted: #5b6470; --alv-line: #d8dde3;
  --alv-soft: #f3f5f7; --alv-accent: #0b5cd5; --alv-accent-fg: #ffffff;
  --alv-ok: #126b32; --alv-ok-bg: #e3f4e8; --alv-bad: #a3161b; --alv-bad-bg: #fbe7e7;
  --alv-warn-bg: #fff4d6; --alv-warn: #6b4e00; --alv-radius: 6px;
  --alv-font: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  --alv-mono: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  display: block; container-type: inline-size; color-scheme: light dark;
  font: 14px/1.45 var(--alv-font); color: var(--alv-fg); background: var(--alv-bg);
}
@media (prefers-color-scheme: dark) {
  :host {
    --alv-bg: #15181c; --alv-fg: #e6e9ed; --alv-muted: #9aa4b0; --alv-line: #333a42;
    --alv-soft: #1e2227; --alv-accent: #5b9cff; --alv-accent-fg: #0b0d10;
    --alv-ok: #7fd99a; --alv-ok-bg: #17331f; --alv-bad: #ff8d8f; --alv-bad-bg: #3b1718;
    --alv-warn-bg: #3a3016; --alv-warn: #f2d58a;
  }
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
button, input, select { font: inherit; color: inherit; }
button {
  border: 1px solid var(--alv-line); background: var(--alv-soft); border-radius: var(--alv-radius);
  padding: 5px 10px; cursor: pointer; min-height: 32px;
}
button:hover:not(:disabled) { border-color: var(--alv-muted); }
button:disabled { opacity: .5; cursor: default; }
button.primary { background: var(--alv-accent); color: var(--alv-accent-fg); border-color: var(--alv-accent); }
button.link { border: none; background: none; color: var(--alv-accent); padding: 0 2px; min-height: 0; text-decoration: underline; }
:focus-visible { outline: 2px solid var(--alv-accent); outline-offset: 2px; }
input, select {
  border: 1px solid var(--alv-line); background: var(--alv-bg); border-radius: var(--alv-radius);
  padding: 5px 8px; min-height: 32px; min-width: 0; max-width: 100%;
}
.field { display: flex; flex-direction: column; gap: 2px; font-size: 12px; color: var(--alv-muted); min-width: 0; }
.field > input, .field > select { color: var(--alv-fg); font-size: 14px; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.muted { color: var(--alv-muted); }
.mono { font-family: var(--alv-mono); font-size: 12.5px; }

header.top { display: flex; flex-wrap: wrap; align-items: baseline; gap: 8px 16px; margin-bottom: 10px; }
header.top h2 { font-size: 18px; margin: 0; }
header.top .tz { color: var(--alv-muted); font-size: 12px; }
header.top .presets { margin-left: auto; display: flex; gap: 6px; flex-wrap: wrap; }
button[aria-pressed="true"] { background: var(--alv-accent); color: var(--alv-accent-fg); border-color: var(--alv-accent); }

form.filters {
  display: grid; gap: 8px; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr));
  align-items: end; padding: 10px; border: 1px solid var(--alv-line); border-radius: var(--alv-radius); background: var(--alv-soft);
}
form.filters .wide { grid-column: span 2; }
form.filters .actions-row { display: flex; gap: 6px; align-items: end; flex-wrap: wrap; }
@container (max-width: 480px) { form.filters { grid-template-columns: 1fr; } form.filters .wide { grid-column: auto; } }

.combo { position: relative; width: 100%; }
.combo > input { width: 100%; }
details.filter-box > summary { cursor: pointer; font-weight: 600; padding: 4px 0; width: max-content; }
details.filter-box[open] > summary { margin-bottom: 6px; }
.suggestions {
  position: absolute; z-index: 5; left: 0; right: 0; top: 100%; margin: 2px 0 0; padding: 4px; list-style: none;
  background: var(--alv-bg); border: 1px solid var(--alv-line); border-radius: var(--alv-radius);
  max-height: 260px; overflow: auto; box-shadow: 0 6px 18px rgb(0 0 0 / .15);
}
.suggestions button { display: block; width: 100%; text-align: left; border: none; background: none; padding: 4px 6px; }
.suggestions button:hover, .suggestions button:focus-visible { background: var(--alv-soft); }
.suggestions .email { display: block; font-size: 12px; color: var(--alv-muted); overflow-wrap: anywhere; }

details.picker { position: relative; }
details.picker > summary {
  list-style: none; cursor: pointer; border: 1px solid var(--alv-line); border-radius: var(--alv-radius);
  padding: 5px 8px; min-height: 32px; background: var(--alv-bg); color: var(--alv-fg); font-size: 14px;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
}
details.picker > summary::-webkit-details-marker { display: none; }
details.picker > summary::after { content: " ▾"; color: var(--alv-muted); }
details.picker .panel {
  position: absolute; z-index: 6; left: 0; top: 100%; margin-top: 2px; width: min(360px, 90cqw);
  background: var(--alv-bg); border: 1px solid var(--alv-line); border-radius: var(--alv-radius);
  padding: 8px; box-shadow: 0 6px 18px rgb(0 0 0 / .15); max-height: 380px; overflow: auto;
}
details.picker fieldset { border: none; margin: 6px 0 0; padding: 0; }
details.picker legend { font-weight: 600; padding: 0; }
details.picker label { display: flex; gap: 6px; align-items: center; padding: 2px 0; color: var(--alv-fg); font-size: 14px; }
details.picker fieldset label:not(.all) { padding-left: 18px; }
details.picker .n { margin-left: auto; color: var(--alv-muted); font-size: 12px; }
details.picker input[type=search] { width: 100%; }

.lookup { display: flex; gap: 6px; margin-top: 8px; flex-wrap: wrap; }
.lookup input { width: 220px; }
.chips { display: flex; flex-wrap: wrap; gap: 6px; margin: 8px 0 0; min-height: 0; }
.chip { display: inline-flex; gap: 4px; align-items: center; border-radius: 999px; padding: 2px 4px 2px 10px; background: var(--alv-soft); border: 1px solid var(--alv-line); font-size: 12.5px; max-width: 100%; }
.chip span { overflow-wrap: anywhere; }
.chip button { min-height: 0; padding: 0 6px; border: none; background: none; }

.status:empty { display: none; }
.status { margin: 10px 0; }
.notice { padding: 10px 12px; border-radius: var(--alv-radius); display: flex; flex-wrap: wrap; gap: 8px 12px; align-items: center; }
.notice.error { background: var(--alv-bad-bg); color: var(--alv-bad); }
.notice.warn { background: var(--alv-warn-bg); color: var(--alv-warn); }
.notice button { color: var(--alv-fg); }

.results { margin-top: 10px; position: relative; }
.results[aria-busy="true"] tbody { opacity: .55; }
table.events { width: 100%; border-collapse: collapse; table-layout: fixed; }
table.events th { text-align: left; font-size: 12px; font-weight: 600; color: var(--alv-muted); padding: 6px 8px; border-bottom: 1px solid var(--alv-line); }
table.events td { padding: 6px 8px; border-bottom: 1px solid var(--alv-line); vertical-align: top; overflow-wrap: anywhere; height: 52px; }
table.events col.time { width: 15%; } table.events col.action { width: 17%; } table.events col.actor { width: 19%; }
table.events col.resource { width: 18%; } table.events col.ws { width: 11%; } table.events col.ip { width: 11%; } table.events col.outcome { width: 9%; }
table.events tbody tr { cursor: pointer; }
table.events tbody tr:hover, table.events tbody tr:focus-visible { background: var(--alv-soft); }
table.events tbody tr:focus-visible { outline-offset: -2px; }
.sub { display: block; color: var(--alv-muted); font-size: 12px; }
.cat { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 4px; background: var(--alv-soft); border: 1px solid var(--alv-line); color: var(--alv-muted); margin-right: 4px; }
.badge { display: inline-block; font-size: 12px; padding: 1px 8px; border-radius: 999px; }
.badge.success { background: var(--alv-ok-bg); color: var(--alv-ok); }
.badge.failure { background: var(--alv-bad-bg); color: var(--alv-bad); }
.badge.archived { background: var(--alv-warn-bg); color: var(--alv-warn); }
tr.skeleton td::after { content: ""; display: block; height: 12px; margin-top: 4px; border-radius: 4px; background: var(--alv-soft); }
.empty { padding: 28px 12px; text-align: center; color: var(--alv-muted); border-bottom: 1px solid var(--alv-line); }
.empty p { margin: 0 0 10px; font-size: 15px; color: var(--alv-fg); }

nav.pager { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 12px; margin-top: 10px; min-height: 34px; }
nav.pager .where { margin-right: auto; }
nav.pager label { display: flex; gap: 6px; align-items: center; color: var(--alv-muted); }

@container (max-width: 720px) {
  table.events, table.events tbody, table.events tr, table.events td { display: block; }
  table.events thead, table.events colgroup { display: none; }
  table.events tbody tr { border: 1px solid var(--alv-line); border-radius: var(--alv-radius); margin-bottom: 8px; padding: 6px 8px; }
  table.events td { border: none; padding: 2px 0; height: auto; display: grid; grid-template-columns: 88px minmax(0, 1fr); gap: 8px; }
  table.events td::before { content: attr(data-label); color: var(--alv-muted); font-size: 12px; }
  tr.skeleton { height: 180px; }
}

section.exports { margin-top: 18px; border-top: 1px solid var(--alv-line); padding-top: 12px; }
section.exports h3 { font-size: 15px; margin: 0 0 8px; }
section.exports .make { display: flex; flex-wrap: wrap; gap: 8px; align-items: end; }
.job { border: 1px solid var(--alv-line); border-radius: var(--alv-radius); padding: 8px 10px; margin-top: 8px; display: grid; gap: 2px; }
.job .head { display: flex; flex-wrap: wrap; gap: 6px 12px; align-items: baseline; }
.job a { color: var(--alv-accent); overflow-wrap: anywhere; }
ul.recent { list-style: none; padding: 0; margin: 8px 0 0; }
progress { width: 140px; }

dialog.detail {
  width: min(860px, calc(100vw - 16px)); max-height: calc(100vh - 16px); border: 1px solid var(--alv-line);
  border-radius: 10px; padding: 0; background: var(--alv-bg); color: var(--alv-fg);
}
dialog.detail::backdrop { background: rgb(0 0 0 / .45); }
dialog.detail .inner { padding: 14px 16px; display: grid; gap: 12px; }
dialog.detail header { display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
dialog.detail h3 { margin: 0; font-size: 17px; overflow-wrap: anywhere; }
dialog.detail header .close { margin-left: auto; }
.card { border: 1px solid var(--alv-line); border-radius: var(--alv-radius); padding: 8px 10px; }
.card h4, dialog.detail h4 { margin: 0 0 4px; font-size: 13px; color: var(--alv-muted); font-weight: 600; }
dl.kv { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 2px 12px; margin: 0; }
dl.kv dt { color: var(--alv-muted); }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
table.changes { width: 100%; border-collapse: collapse; table-layout: fixed; }
table.changes th, table.changes td { text-align: left; border-bottom: 1px solid var(--alv-line); padding: 4px 6px; vertical-align: top; overflow-wrap: anywhere; }
table.changes td.old { background: var(--alv-bad-bg); } table.changes td.new { background: var(--alv-ok-bg); }
pre.json { margin: 0; padding: 10px; background: var(--alv-soft); border-radius: var(--alv-radius); overflow: auto; max-height: 45vh; font: 12.5px/1.45 var(--alv-mono); white-space: pre-wrap; overflow-wrap: anywhere; }
.json-head { display: flex; align-items: center; gap: 8px; margin-bottom: 4px; }
.json-head h4 { margin: 0; }
`;

let sheet = null;

/** One stylesheet shared by every instance. */
export function styles() {
  if (!sheet) {
    sheet = new CSSStyleSheet();
    sheet.replaceSync(css);
  }
  return sheet;
}
