// The MPR gateway fleet dashboard: GET /admin/status every 2 s and on every event of
// GET /admin/events (read with fetch(): EventSource cannot send the Authorization header).
// The admin key stays in sessionStorage (this tab only). Everything is drawn with textContent.
"use strict";

(() => {
  const KEY = "mpr-admin-key";
  const POLL_MS = 2000;
  const MAX_EVENTS = 100;
  const $ = (id) => document.getElementById(id);

  let key = sessionStorage.getItem(KEY);
  let pollTimer = null;
  let streamAbort = null;
  let streamOpen = false;
  let statusOk = false;
  let refreshQueued = false;
  const events = [];
  const seen = new Set();

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (name === "class") node.className = value;
      else if (name === "style") node.style.cssText = value; // CSSOM: allowed by the page's CSP
      else node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const ms = (v) => (v === null || v === undefined ? "–" : v < 10 ? v.toFixed(1) : Math.round(v).toString());
  const pct = (v) => (v === null || v === undefined ? "–" : `${Math.round(v * 100)}%`);
  const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour12: false });

  function duration(s) {
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
    return m ? `${m}m ${String(s % 60).padStart(2, "0")}s` : `${s}s`;
  }

  function setConnection() {
    const state = !statusOk ? "offline" : streamOpen ? "live" : "polling";
    const pill = $("connection");
    pill.dataset.connection = state;
    pill.textContent = state;
  }

  function showError(text) {
    const box = $("error");
    box.hidden = !text;
    box.textContent = text || "";
  }

  // -- status -----------------------------------------------------------------------------
  async function refresh() {
    if (!key) return;
    let response;
    try {
      response = await fetch("/admin/status", { headers: { authorization: `Bearer ${key}` }, cache: "no-store" });
    } catch (err) {
      statusOk = false;
      setConnection();
      showError("The gateway does not answer; retrying.");
      return;
    }
    if (response.status === 401 || response.status === 403) {
      let message = `The gateway refused the key (${response.status}).`;
      try { message = `${message} ${(await response.json()).error.message}`; } catch (_) { /* not JSON */ }
      signOut(message);
      return;
    }
    if (!response.ok) {
      statusOk = false;
      setConnection();
      showError(`GET /admin/status answered ${response.status}; retrying.`);
      return;
    }
    const status = await response.json();
    statusOk = true;
    showError("");
    setConnection();
    render(status);
  }

  function queueRefresh() {
    if (refreshQueued) return;
    refreshQueued = true;
    setTimeout(() => { refreshQueued = false; refresh(); }, 50);
  }

  // -- rendering ----------------------------------------------------------------------------
  function render(s) {
    $("about").hidden = false;
    $("about-version").textContent = s.version;
    $("about-pid").textContent = s.pid;
    $("about-workers").textContent = s.workers;
    $("about-uptime").textContent = duration(s.uptime_s);
    $("about-config").textContent = s.config.hash;
    document.body.dataset.draining = String(s.draining);
    renderSummary(s);
    renderFleet(s);
    renderStages(s);
    renderOutcomes(s.refinement);
    renderRecent(s.refinement.recent);
  }

  function figure(label, value, hook) {
    return el("div", { class: "figure", "data-figure": hook }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
  }

  function renderSummary(s) {
    const all = [...s.targets.flatMap((t) => t.endpoints), ...s.stages.flatMap((st) => st.endpoints)];
    const up = all.filter((e) => e.up).length;
    const inFlight = all.reduce((n, e) => n + e.in_flight, 0);
    const w = s.refinement.window;
    const cache = s.cache.enabled ? pct(s.cache.hit_rate) : "off";
    const limited = s.rate_limit.enabled ? String(s.rate_limit.answered_429) : "off";
    $("summary").replaceChildren(
      figure("endpoints up", `${up} / ${all.length}`, "up"),
      figure("upstream in flight", inFlight, "in-flight"),
      figure("refinements (5 min)", w.total, "refinements"),
      figure("cache hit rate", cache, "cache"),
      figure("answered 429", limited, "rate-limit"),
      figure("shared state", `${s.state.kind}${s.state.reachable === false ? " (down)" : ""}`, "state"),
    );
  }

  function endpointRow(label, detail, e) {
    const nums = el("div", { class: "nums" },
      el("div", {}, `p50 ${ms(e.latency_ms.p50)} · p99 ${ms(e.latency_ms.p99)} ms`),
      el("div", { class: "muted" }, `in flight ${e.in_flight} · ${e.latency_ms.samples} calls`));
    return el("div", {
      class: "endpoint", "data-endpoint": e.url, "data-up": String(e.up), "data-cooling": String(e.cooling_down), "data-pool": detail.pool,
    },
      el("span", { class: "dot", title: e.up ? "up" : "down" }),
      el("div", { class: "who" }, label, el("small", {}, detail.note)),
      nums,
      el("div", { class: "url" }, e.url),
      e.last_error ? el("div", { class: "err" }, [
        e.last_error,
        e.consecutive_failures ? `${e.consecutive_failures} failures` : null,
        e.cooling_down ? "cooling down" : null,
      ].filter(Boolean).join(" · ")) : null,
    );
  }

  function builtinRow(st) {
    const a = st.acceptance.since_start;
    return el("div", { class: "endpoint", "data-endpoint": "builtin", "data-up": "true", "data-cooling": "false", "data-pool": `builtin:${st.role}` },
      el("span", { class: "dot", title: "up" }),
      el("div", { class: "who" }, st.role, el("small", {}, "stage · built-in")),
      el("div", { class: "nums" }, el("div", {}, "in the gateway process"),
        el("div", { class: "muted" }, `${a.accepted + a.rejected + a.failed} verdicts`)),
      el("div", { class: "url" }, "built-in"),
    );
  }

  function renderFleet(s) {
    const groups = new Map();
    const add = (label, pool, note, e) => {
      const group = `${e.node}\u0000${e.tier || ""}`;
      if (!groups.has(group)) groups.set(group, { node: e.node, tier: e.tier, rows: [] });
      groups.get(group).rows.push(endpointRow(label, { pool, note }, e));
    };
    for (const t of s.targets) for (const e of t.endpoints) add(t.name, t.pool, `target · ${e.source}`, e);
    for (const st of s.stages) for (const e of st.endpoints) add(st.role, `adapter:${st.role}`, `stage · ${e.source}`, e);
    const builtin = s.stages.filter((st) => st.kind === "builtin");
    if (builtin.length) groups.set("\u0001builtin", { node: "this gateway", tier: null, rows: builtin.map(builtinRow) });
    const cards = [...groups.values()]
      .sort((a, b) => (a.node + (a.tier || "")).localeCompare(b.node + (b.tier || "")))
      .map((g) => el("div", { class: "card node", "data-node": g.node, "data-tier": g.tier || "" },
        el("h3", {}, g.node, el("span", { class: "tier", "data-tier": g.tier || "" }, g.tier || "no tier")),
        ...g.rows));
    cards.push(...s.targets.filter((t) => t.routing && t.routing.placed).map(routingCard));
    $("fleet").replaceChildren(...(cards.length ? cards : [el("p", { class: "empty" }, "No endpoints.")]));
  }

  function routingCard(t) {
    // cache-aware routing: where the target's requests landed, and the in-flight spread now
    const p = t.routing.placed;
    const placed = p.hit + p.spill + p.moved + p.none;
    const load = t.endpoints.map((e) => e.in_flight);
    const total = load.reduce((a, b) => a + b, 0);
    return el("div", { class: "card node", "data-routing": t.name },
      el("h3", {}, `${t.name} · routing`, el("span", { class: "tier" }, "affinity")),
      el("div", { class: "nums" },
        el("div", {}, `home replica ${pct(placed ? p.hit / placed : 0)} of ${placed}`),
        el("div", { class: "muted" }, `spilled ${p.spill} · moved ${p.moved} · no key ${p.none}`),
        el("div", { class: "muted" }, `in flight ${load.join(" / ")} (total ${total}; no replica above ${1 + t.routing.epsilon}× the mean)`)),
    );
  }

  function rateCell(r) {
    const meter = el("span", { class: "meter" }, el("span", { style: `width:${Math.round((r.acceptance_rate || 0) * 100)}%` }));
    return el("td", {}, el("span", { class: "rate" }, pct(r.acceptance_rate)), meter);
  }

  function canaryNote(c) {
    // a candidate version on a share of the calls: its acceptance next to the stable one's, and its state
    const a = c.arms;
    const text = `canary ${c.candidate} · ${pct(c.share)} · ${c.state.replace("_", " ")} · accepted ${pct(a.candidate.acceptance_rate)} vs ${pct(a.stable.acceptance_rate)}`;
    return el("small", { class: "canary", "data-canary": c.state, title: c.reason || "" }, text);
  }

  function renderStages(s) {
    const rows = s.stages.map((st) => {
      const a = st.acceptance;
      const up = st.kind === "builtin" ? "built-in" : `${st.endpoints.filter((e) => e.up).length} / ${st.endpoints.length}`;
      const who = st.canary ? el("td", {}, st.role, canaryNote(st.canary)) : el("td", {}, st.role);
      return el("tr", { "data-stage": st.role },
        who, el("td", {}, st.kind), el("td", {}, up),
        rateCell(a.window),
        el("td", { class: "num" }, `${pct(a.since_start.acceptance_rate)} of ${a.since_start.accepted + a.since_start.rejected + a.since_start.failed}`),
        el("td", { class: "num" }, a.since_start.rejected), el("td", { class: "num" }, a.since_start.failed));
    });
    $("stages").tBodies[0].replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No refinement stage configured."))]));
  }

  function stack(title, counts, total) {
    const parts = ["applied", "rejected", "skipped", "fallback", "failed"];
    const bar = el("div", { class: "stack" }, ...parts.filter((p) => counts[p]).map((p) =>
      el("span", { "data-result": p, style: `width:${(100 * counts[p]) / total}%`, title: `${p}: ${counts[p]}` })));
    const legend = el("div", { class: "legend" }, ...parts.map((p) =>
      el("span", { "data-count": p }, el("i", { "data-result": p }), `${p} ${counts[p]}`)));
    return [el("h4", {}, `${title} · ${total}`), bar, legend];
  }

  function renderOutcomes(r) {
    $("outcomes").replaceChildren(
      ...stack("last 5 minutes", r.window.results, r.window.total),
      ...stack("since start", r.since_start.results, r.since_start.total),
    );
  }

  function renderRecent(recent) {
    const rows = recent.slice(0, 25).map((o) => el("tr", { "data-result": o.result, "data-status": String(o.status ?? "") },
      el("td", { class: "mono" }, clock(o.at)), el("td", {}, o.model),
      el("td", { class: "mono status", title: o.result }, o.status == null ? (o.mode === "shadow" ? "shadow" : "…") : String(o.status)),
      el("td", { class: "mono" }, o.refinement), el("td", { class: "num" }, ms(o.elapsed_ms))));
    $("recent").tBodies[0].replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 5, class: "empty" }, "No refinement yet."))]));
  }

  function describe(ev) {
    const d = ev.data || {};
    if (ev.kind.startsWith("endpoint.")) return `${d.pool} ${d.url}${d.error && ev.kind === "endpoint.down" ? ` (${d.error})` : ""}`;
    if (ev.kind === "config.reloaded") return `${d.previous} → ${d.hash} (${d.trigger})`;
    if (ev.kind.startsWith("worker.")) return `${d.role || ""} ${d.url || ""}`.trim();
    return JSON.stringify(d);
  }

  function renderEvents() {
    const items = events.slice(0, MAX_EVENTS).map((ev) => el("li", { "data-kind": ev.kind, "data-seq": ev.seq },
      el("span", { class: "muted" }, clock(ev.at)), el("span", { class: "kind" }, ev.kind), el("span", { class: "what" }, describe(ev))));
    $("events").replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, "No events yet.")]));
  }

  function addEvent(ev) {
    if (seen.has(ev.seq)) return;
    seen.add(ev.seq);
    events.unshift(ev);
    events.sort((a, b) => b.seq - a.seq);
    events.length = Math.min(events.length, MAX_EVENTS);
    renderEvents();
  }

  // -- events -------------------------------------------------------------------------------
  async function stream() {
    let retryMs = 2000;
    while (key && streamAbort && !streamAbort.signal.aborted) {
      const abort = streamAbort;
      try {
        const response = await fetch(`/admin/events?replay=${MAX_EVENTS}`, {
          headers: { authorization: `Bearer ${key}`, accept: "text/event-stream" }, signal: abort.signal, cache: "no-store",
        });
        if (response.ok && response.body) {
          streamOpen = true;
          setConnection();
          const reader = response.body.getReader();
          const decoder = new TextDecoder();
          let buffer = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += decoder.decode(value, { stream: true });
            let cut;
            while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
              const frame = buffer.slice(0, cut);
              buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
              const fields = { data: [] };
              for (const line of frame.split(/\r?\n/)) {
                if (!line || line.startsWith(":")) continue;
                const at = line.indexOf(":");
                const name = at < 0 ? line : line.slice(0, at);
                const val = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
                if (name === "data") fields.data.push(val);
                else fields[name] = val;
              }
              if (fields.retry && /^\d+$/.test(fields.retry)) retryMs = Number(fields.retry);
              if (fields.data.length) {
                try { addEvent(JSON.parse(fields.data.join("\n"))); } catch (_) { /* not ours */ }
                queueRefresh();
              }
            }
          }
        }
      } catch (_) {
        /* network error or aborted: reconnect below */
      }
      streamOpen = false;
      setConnection();
      if (abort.signal.aborted) return;
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  }

  // -- session ------------------------------------------------------------------------------
  function connect() {
    $("login").hidden = true;
    $("board").hidden = false;
    $("sign-out").hidden = false;
    renderEvents();
    refresh();
    clearInterval(pollTimer);
    pollTimer = setInterval(refresh, POLL_MS);
    if (streamAbort) streamAbort.abort();
    streamAbort = new AbortController();
    stream();
  }

  function signOut(message) {
    key = null;
    sessionStorage.removeItem(KEY);
    clearInterval(pollTimer);
    if (streamAbort) streamAbort.abort();
    streamAbort = null;
    statusOk = false;
    streamOpen = false;
    setConnection();
    $("board").hidden = true;
    $("about").hidden = true;
    $("sign-out").hidden = true;
    $("login").hidden = false;
    showError(message || "");
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("admin-key").value.trim();
      if (!value) return;
      key = value;
      sessionStorage.setItem(KEY, key);
      $("admin-key").value = "";
      showError("");
      connect();
    });
    $("sign-out").addEventListener("click", () => signOut(""));
    if (key) connect();
  });
})();
