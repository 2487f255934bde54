// Small shared pieces: the html tag, formatting, and components every page uses.
import { h } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import htm from "htm";

export const html = htm.bind(h);

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let value = n;
  while (value >= 1024 && i < units.length - 1) { value /= 1024; i++; }
  return `${value.toFixed(value >= 10 || i === 0 ? 0 : 1)} ${units[i]}`;
}

export function ago(iso) {
  if (!iso) return "—";
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  return seconds >= 0 ? `${span(seconds)} ago` : `in ${span(-seconds)}`;
}

export function span(seconds) {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(seconds < 36000 ? 1 : 0)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

export function short(id) {
  return id ? id.slice(0, 12) : "—";
}

/** A time shown relative, with the exact UTC time on hover and for screen readers. */
export function Time({ at }) {
  if (!at) return html`<span>—</span>`;
  return html`<time datetime=${at} title=${at}>${ago(at)}</time>`;
}

export function Badge({ kind, children }) {
  return html`<span class=${`badge badge-${kind}`}>${children}</span>`;
}

export function StatusBadge({ status }) {
  const kind = { succeeded: "ok", active: "ok", running: "busy", queued: "wait", failed: "bad",
    cancelled: "muted", expired: "muted", deleting: "wait" }[status] || "muted";
  return html`<${Badge} kind=${kind}>${status}<//>`;
}

export function ErrorBox({ error }) {
  if (!error) return null;
  return html`<div class="error" role="alert"><strong>${error.code || "error"}</strong>: ${error.message}</div>`;
}

/** Loads data with `load(signal)` whenever `deps` change; `reload()` asks again. */
export function useLoad(load, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const controller = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    load(controller.signal).then(
      (data) => !controller.signal.aborted && setState({ data, error: null, loading: false }),
      (error) => !controller.signal.aborted && setState({ data: null, error, loading: false }));
    return () => controller.abort();
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

export function Loading({ what }) {
  return html`<p class="muted" role="status">Loading ${what}…</p>`;
}

/** A DSN (its password masked on screen) or a secret: a copy button that says what it did. */
export function CopyField({ value, label, id, shown = value }) {
  const [copied, setCopied] = useState("");
  async function copy() {
    try {
      await navigator.clipboard.writeText(value);
    } catch {
      const scratch = document.createElement("textarea");  // plain-HTTP origins have no async clipboard
      scratch.value = value;
      document.body.append(scratch);
      scratch.select();
      document.execCommand("copy");
      scratch.remove();
    }
    setCopied("Copied");
    setTimeout(() => setCopied(""), 2000);
  }
  return html`<span class="copy">
    <label class="visually-hidden" for=${id}>${label}</label>
    <input id=${id} readonly value=${shown} class="mono" onFocus=${(e) => e.target.select()} />
    <button type="button" onClick=${copy} aria-label=${`Copy ${label}`}>Copy</button>
    <span role="status" class="muted">${copied}</span>
  </span>`;
}

/** A DSN with its password hidden, for the screen (the copy button copies the real one). */
export function masked(dsn) {
  return dsn.replace(/^([a-z]+:\/\/[^:@/]+:)[^@]*@/, "$1••••••@");
}

/** A modal dialog (native <dialog>: focus is trapped and Escape closes it). */
export function Dialog({ open, title, onClose, children }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return html`<dialog ref=${ref} aria-labelledby="dialog-title" onClose=${onClose}>
    <h2 id="dialog-title">${title}</h2>
    ${open ? children : null}
  </dialog>`;
}

export function Meter({ label, value, max, format = (v) => v }) {
  const unlimited = max === null || max === undefined;
  const ratio = unlimited || !max ? 0 : Math.min(1, value / max);
  const level = ratio >= 0.9 ? "bad" : ratio >= 0.7 ? "wait" : "ok";
  return html`<div class="meter">
    <div class="meter-label"><span>${label}</span><span>${format(value)} of ${unlimited ? "no limit" : format(max)}</span></div>
    <div class=${`meter-bar meter-${level}`} role="meter" aria-label=${label} aria-valuemin="0"
      aria-valuemax=${unlimited ? 0 : max} aria-valuenow=${value}>
      <span style=${{ width: `${(ratio * 100).toFixed(1)}%` }}></span>
    </div>
  </div>`;
}
