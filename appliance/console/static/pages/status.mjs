// The appliance's readiness (/v1/ready): its checks, store and tenant isolation.
import { Badge, ErrorBox, Loading, html, useLoad } from "../ui.mjs";
import { ApiError } from "../api.mjs";

async function loadReady(api, signal) {
  try {
    return await api.get("/v1/ready", null, signal);
  } catch (e) {
    if (e instanceof ApiError && e.status === 503 && e.body?.checks) return e.body;  // not ready: still a report
    throw e;
  }
}

export function StatusPage({ api }) {
  const { data, error, loading, reload } = useLoad((signal) => loadReady(api, signal), [api]);
  return html`<h1>Status</h1>
    <p class="lead">What <code>/v1/ready</code> says of this appliance. <button type="button" onClick=${reload}>Check again</button></p>
    <${ErrorBox} error=${error} />
    ${loading && !data ? html`<${Loading} what="readiness" />` : null}
    ${data ? html`<section class="panel" aria-labelledby="ready-h">
      <h2 id="ready-h">${data.ok ? html`<${Badge} kind="ok">ready<//>` : html`<${Badge} kind="bad">not ready<//>`}</h2>
      <div class="table-wrap"><table>
        <thead><tr><th scope="col">Check</th><th scope="col">Answer</th></tr></thead>
        <tbody>${Object.entries(data.checks).map(([name, answer]) => html`<tr><th scope="row">${name.replace("_", " ")}</th>
          <td>${answer === "ok" ? html`<${Badge} kind="ok">ok<//>` : html`<span class="error-text">${answer}</span>`}</td></tr>`)}</tbody>
      </table></div>
      <dl class="facts-list">
        <dt>Store</dt><dd>${data.store_driver}: ${data.store_reason}</dd>
        ${data.isolation ? html`<dt>Tenant isolation</dt><dd>${data.isolation.level}: ${data.isolation.reason}</dd>` : null}
      </dl>
      ${data.warnings.length ? html`<h3>Warnings</h3><ul>${data.warnings.map((w) => html`<li>${w}</li>`)}</ul>` : null}
    </section>` : null}`;
}
