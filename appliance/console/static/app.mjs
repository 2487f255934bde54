// The console's shell: sign-in, the org switcher, navigation and the hash router.
import { render } from "preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Api, ApiError, authConfig, whoami } from "./api.mjs";
import { clearSession, finishOidc, isOidcCallback, lastOrg, loadSession, saveSession, startOidc } from "./auth.mjs";
import { ErrorBox, html } from "./ui.mjs";
import { StatesPage } from "./pages/states.mjs";
import { JobPage, JobsPage } from "./pages/jobs.mjs";
import { InstancesPage } from "./pages/instances.mjs";
import { OrgPage } from "./pages/org.mjs";
import { TokensPage } from "./pages/tokens.mjs";
import { AuditPage } from "./pages/audit.mjs";
import { StatusPage } from "./pages/status.mjs";

const PAGES = [
  { path: "states", title: "States", page: StatesPage },
  { path: "jobs", title: "Jobs", page: JobsPage },
  { path: "instances", title: "Instances", page: InstancesPage },
  { path: "org", title: "Org", page: OrgPage },
  { path: "tokens", title: "Tokens", page: TokensPage, admin: true },
  { path: "audit", title: "Audit log", page: AuditPage, admin: true },
  { path: "status", title: "Status", page: StatusPage },
];

function useRoute() {
  const read = () => (location.hash.replace(/^#\/?/, "") || "states").split("/").map(decode);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const changed = () => setRoute(read());
    addEventListener("hashchange", changed);
    changed();  // a change between the first render and now
    return () => removeEventListener("hashchange", changed);
  }, []);
  return route;
}

function decode(part) {
  try { return decodeURIComponent(part); } catch { return part; }  // a malformed %-escape stays as typed
}

/** Who the session's token is in its org; a member of several orgs who named none gets the last org used. */
async function identify(token, org) {
  try {
    return { me: await whoami(token, org), org };
  } catch (error) {
    if (error instanceof ApiError && error.details.reason === "org_required" && !org) {
      const orgs = error.details.orgs.map((m) => m.org);
      const pick = orgs.includes(lastOrg()) ? lastOrg() : orgs[0];
      return { me: await whoami(token, pick), org: pick };
    }
    throw error;
  }
}

function SignIn({ onSignedIn, notice }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [oidc, setOidc] = useState(null);
  useEffect(() => { authConfig().then((c) => setOidc(c.oidc), setError); }, []);
  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await onSignedIn(token.trim(), "token");
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  }
  async function oidcSignIn() {
    setError(null);
    try { await startOidc(oidc); } catch (e) { setError(e); }
  }
  return html`<main id="main" class="signin" tabindex="-1">
    <h1>Sign in to sqlrs</h1>
    ${notice && html`<p class="notice" role="status">${notice}</p>`}
    <${ErrorBox} error=${error} />
    ${oidc && html`<section aria-labelledby="sso">
      <h2 id="sso">Single sign-on</h2>
      <button type="button" class="primary" onClick=${oidcSignIn}>Sign in with your identity provider</button>
    </section>`}
    <section aria-labelledby="with-token">
      <h2 id="with-token">${oidc ? "Or with an API token" : "With an API token"}</h2>
      <form onSubmit=${submit}>
        <label for="token">API token</label>
        <input id="token" type="password" autocomplete="off" spellcheck="false" required
          placeholder="sqlrs_…" value=${token} onInput=${(e) => setToken(e.target.value)} />
        <button type="submit" class="primary" disabled=${busy}>${busy ? "Signing in…" : "Sign in"}</button>
      </form>
      <p class="muted">Robot tokens come from your org's admins (Tokens page, or <code>sqlrs token create</code>).
        The token stays in this tab only.</p>
    </section>
  </main>`;
}

function OrgSwitcher({ me, org, onSwitch }) {
  const [typed, setTyped] = useState(org);
  if (me.global_admin) {
    return html`<form class="org-switcher" onSubmit=${(e) => { e.preventDefault(); onSwitch(typed.trim()); }}>
      <label for="org-input">Org</label>
      <input id="org-input" value=${typed} size="12" onInput=${(e) => setTyped(e.target.value)} />
      <button type="submit">Switch</button>
    </form>`;
  }
  if (me.orgs.length < 2) return html`<span class="org-name" aria-label="Org">${org}</span>`;
  return html`<span class="org-switcher">
    <label for="org-select">Org</label>
    <select id="org-select" value=${org} onChange=${(e) => onSwitch(e.target.value)}>
      ${me.orgs.map((m) => html`<option value=${m.org}>${m.org} (${m.role})</option>`)}
    </select>
  </span>`;
}

