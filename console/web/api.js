// The audit log API as the component uses it. The token travels only in the
// Authorization header: never in a URL, in storage, or in a message.

/** A failed call, with the contract's error code and a sentence a person can act on. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status (0: no answer)
   * @param {string} code the contract's code, or `network`, `token_expired`
   * @param {string} message in words
   * @param {unknown} [details]
   */
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** The `exp` claim of a JWT, read without verifying it (only to word an error), in ms. */
function tokenExpiry(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const exp = JSON.parse(atob(part)).exp;
    return typeof exp === 'number' ? exp * 1000 : null;
  } catch {
    return null;
  }
}

const SCOPES = { '/v1/exports': 'audit:export' };

export class Api {
  /**
   * @param {string} base the API's base URL (`https://audit.example.com`); empty: this origin
   * @param {string} token a bearer token
   */
  constructor(base, token) {
    this.base = (base || '').replace(/\/+$/, '');
    /** @type {string} */
    this.token = token;
  }

  /**
   * @param {string} path `/v1/events`
   * @param {URLSearchParams} [params]
   * @param {AbortSignal} [signal]
   */
  get(path, params, signal) {
    const qs = params && [...params].length ? `?${params}` : '';
    return this.#call('GET', path + qs, undefined, signal);
  }

  /** @param {string} path @param {unknown} body */
  post(path, body) {
    return this.#call('POST', path, JSON.stringify(body));
  }

  async #call(method, path, body, signal) {
    const headers = { Authorization: `Bearer ${this.token}`, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let resp;
    try {
      resp = await fetch(this.base + path, { method, headers, body, signal, credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer' });
    } catch (e) {
      if (e instanceof DOMException && e.name === 'AbortError') throw e;
      throw new ApiError(0, 'network', 'The audit log service could not be reached. Check your connection and retry.');
    }
    let json = null;
    try {
      json = await resp.json();
    } catch {
      json = null;
    }
    if (resp.ok && json) return json;
    throw this.#failure(resp.status, json, path);
  }

  #failure(status, json, path) {
    const err = (json && json.error) || {};
    const code = typeof err.code === 'string' ? err.code : 'internal';
    const said = typeof err.message === 'string' ? err.message : '';
    if (status === 401) {
      const exp = tokenExpiry(this.token);
      if (exp !== null && exp <= Date.now()) {
        return new ApiError(401, 'token_expired', `Your access token expired at ${new Date(exp).toLocaleString()}. Get a new token to go on.`);
      }
      return new ApiError(401, 'unauthorized', 'The access token was refused: it is invalid, expired or for another service.');
    }
    if (status === 403) {
      const scope = Object.entries(SCOPES).find(([p]) => path.startsWith(p));
      return new ApiError(403, 'forbidden', `This token is not allowed to do this${scope ? ` (it needs the ${scope[1]} scope)` : ''}.`);
    }
    if (code === 'throttled' || status === 503 || status === 429) {
      return new ApiError(status, 'throttled', 'The audit log service is busy right now. Retry in a moment.');
    }
    if (status === 404) return new ApiError(404, 'not_found', said || 'Not found.');
    if (status >= 500 || !json) return new ApiError(status, code, `The audit log service failed (HTTP ${status}). Retry, and report it if it goes on.`);
    return new ApiError(status, code, said || `The request was refused (HTTP ${status}).`, err.details);
  }
}
