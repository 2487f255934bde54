// The org: usage against its quotas, and the shares it gave and received.
import { useState } from "preact/hooks";
import { ErrorBox, Loading, Meter, Time, bytes, html, short, span, useLoad } from "../ui.mjs";

async function loadOrg(api, org, signal) {
  const [usage, given, states] = await Promise.all([
    api.get(`/v1/orgs/${encodeURIComponent(org)}/usage`, null, signal),
    api.all(`/v1/orgs/${encodeURIComponent(org)}/shares`, {}, 1000, signal),
    api.all("/v1/states", {}, 5000, signal),
  ]);
  return { usage, given: given.rows, received: states.rows.filter((s) => s.shared_from) };
}

export function OrgPage({ api, me, org }) {
  const { data, error, loading, reload } = useLoad((signal) => loadOrg(api, org, signal), [api, org]);
  const [actionError, setActionError] = useState(null);
  const admin = me.global_admin || me.role === "admin";
  async function revoke(share) {
    try {
      await api.del(`/v1/states/${share.state_id}/shares/${encodeURIComponent(share.org)}`);
      reload();
    } catch (e) { setActionError(e); }
  }
  const l = data?.usage.limits;
  const u = data?.usage.usage;
  return html`<h1>Org <span class="mono">${org}</span></h1>
    <${ErrorBox} error=${error || actionError} />
    ${loading && !data ? html`<${Loading} what="the org" />` : null}
    ${data ? html`<div class="columns">
    <section class="panel grow" aria-labelledby="usage-h">
      <h2 id="usage-h">Usage and quotas</h2>
      <${Meter} label="Running jobs" value=${u.running_jobs} max=${l.max_running_jobs} />
      <${Meter} label="Queued jobs" value=${u.queued_jobs} max=${l.max_queued_jobs} />
      <${Meter} label="Live instances" value=${u.instances} max=${l.max_instances} />
      <${Meter} label="State bytes" value=${u.state_bytes} max=${l.max_state_bytes} format=${bytes} />
      <p class="muted">Each instance gets ${l.instance_memory_mb} MiB and ${l.instance_cpus} CPU; it lives at most ${span(l.max_ttl_seconds)}.
        Quotas are set by the operator.</p>
    </section>
    <section class="panel grow" aria-labelledby="shares-h">
      <h2 id="shares-h">Shares</h2>
      <h3>Given</h3>
      ${data.given.length === 0 ? html`<p class="muted">Your org shares no state.</p>` : html`<div class="table-wrap"><table>
        <thead><tr><th scope="col">State</th><th scope="col">With org</th><th scope="col">By</th><th scope="col">Since</th>${admin ? html`<th scope="col">Actions</th>` : null}</tr></thead>
        <tbody>${data.given.map((s) => html`<tr><td class="mono">${short(s.state_id)}</td><td>${s.org}</td><td class="subject-cell">${s.granted_by}</td>
          <td><${Time} at=${s.created_at} /></td>
          ${admin ? html`<td><button type="button" class="danger" onClick=${() => revoke(s)}
            aria-label=${`Stop sharing ${short(s.state_id)} with ${s.org}`}>Revoke</button></td>` : null}</tr>`)}</tbody></table></div>`}
      <h3>Received</h3>
      ${data.received.length === 0 ? html`<p class="muted">No org shares a state with yours.</p>` : html`<ul>
        ${data.received.map((s) => html`<li><span class="mono">${short(s.state_id)}</span> ${s.summary || ""} — from <strong>${s.shared_from}</strong></li>`)}</ul>`}
      ${admin ? html`<p class="muted">Share a state with <code>sqlrs share &lt;state&gt; &lt;org&gt;</code>.</p>` : null}
    </section></div>` : null}`;
}
