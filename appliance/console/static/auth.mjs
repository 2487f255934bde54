// Signing in: a pasted API token, or OIDC authorization code with PKCE (a public client: no
// secret in the browser). The token lives in sessionStorage: it leaves with the tab, and no
// cookie means no cross-site request can use it.

const SESSION = "sqlrs.session";
const PENDING = "sqlrs.oidc";
const LAST_ORG = "sqlrs.org";

export function loadSession() {
  try { return JSON.parse(sessionStorage.getItem(SESSION)) || null; } catch { return null; }
}

export function saveSession(session) {
  sessionStorage.setItem(SESSION, JSON.stringify(session));
  if (session.org) localStorage.setItem(LAST_ORG, session.org);
}

export function clearSession() {
  sessionStorage.removeItem(SESSION);
}

export function lastOrg() {
  return localStorage.getItem(LAST_ORG);
}

export function redirectUri() {
  return `${location.origin}/ui/`;
}

function b64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random(n) {
  return b64url(crypto.getRandomValues(new Uint8Array(n)));
}

async function discover(issuer) {
  const response = await fetch(`${issuer}/.well-known/openid-configuration`);
  if (!response.ok) throw new Error(`the issuer's discovery document answered HTTP ${response.status}`);
  const document = await response.json();
  if (document.issuer.replace(/\/$/, "") !== issuer) throw new Error("the issuer's discovery document names another issuer");
  if (!(document.code_challenge_methods_supported || ["S256"]).includes("S256")) {
    throw new Error("the issuer does not support PKCE with S256");
  }
  for (const name of ["authorization_endpoint", "token_endpoint"]) {
    const url = new URL(document[name]);
    if (url.protocol !== "https:" && url.origin !== new URL(issuer).origin) {
      throw new Error(`the issuer's ${name} is neither https nor on the issuer's origin`);
    }
  }
  return document;
}

/** Off to the issuer; it comes back to /ui/?code=…&state=… */
export async function startOidc(config) {
  if (!crypto.subtle) throw new Error("OIDC sign-in needs HTTPS (browsers keep Web Crypto to secure origins); paste an API token instead");
  const document = await discover(config.issuer);
  const verifier = random(48);
  const challenge = b64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
  const state = random(16);
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, tokenEndpoint: document.token_endpoint, clientId: config.client_id }));
  const url = new URL(document.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code", client_id: config.client_id, redirect_uri: redirectUri(), scope: config.scopes,
    state, code_challenge: challenge, code_challenge_method: "S256",
    ...(config.audience ? { audience: config.audience } : {}),  // issuers that mint access tokens per API ask for it
  });
  location.assign(url.toString());
}

/** Is this page the issuer's answer to a sign-in this tab started? (Anything else is ignored.) */
export function isOidcCallback(params) {
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  return Boolean(pending && params.get("state") === pending.state && (params.has("code") || params.has("error")));
}

/** Back from the issuer: the code becomes an access token (or the issuer's error is raised). */
export async function finishOidc(params) {
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, "", "/ui/");  // the code is single-use: keep it out of history
  if (!pending || params.get("state") !== pending.state) throw new Error("this sign-in was not started here (state mismatch); try again");
  if (params.get("error")) throw new Error(`the issuer refused: ${params.get("error") === "access_denied" ? "access denied" : params.get("error")}`);
  const response = await fetch(pending.tokenEndpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
    body: new URLSearchParams({
      grant_type: "authorization_code", code: params.get("code"), redirect_uri: redirectUri(),
      client_id: pending.clientId, code_verifier: pending.verifier,
    }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok || !body.access_token) {
    throw new Error(`the issuer did not give a token: ${body.error_description || body.error || "HTTP " + response.status}`);
  }
  return body.access_token;
}
