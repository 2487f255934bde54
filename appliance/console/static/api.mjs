// The v1 API as the console uses it: the signed-in principal's bearer token on every call, the
// chosen org in X-Sqlrs-Org, errors as ApiError with the API's stable `code`. Nothing else is
// called: the console has no private API.

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code || (status >= 500 ? "internal_error" : "http_" + status);
    this.details = body?.details || {};
    this.body = body;
  }
}

const PAGE = 200;

export class Api {
  constructor(session, onUnauthenticated) {
    this.session = session;
    this.onUnauthenticated = onUnauthenticated;
  }

  headers(extra = {}) {
    const headers = { Authorization: `Bearer ${this.session.token}`, Accept: "application/json", ...extra };
    if (this.session.org) headers["X-Sqlrs-Org"] = this.session.org;
    return headers;
  }

  async call(method, path, { query, body, accept, signal } = {}) {
    const url = path + (query ? "?" + new URLSearchParams(clean(query)) : "");
    const init = { method, headers: this.headers(accept ? { Accept: accept } : {}), signal };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    if (!response.ok) throw await failure(response, this.onUnauthenticated);
    return response;
  }

  async json(method, path, options) {
    const response = await this.call(method, path, options);
    return response.status === 204 ? null : response.json();
  }

  get(path, query, signal) { return this.json("GET", path, { query, signal }); }
  post(path, body) { return this.json("POST", path, { body }); }
  del(path, query) { return this.json("DELETE", path, { query }); }

  /** One page of a list and the cursor of the next (null on the last). */
  async page(path, query = {}, signal) {
    const response = await this.call("GET", path, { query: { limit: PAGE, ...query }, signal });
    return { rows: await response.json(), next: response.headers.get("Sqlrs-Next-Cursor") };
  }

  /** Every row of a list, following its cursors, up to `max` rows (`more`: rows were left). */
  async all(path, query = {}, max = 5000, signal) {
    const rows = [];
    let cursor = null;
    do {
      const page = await this.page(path, { ...query, cursor }, signal);
      rows.push(...page.rows);
      cursor = page.next;
    } while (cursor && rows.length < max);
    return { rows, more: Boolean(cursor) };
  }

  /** A job's events (NDJSON), every one from the first, then live until the job ends. */
  async events(jobId, onEvent, signal) {
    const response = await this.call("GET", `/v1/prepare-jobs/${encodeURIComponent(jobId)}/events`,
      { accept: "application/x-ndjson", signal });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      const lines = buffered.split("\n");
      buffered = lines.pop();
      for (const line of lines) if (line.trim()) onEvent(JSON.parse(line));
    }
  }

  async text(path, signal) {
    return (await this.call("GET", path, { accept: "*/*", signal })).text();
  }
}

function clean(query) {
  return Object.fromEntries(Object.entries(query).filter(([, v]) => v !== null && v !== undefined && v !== ""));
}

async function failure(response, onUnauthenticated) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON: a proxy's page */ }
  const error = new ApiError(response.status, body);
  if (response.status === 401 && onUnauthenticated) onUnauthenticated(error);
  return error;
}

/** Calls that need no token: how to sign in. */
export async function authConfig() {
  const response = await fetch("/v1/auth/config", { headers: { Accept: "application/json" } });
  if (!response.ok) throw await failure(response);
  return response.json();
}

/** Who a token is, in which org (org_required errors carry the orgs to choose from). */
export async function whoami(token, org) {
  return new Api({ token, org }).get("/v1/whoami");
}
