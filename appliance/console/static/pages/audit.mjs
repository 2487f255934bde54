// The audit log (admins): who did what, newest first.
import { useEffect, useState } from "preact/hooks";
import { ErrorBox, Loading, Time, html, useLoad } from "../ui.mjs";

export function AuditPage({ api, me, org }) {
  const [action, setAction] = useState("");
  const [rows, setRows] = useState([]);
  const [next, setNext] = useState(null);
  const valid = /^[a-z_.]{0,64}$/.test(action);
  const query = { order: "desc", action, limit: 100, org: me.global_admin ? org : null };  // operators: this org's only
  const { data, error, loading } = useLoad((signal) => valid ? api.page("/v1/audit", query, signal)
    : Promise.resolve({ rows: [], next: null }), [api, action, org]);
  useEffect(() => { if (data) { setRows(data.rows); setNext(data.next); } }, [data]);
  const [moreError, setMoreError] = useState(null);
  async function more() {
    try {
      const page = await api.page("/v1/audit", { ...query, cursor: next });
      setRows([...rows, ...page.rows]);
      setNext(page.next);
    } catch (e) { setMoreError(e); }
  }
  return html`<h1>Audit log</h1>
    <form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
      <label for="audit-action">Action</label>
      <input id="audit-action" value=${action} placeholder="e.g. prepare.submitted" aria-invalid=${!valid}
        onInput=${(e) => setAction(e.target.value.trim())} />
    </form>
    <${ErrorBox} error=${error || moreError} />
    ${loading && !rows.length ? html`<${Loading} what="the audit log" />` : null}
    <div class="table-wrap"><table>
      <caption class="visually-hidden">Audit events, newest first</caption>
      <thead><tr><th scope="col">When</th><th scope="col">Actor</th><th scope="col">Action</th><th scope="col">Object</th>
        <th scope="col">Outcome</th><th scope="col">From</th></tr></thead>
      <tbody>${rows.map((e) => html`<tr><td><${Time} at=${e.at} /></td><td class="subject-cell">${e.actor}</td><td>${e.action}</td>
        <td>${e.object_kind ? html`${e.object_kind} <span class="mono">${e.object_id}</span>` : "—"}</td><td>${e.outcome}</td>
        <td class="mono">${e.source || "—"}</td></tr>`)}</tbody></table></div>
    ${!loading && rows.length === 0 ? html`<p>No events match.</p>` : null}
    ${next && !loading ? html`<button type="button" onClick=${more}>Load older events</button>` : null}`;
}
