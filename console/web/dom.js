// Element building without HTML parsing: every piece of data becomes a text node or a
// property, never markup, so an event's fields cannot inject elements or scripts.

/** Properties set as DOM properties rather than attributes. */
const PROPS = new Set(['value', 'checked', 'disabled', 'hidden', 'selected', 'open', 'indeterminate']);

/**
 * `h('button', {class: 'x', onclick: f}, 'text', child)`.
 * @param {string} tag
 * @param {Record<string, unknown>} [props]
 * @param {...unknown} children strings, numbers, nodes, arrays of them; null is skipped
 * @returns {HTMLElement}
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = String(v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), /** @type {any} */ (v));
    else if (PROPS.has(k)) /** @type {any} */ (el)[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** Appends text and nodes (nested arrays allowed). */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Calls `f` once input has paused for `ms`. */
export function debounce(f, ms) {
  let t = 0;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => f(...args), ms);
  };
}

/** A unique id for label/aria wiring inside one shadow root. */
let seq = 0;
export function uid(prefix) {
  seq += 1;
  return `${prefix}-${seq}`;
}
