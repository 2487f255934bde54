// Instances: whose each is and since when, its DSN (members only) to copy, extend and delete.
import { useState } from "preact/hooks";
import { CopyField, Dialog, ErrorBox, Loading, StatusBadge, Time, html, masked, short, useLoad } from "../ui.mjs";

const EXTENSIONS = [["1 hour", 3600], ["8 hours", 8 * 3600], ["1 day", 86400], ["7 days", 7 * 86400]];

function Extend({ api, instance, onDone }) {
  const [ttl, setTtl] = useState(String(EXTENSIONS[0][1]));
  const [error, setError] = useState(null);
  async function submit(event) {
    event.preventDefault();
    try {
      await api.post(`/v1/instances/${instance.instance_id}/extend`, { ttl_seconds: Number(ttl) });
      onDone(`Instance ${short(instance.instance_id)} now lives ${EXTENSIONS.find(([, s]) => String(s) === ttl)[0]} from now.`);
    } catch (e) { setError(e); }
  }
  const id = `ttl-${instance.instance_id}`;
  return html`<form class="inline-form" onSubmit=${submit}>
    <label for=${id} class="visually-hidden">New lifetime for ${short(instance.instance_id)}</label>
    <select id=${id} value=${ttl} onChange=${(e) => setTtl(e.target.value)}>
      ${EXTENSIONS.map(([label, seconds]) => html`<option value=${String(seconds)}>${label} from now</option>`)}
    </select>
    <button type="submit">Extend</button>
    <${ErrorBox} error=${error} />
  </form>`;
}

export function InstancesPage({ api, me }) {
  const { data, error, loading, reload } = useLoad((signal) => api.all("/v1/instances", { order: "desc" }, 2000, signal), [api]);
  const [notice, setNotice] = useState("");
  const [doomed, setDoomed] = useState(null);
  const [deleteError, setDeleteError] = useState(null);
  const member = me.global_admin || me.role !== "viewer";
  function done(message) { setNotice(message); reload(); }
  const [blocked, setBlocked] = useState(null);
  async function remove(force = false) {
    try {
      const answer = await api.del(`/v1/instances/${doomed.instance_id}`, force ? { force: true } : null);
      setDoomed(null);
      setBlocked(null);
      done(`Instance ${short(doomed.instance_id)}: ${answer.outcome.replace("_", " ")}.`);
    } catch (e) {
      if (e.status === 409 && e.body?.root) setBlocked(e.body.root);
      else setDeleteError(e);
    }
  }
  const rows = (data?.rows || []).filter((i) => i.status !== "deleted");
  return html`<h1>Instances</h1>
    <p class="lead">Running databases of your org, newest first. <button type="button" onClick=${reload}>Refresh</button></p>
    <p role="status" class="notice" hidden=${!notice}>${notice}</p>
    <${ErrorBox} error=${error} />
    ${loading && !data ? html`<${Loading} what="instances" />` : null}
    ${data && rows.length === 0 ? html`<p>No instances. A prepare job hands one out.</p>` : null}
    ${rows.length ? html`<div class="table-wrap"><table class="instances cards">
      <caption class="visually-hidden">Instances</caption>
      <thead><tr><th scope="col">Instance</th><th scope="col">Status</th><th scope="col">Owner</th><th scope="col">Since</th>
        <th scope="col">Expires</th><th scope="col">Connect</th>${member ? html`<th scope="col">Actions</th>` : null}</tr></thead>
      <tbody>${rows.map((i) => html`<tr data-instance-id=${i.instance_id}>
        <th scope="row"><span class="mono" title=${i.instance_id}>${short(i.instance_id)}</span>${i.name ? html`<br/><span>${i.name}</span>` : null}
          <br/><span class="muted">state <span class="mono">${short(i.state_id)}</span></span></th>
        <td data-label="Status"><${StatusBadge} status=${i.status} />${i.teardown_error ? html`<br/><span class="error-text">${i.teardown_error}</span>` : null}</td>
        <td data-label="Owner" class="subject-cell">${i.owner || "—"}</td>
        <td data-label="Since"><${Time} at=${i.created_at} /></td>
        <td data-label="Expires" class="expires"><${Time} at=${i.expires_at} /></td>
        <td data-label="Connect" class="dsn-cell">${i.dsn ? html`<${CopyField} value=${i.dsn} shown=${masked(i.dsn)} label=${`DSN of ${short(i.instance_id)}`} id=${"dsn-" + i.instance_id} />`
          : html`<span class="muted">${member ? "—" : "DSNs are for members"}</span>`}</td>
        ${member ? html`<td data-label="Actions" class="actions">
          ${i.status === "active" ? html`<${Extend} api=${api} instance=${i} onDone=${done} />` : null}
          <button type="button" class="danger" onClick=${() => { setDeleteError(null); setDoomed(i); }}>Delete</button></td>` : null}
      </tr>`)}</tbody></table></div>` : null}
    <${Dialog} open=${Boolean(doomed)} title="Delete this instance?" onClose=${() => { setDoomed(null); setBlocked(null); }}>
      ${doomed ? html`<p>Instance <span class="mono">${short(doomed.instance_id)}</span>${doomed.name ? ` (${doomed.name})` : ""} stops and its clone is removed.
        Anyone connected is disconnected. The state it came from stays.</p>` : null}
      <${ErrorBox} error=${deleteError} />
      ${blocked ? html`<p class="error" role="alert">Blocked: ${blocked.blocked || "in use"}${blocked.connections ? ` (${blocked.connections} open connection${blocked.connections > 1 ? "s" : ""})` : ""}.
        Deleting anyway disconnects them.</p>` : null}
      <div class="dialog-actions">
        <button type="button" onClick=${() => { setDoomed(null); setBlocked(null); }}>Keep it</button>
        ${blocked ? html`<button type="button" class="danger" onClick=${() => remove(true)}>Delete anyway</button>`
          : html`<button type="button" class="danger" onClick=${() => remove(false)}>Delete instance</button>`}
      </div>
    <//>`;
}
