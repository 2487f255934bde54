// The org's robot tokens (admins): create one (its secret is shown once), revoke.
import { useState } from "preact/hooks";
import { Badge, CopyField, Dialog, ErrorBox, Loading, Time, html, useLoad } from "../ui.mjs";

const LIFETIMES = [["30 days", 30], ["90 days", 90], ["1 year", 366]];

function CreateToken({ api, org, role, onCreated }) {
  const [name, setName] = useState("");
  const [tokenRole, setRole] = useState("member");
  const [days, setDays] = useState("90");
  const [error, setError] = useState(null);
  const roles = ["viewer", "member", "admin"].filter((r) => role === "operator" || ["viewer", "member", "admin"].indexOf(r) <= ["viewer", "member", "admin"].indexOf(role));
  async function submit(event) {
    event.preventDefault();
    setError(null);
    try {
      const created = await api.post(`/v1/orgs/${encodeURIComponent(org)}/tokens`,
        { name: name.trim(), role: tokenRole, ttl_seconds: Number(days) * 86400 });
      setName("");
      onCreated(created);
    } catch (e) { setError(e); }
  }
  return html`<form class="stacked" onSubmit=${submit} aria-labelledby="create-h">
    <h2 id="create-h">Create a token</h2>
    <${ErrorBox} error=${error} />
    <label for="token-name">Name</label>
    <input id="token-name" required maxlength="128" value=${name} onInput=${(e) => setName(e.target.value)} placeholder="ci-pipeline" />
    <label for="token-role">Role</label>
    <select id="token-role" value=${tokenRole} onChange=${(e) => setRole(e.target.value)}>
      ${roles.map((r) => html`<option value=${r}>${r}</option>`)}</select>
    <label for="token-ttl">Lifetime</label>
    <select id="token-ttl" value=${days} onChange=${(e) => setDays(e.target.value)}>
      ${LIFETIMES.map(([label, d]) => html`<option value=${String(d)}>${label}</option>`)}</select>
    <button type="submit" class="primary">Create token</button>
  </form>`;
}

export function TokensPage({ api, me, org }) {
  const { data, error, loading, reload } = useLoad((signal) => api.get(`/v1/orgs/${encodeURIComponent(org)}/tokens`, null, signal), [api, org]);
  const [created, setCreated] = useState(null);
  const [actionError, setActionError] = useState(null);
  async function revoke(token) {
    try {
      await api.del(`/v1/orgs/${encodeURIComponent(org)}/tokens/${token.token_id}`);
      reload();
    } catch (e) { setActionError(e); }
  }
  const rows = data || [];
  return html`<h1>Tokens of <span class="mono">${org}</span></h1>
    <${ErrorBox} error=${error || actionError} />
    <div class="columns">
    <section class="panel grow" aria-labelledby="tokens-h">
      <h2 id="tokens-h">Robot tokens</h2>
      ${loading && !data ? html`<${Loading} what="tokens" />` : null}
      ${data && rows.length === 0 ? html`<p>No robot tokens yet.</p>` : null}
      ${rows.length ? html`<div class="table-wrap"><table>
        <thead><tr><th scope="col">Name</th><th scope="col">Role</th><th scope="col">Created</th><th scope="col">Expires</th>
          <th scope="col">Last used</th><th scope="col">Actions</th></tr></thead>
        <tbody>${rows.map((t) => html`<tr data-token-id=${t.token_id}><th scope="row">${t.name}</th><td>${t.role}</td>
          <td><${Time} at=${t.created_at} /> <span class="muted">by ${t.created_by || "—"}</span></td><td><${Time} at=${t.expires_at} /></td>
          <td><${Time} at=${t.last_used_at} /></td>
          <td>${t.revoked_at ? html`<${Badge} kind="muted">revoked<//>`
            : html`<button type="button" class="danger" onClick=${() => revoke(t)} aria-label=${`Revoke token ${t.name}`}>Revoke</button>`}</td></tr>`)}
        </tbody></table></div>` : null}
    </section>
    <section class="panel">
      <${CreateToken} api=${api} org=${org} role=${me.global_admin ? "operator" : me.role} onCreated=${(t) => { setCreated(t); reload(); }} />
    </section></div>
    <${Dialog} open=${Boolean(created)} title="Your new token" onClose=${() => setCreated(null)}>
      ${created ? html`<p>This is the only time the secret of <strong>${created.name}</strong> is shown. Store it now.</p>
        <${CopyField} value=${created.token} label="token secret" id="new-token" />` : null}
      <div class="dialog-actions"><button type="button" class="primary" onClick=${() => setCreated(null)}>I stored it</button></div>
    <//>`;
}