function Shell({ session, me, onSwitch, onSignOut, onExpired, switchError }) {
  const route = useRoute();
  const api = useMemo(() => new Api(session, onExpired), [session.token, session.org]);
  const admin = me.global_admin || me.role === "admin";
  const pages = PAGES.filter((p) => admin || !p.admin);
  const [name, ...rest] = route;
  const entry = pages.find((p) => p.path === name);
  const main = useRef(null);
  const Page = entry ? entry.page : null;
  const detailJob = name === "jobs" && rest[0];
  const first = useRef(true);
  useEffect(() => {
    document.title = `${detailJob ? "Job " + rest[0].slice(0, 12) : entry?.title || "Not found"} · sqlrs`;
    // Another page: screen readers and keyboards start at its content (a fresh load starts at the top).
    if (!first.current) main.current?.focus();
    first.current = false;
  }, [route.join("/")]);
  return html`<div class="shell">
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); main.current.focus(); }}>Skip to content</a>
    <header class="top">
      <span class="brand">sqlrs</span>
      <nav aria-label="Main">
        <ul>
          ${pages.map((p) => html`<li><a href=${"#/" + p.path} aria-current=${p.path === name ? "page" : undefined}>${p.title}</a></li>`)}
        </ul>
      </nav>
      <div class="who">
        <${OrgSwitcher} me=${me} org=${session.org || me.org} onSwitch=${onSwitch} />
        <span class="subject" title=${me.subject}>${me.subject} · ${me.global_admin ? "operator" : me.role}</span>
        <button type="button" onClick=${onSignOut}>Sign out</button>
      </div>
    </header>
    <main id="main" ref=${main} tabindex="-1">
      <${ErrorBox} error=${switchError} />
      ${detailJob ? html`<${JobPage} api=${api} me=${me} jobId=${rest[0]} />`
        : Page ? html`<${Page} api=${api} me=${me} org=${session.org || me.org} route=${rest} />`
        : html`<h1>Not found</h1><p>No page <code>${name}</code> here. <a href="#/states">States</a>.</p>`}
    </main>
  </div>`;
}

function App() {
  const [session, setSession] = useState(loadSession);
  const [me, setMe] = useState(null);
  const [notice, setNotice] = useState("");
  const [error, setError] = useState(null);
  const [switchError, setSwitchError] = useState(null);

  async function signIn(token, via, org = null) {
    const found = await identify(token, org);
    const next = { token, via, org: found.org || found.me.org };
    saveSession(next);
    setSession(next);
    setMe(found.me);
    setNotice("");
  }
  function signOut(message = "") {
    clearSession();
    setSession(null);
    setMe(null);
    setNotice(message);
  }
  useEffect(() => {
    const params = new URLSearchParams(location.search);
    const callback = isOidcCallback(params);
    if (callback) {
      finishOidc(params).then((token) => signIn(token, "oidc"), (e) => setError(e));
    } else if (location.search) {
      history.replaceState(null, "", "/ui/" + location.hash);  // parameters of no sign-in of ours: dropped unread
    }
    if (!callback && session && !me) {
      signIn(session.token, session.via, session.org).catch(() => signOut("Your session ended; sign in again."));
    }
  }, []);
  const expired = () => signOut("Your session ended or the token was revoked; sign in again.");
  if (error) return html`<main id="main" class="signin"><h1>Sign-in failed</h1><${ErrorBox} error=${error} />
    <button type="button" onClick=${() => { setError(null); signOut(); }}>Back to sign-in</button></main>`;
  if (!session) return html`<${SignIn} onSignedIn=${signIn} notice=${notice} />`;
  if (!me) return html`<p class="boot" role="status">Signing in…</p>`;
  const switchOrg = (org) => signIn(session.token, session.via, org).then(() => setSwitchError(null), setSwitchError);
  return html`<${Shell} session=${session} me=${me} onSignOut=${() => signOut()} onExpired=${expired}
    onSwitch=${switchOrg} switchError=${switchError} />`;
}

const root = document.getElementById("app");
root.textContent = "";  // the "Loading…" line
render(html`<${App} />`, root);
