// Jobs: a filtered list, newest first; a job's page follows its event stream live, showing each
// step as cached or built as it happens, its log and artifacts, and a cancel button.
import { useEffect, useRef, useState } from "preact/hooks";
import { Badge, ErrorBox, Loading, StatusBadge, Time, html, short, span, useLoad } from "../ui.mjs";

const STATUSES = ["", "queued", "running", "succeeded", "failed", "cancelled"];
const DONE = new Set(["succeeded", "failed", "cancelled"]);

function duration(job) {
  if (!job.started_at) return "—";
  const end = job.finished_at ? Date.parse(job.finished_at) : Date.now();
  return span(Math.max(0, Math.round((end - Date.parse(job.started_at)) / 1000)));
}

export function JobsPage({ api }) {
  const [status, setStatus] = useState("");
  const [prefix, setPrefix] = useState("");
  const [rows, setRows] = useState([]);
  const [next, setNext] = useState(null);
  const valid = /^[0-9a-fA-F]{0,32}$/.test(prefix);
  const { data, error, loading } = useLoad(
    (signal) => valid ? api.page("/v1/prepare-jobs", { order: "desc", status, job: prefix.toLowerCase(), limit: 50 }, signal)
      : Promise.resolve({ rows: [], next: null }), [api, status, prefix]);
  useEffect(() => { if (data) { setRows(data.rows); setNext(data.next); } }, [data]);
  const [moreError, setMoreError] = useState(null);
  async function more() {
    try {
      const page = await api.page("/v1/prepare-jobs", { order: "desc", status, job: prefix.toLowerCase(), limit: 50, cursor: next });
      setRows([...rows, ...page.rows]);
      setNext(page.next);
    } catch (e) { setMoreError(e); }
  }
  return html`<h1>Jobs</h1>
    <form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
      <label for="job-status">Status</label>
      <select id="job-status" value=${status} onChange=${(e) => setStatus(e.target.value)}>
        ${STATUSES.map((s) => html`<option value=${s}>${s || "any"}</option>`)}
      </select>
      <label for="job-prefix">Job id starts with</label>
      <input id="job-prefix" class="mono" value=${prefix} size="14" aria-invalid=${!valid}
        aria-describedby="job-prefix-help" onInput=${(e) => setPrefix(e.target.value.trim())} />
      <span id="job-prefix-help" class=${valid ? "visually-hidden" : "error-text"}>hexadecimal digits only</span>
    </form>
    <${ErrorBox} error=${error || moreError} />
    ${loading && !rows.length ? html`<${Loading} what="jobs" />` : null}
    <div class="table-wrap"><table class="jobs cards">
      <caption class="visually-hidden">Prepare jobs, newest first</caption>
      <thead><tr><th scope="col">Job</th><th scope="col">Status</th><th scope="col">Kind</th><th scope="col">Submitted by</th>
        <th scope="col">Created</th><th scope="col">Took</th></tr></thead>
      <tbody>${rows.map((j) => html`<tr>
        <td><a class="mono" href=${"#/jobs/" + j.job_id}>${short(j.job_id)}</a>${j.plan_only ? html` <${Badge} kind="muted">plan<//>` : null}</td>
        <td data-label="Status"><${StatusBadge} status=${j.status} /></td><td data-label="Kind">${j.prepare_kind}</td>
        <td data-label="Submitted by" class="subject-cell">${j.submitted_by || "—"}</td><td data-label="Created"><${Time} at=${j.created_at} /></td><td data-label="Took">${duration(j)}</td></tr>`)}
      </tbody></table></div>
    ${!loading && rows.length === 0 ? html`<p>No jobs match.</p>` : null}
    ${next && !loading ? html`<button type="button" onClick=${more}>Load older jobs</button>` : null}`;
}

function StepState({ task }) {
  if (task.status === "running") return html`<${Badge} kind="busy">running<//>`;
  if (task.status === "succeeded" && task.cached === true) return html`<${Badge} kind="ok">cached<//>`;
  if (task.status === "succeeded" && task.cached === false) return html`<${Badge} kind="built">built<//>`;
  return html`<${StatusBadge} status=${task.status} />`;
}

/** The job as the stream tells it: each event re-reads the job (its tasks), at most every 150 ms. */
function useLiveJob(api, jobId) {
  const [job, setJob] = useState(null);
  const [log, setLog] = useState([]);
  const [error, setError] = useState(null);
  const [live, setLive] = useState(false);
  useEffect(() => {
    const controller = new AbortController();
    let timer = null;
    const refresh = () => api.get(`/v1/prepare-jobs/${encodeURIComponent(jobId)}`, null, controller.signal)
      .then(setJob, (e) => !controller.signal.aborted && setError(e));
    const soon = () => { if (!timer) timer = setTimeout(() => { timer = null; refresh(); }, 150); };
    setLog([]);
    refresh().then(() => {
      setLive(true);
      return api.events(jobId, (event) => {
        if (event.message) setLog((lines) => [...lines, event]);
        if (event.type === "status" || event.type === "task" || event.type === "result" || event.type === "error") soon();
      }, controller.signal);
    }).catch((e) => { if (!controller.signal.aborted) setError(e); })
      .finally(() => { if (!controller.signal.aborted) { setLive(false); refresh(); } });
    return () => { controller.abort(); clearTimeout(timer); };
  }, [api, jobId]);
  return { job, log, error, live, setJob };
}

