// States: the tree (parent to children) with what each step made, its size, use, instances and
// sharing; and the cache's pressure: what eviction would take next, and what blocks it.
import { useState } from "preact/hooks";
import { Badge, ErrorBox, Loading, Meter, Time, bytes, html, short, useLoad } from "../ui.mjs";

const BLOCKERS = { in_use: "an instance runs on it", job: "a job builds on it", too_young: "too young to evict" };

async function loadStates(api, org, signal) {
  const [states, instances, cache, shares] = await Promise.all([
    api.all("/v1/states", {}, 5000, signal),
    api.all("/v1/instances", {}, 5000, signal),
    api.get("/v1/cache/status", null, signal),
    api.all(`/v1/orgs/${encodeURIComponent(org)}/shares`, {}, 5000, signal),
  ]);
  const running = {};
  for (const i of instances.rows) if (i.status === "active") running[i.state_id] = (running[i.state_id] || 0) + 1;
  const sharedWith = {};
  for (const s of shares.rows) (sharedWith[s.state_id] ||= []).push(s.org);
  return { states: states.rows, more: states.more, running, cache, sharedWith };
}

/** Roots (no parent, or a parent not visible here) with their children, oldest first. */
function tree(states) {
  const byId = new Map(states.map((s) => [s.state_id, { ...s, children: [] }]));
  const roots = [];
  for (const node of byId.values()) {
    const parent = node.parent_state_id && byId.get(node.parent_state_id);
    (parent ? parent.children : roots).push(node);
  }
  return roots;
}

function StateNode({ node, running, sharedWith, evictable, level }) {
  const [open, setOpen] = useState(true);
  const kids = node.children.length;
  const label = node.summary || `${node.prepare_kind} state`;
  return html`<li class="state-node" data-state-id=${node.state_id}>
    <div class="state-row">
      ${kids ? html`<button type="button" class="toggle" aria-expanded=${open} onClick=${() => setOpen(!open)}
          aria-label=${`${open ? "Collapse" : "Expand"} ${label}`}>${open ? "▾" : "▸"}</button>`
        : html`<span class="toggle" aria-hidden="true">·</span>`}
      <span class="state-summary">${label}</span>
      <span class="mono muted" title=${node.state_id}>${short(node.state_id)}</span>
      <span class="facts">
        <span>${bytes(node.size_bytes)}</span>
        <span>used <${Time} at=${node.last_used_at} /> (${node.use_count}×)</span>
        ${running[node.state_id] ? html`<${Badge} kind="ok">${running[node.state_id]} instance${running[node.state_id] > 1 ? "s" : ""}<//>` : null}
        ${node.shared_from ? html`<${Badge} kind="muted">shared by ${node.shared_from}<//>` : null}
        ${sharedWith[node.state_id] ? html`<${Badge} kind="muted">shared with ${sharedWith[node.state_id].join(", ")}<//>` : null}
        ${evictable.has(node.state_id) ? html`<${Badge} kind="wait">first of yours to evict<//>` : null}
      </span>
    </div>
    ${kids && open ? html`<ul role="group" aria-label=${`Built on ${label}`}>
      ${node.children.map((c) => html`<${StateNode} node=${c} running=${running} sharedWith=${sharedWith} evictable=${evictable} level=${level + 1} />`)}
    </ul>` : null}
  </li>`;
}

function CachePressure({ cache }) {
  const reasons = cache.pressure_reasons;
  return html`<section aria-labelledby="cache-h" class="panel">
    <h2 id="cache-h">Cache</h2>
    <${Meter} label="This host's state cache" value=${cache.usage_bytes} max=${cache.effective_max_bytes} format=${bytes} />
    <p>Your org holds ${bytes(cache.org_usage_bytes)} in ${cache.state_count} states here.
      Eviction starts above ${Math.round(cache.high_watermark * 100)}% and stops at ${Math.round(cache.low_watermark * 100)}%,
      least recently used first, whichever org's. On this host (every org) ${bytes(cache.reclaimable_bytes)} could be
      reclaimed now and ${cache.blocked_count} leaf state(s) are blocked.</p>
    <p>${reasons.length ? html`<${Badge} kind="bad">under pressure<//> ${reasons.join(", ").replaceAll("_", " ")}`
      : html`<${Badge} kind="ok">no pressure<//>`}</p>
    <h3>What eviction would take next</h3>
    ${cache.eviction_queue.length === 0 ? html`<p class="muted">None of your states is a leaf on this host.</p>` : html`
    <div class="table-wrap"><table>
      <caption class="visually-hidden">Your leaf states in eviction order</caption>
      <thead><tr><th scope="col">#</th><th scope="col">State</th><th scope="col">Size</th><th scope="col">Last used</th><th scope="col">Blocked by</th></tr></thead>
      <tbody>${cache.eviction_queue.map((e, i) => html`<tr>
        <td>${i + 1}</td><td class="mono">${short(e.state_id)}</td><td>${bytes(e.size_bytes)}</td>
        <td><${Time} at=${e.last_used_at} /></td>
        <td>${e.blocked_by ? BLOCKERS[e.blocked_by] : html`<${Badge} kind="wait">evictable<//>`}</td></tr>`)}
      </tbody></table></div>`}
    ${cache.last_eviction ? html`<p class="muted">Last eviction <${Time} at=${cache.last_eviction.completed_at} />:
      ${cache.last_eviction.evicted_count} state(s), ${bytes(cache.last_eviction.freed_bytes)} freed (${cache.last_eviction.trigger}).</p>` : null}
  </section>`;
}

export function StatesPage({ api, org }) {
  const { data, error, loading, reload } = useLoad((signal) => loadStates(api, org, signal), [api, org]);
  const evictable = new Set((data?.cache.eviction_queue || []).filter((e) => !e.blocked_by).slice(0, 1).map((e) => e.state_id));
  return html`<h1>States</h1>
    <p class="lead">Every state your org built or was shared, each under the state it was built on.
      <button type="button" onClick=${reload}>Refresh</button></p>
    <${ErrorBox} error=${error} />
    ${loading && !data ? html`<${Loading} what="states" />` : null}
    ${data ? html`<div class="columns">
      <section aria-labelledby="tree-h" class="panel grow">
        <h2 id="tree-h">State tree</h2>
        ${data.states.length === 0 ? html`<p>No states yet: run a prepare (<code>sqlrs prepare:psql …</code>).</p>` : html`
        <ul class="state-tree" aria-labelledby="tree-h">
          ${tree(data.states).map((n) => html`<${StateNode} node=${n} running=${data.running} sharedWith=${data.sharedWith}
            evictable=${evictable} level=${1} />`)}
        </ul>`}
        ${data.more ? html`<p class="muted">Showing the first ${data.states.length} states.</p>` : null}
      </section>
      <${CachePressure} cache=${data.cache} />
    </div>` : null}`;
}