function Artifacts({ api, jobId, done }) {
  const job = encodeURIComponent(jobId);
  const { data, error } = useLoad((signal) => done ? api.get(`/v1/prepare-jobs/${job}/artifacts`, null, signal)
    : Promise.resolve(null), [api, jobId, done]);
  const [shown, setShown] = useState(null);
  const [text, setText] = useState("");
  async function show(name) {
    setShown(name);
    setText("Loading…");
    try {
      setText(await api.text(`/v1/prepare-jobs/${job}/artifacts/${name.split("/").map(encodeURIComponent).join("/")}`));
    } catch (e) { setText(`${e.code}: ${e.message}`); }
  }
  if (!done) return html`<p class="muted">Artifacts appear when the job ends.</p>`;
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!data) return html`<${Loading} what="artifacts" />`;
  if (!data.length) return html`<p class="muted">No artifacts (the object store may be off).</p>`;
  return html`<ul class="artifacts">${data.map((a) => html`<li>
      <button type="button" class="link" aria-pressed=${shown === a.name} onClick=${() => show(a.name)}>${a.name}</button>
      <span class="muted"> ${a.size_bytes} bytes</span></li>`)}</ul>
    ${shown ? html`<h3>${shown}</h3><pre class="log" tabindex="0" aria-label=${`Contents of ${shown}`}>${text}</pre>` : null}`;
}

export function JobPage({ api, me, jobId }) {
  const { job, log, error, live, setJob } = useLiveJob(api, jobId);
  const [actionError, setActionError] = useState(null);
  const logBox = useRef(null);
  useEffect(() => { if (logBox.current) logBox.current.scrollTop = logBox.current.scrollHeight; }, [log.length]);
  async function cancel() {
    try {
      await api.post(`/v1/prepare-jobs/${encodeURIComponent(jobId)}/cancel`, {});
      setJob(await api.get(`/v1/prepare-jobs/${encodeURIComponent(jobId)}`));
    } catch (e) { setActionError(e); }
  }
  const member = me.global_admin || me.role !== "viewer";
  return html`<p><a href="#/jobs">← Jobs</a></p>
    <h1>Job <span class="mono">${short(jobId)}</span></h1>
    <${ErrorBox} error=${error || actionError} />
    ${!job && !error ? html`<${Loading} what="the job" />` : null}
    ${job ? html`<section class="panel" aria-labelledby="job-h">
      <h2 id="job-h" class="visually-hidden">Summary</h2>
      <dl class="facts-list">
        <dt>Status</dt><dd><span id="job-state" aria-live="polite"><${StatusBadge} status=${job.status} /></span>
          ${live ? html` <span class="muted">following live</span>` : null}</dd>
        <dt>Kind</dt><dd>${job.prepare_kind}${job.plan_only ? " (plan only)" : ""}</dd>
        <dt>Image</dt><dd class="mono">${job.resolved_image_id || job.image_id}</dd>
        <dt>Submitted</dt><dd><${Time} at=${job.created_at} /> by ${job.submitted_by || "—"}</dd>
        <dt>Took</dt><dd>${duration(job)}</dd>
        ${job.result ? html`<dt>Result</dt><dd>state <span class="mono">${short(job.result.state_id)}</span>,
          instance <a class="mono" href="#/instances">${short(job.result.instance_id)}</a></dd>` : null}
      </dl>
      ${member && !DONE.has(job.status) ? html`<button type="button" class="danger" onClick=${cancel}>Cancel job</button>` : null}
      ${job.error ? html`<div class="error" role="alert"><strong>${job.error.code}</strong>: <pre class="inline">${job.error.message}</pre></div>` : null}
    </section>
    <section aria-labelledby="steps-h">
      <h2 id="steps-h">Steps</h2>
      <div class="table-wrap"><table class="steps" aria-describedby="steps-h">
        <thead><tr><th scope="col">Task</th><th scope="col">What</th><th scope="col">Outcome</th><th scope="col">State</th></tr></thead>
        <tbody>${job.tasks.map((t) => html`<tr data-task-id=${t.task_id}>
          <td class="mono">${t.task_id}</td><td>${t.summary || t.type}</td>
          <td class="outcome"><${StepState} task=${t} /></td>
          <td class="mono">${short(t.output_state_id)}</td></tr>`)}
        </tbody></table></div>
    </section>
    <section aria-labelledby="log-h">
      <h2 id="log-h">Log</h2>
      <ol class="log" ref=${logBox} aria-live="polite" tabindex="0" aria-label="Job log">
        ${log.map((e) => html`<li><span class="muted">${e.ts?.slice(11, 23)}</span> ${e.task_id ? html`<span class="mono">[${e.task_id}]</span> ` : null}${e.message}</li>`)}
      </ol>
    </section>
    <section aria-labelledby="artifacts-h">
      <h2 id="artifacts-h">Artifacts</h2>
      <${Artifacts} api=${api} jobId=${jobId} done=${DONE.has(job.status)} />
    </section>` : null}`;
}
