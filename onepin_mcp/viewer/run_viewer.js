"use strict";
// The app side of MCP Apps (ext-apps 2026-01-26) for one OnePin run. The host frames this page
// in a sandboxed iframe; everything it learns comes over window.parent.postMessage as JSON-RPC:
// the tool call that opened it (tool-input, tool-result) and the answers to the tools/call
// requests it makes through the host. It never touches the network itself (CSP connect-src
// 'none'). Every string from OnePin is untrusted: the DOM is built with textContent only.
(() => {
  const CONFIG = __CONFIG__;
  const root = document.documentElement;
  const $ = (id) => document.getElementById(id);

  // ---- JSON-RPC over postMessage ---------------------------------------------------------

  let nextId = 1;
  const pending = new Map();

  function post(message) {
    // The frame is sandboxed without allow-same-origin, so it cannot know the host's origin;
    // nothing secret is ever sent.
    window.parent.postMessage(message, "*");
  }

  function request(method, params) {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`${method}: no answer from the host`));
      }, CONFIG.requestTimeoutMs);
      pending.set(id, { resolve, reject, timer });
      post({ jsonrpc: "2.0", id, method, params });
    });
  }

  function notify(method, params) {
    post({ jsonrpc: "2.0", method, params: params || {} });
  }

  function answer(id, result) {
    post({ jsonrpc: "2.0", id, result });
  }

  function refuse(id, code, message) {
    post({ jsonrpc: "2.0", id, error: { code, message } });
  }

  window.addEventListener("message", (event) => {
    if (event.source !== window.parent) return;
    const message = event.data;
    if (!message || typeof message !== "object" || message.jsonrpc !== "2.0") return;
    const hasId = typeof message.id === "number" || typeof message.id === "string";
    if (typeof message.method === "string") {
      if (hasId) onHostRequest(message);
      else onHostNotification(message.method, message.params || {});
      return;
    }
    if (!hasId || !pending.has(message.id)) return;
    const call = pending.get(message.id);
    pending.delete(message.id);
    clearTimeout(call.timer);
    if (message.error) call.reject(new Error(String(message.error.message || "host error")));
    else call.resolve(message.result);
  });

  function onHostRequest(message) {
    if (message.method === "ui/resource-teardown") {
      stop("the host closed the view");
      answer(message.id, {});
    } else if (message.method === "ping") {
      answer(message.id, {});
    } else {
      refuse(message.id, -32601, `method not found: ${message.method}`);
    }
  }

  function onHostNotification(method, params) {
    if (method === "ui/notifications/tool-input") onToolInput(params.arguments || {});
    else if (method === "ui/notifications/tool-result") onToolResult(params);
    else if (method === "ui/notifications/tool-cancelled") onToolCancelled(params.reason);
    else if (method === "ui/notifications/host-context-changed") applyHostContext(params);
  }

  // ---- host context: theme and style variables ------------------------------------------

  let hostCapabilities = {};

  function applyHostContext(context) {
    if (!context || typeof context !== "object") return;
    if (context.theme === "dark" || context.theme === "light") root.dataset.theme = context.theme;
    const variables = context.styles && context.styles.variables;
    if (variables && typeof variables === "object") {
      for (const [name, value] of Object.entries(variables)) {
        // CSSOM, not a style attribute: allowed by the page's CSP, and only custom properties.
        if (/^--[a-z0-9-]+$/.test(name) && typeof value === "string") {
          root.style.setProperty(name, value);
        }
      }
    }
  }

  // ---- tool calls through the host -------------------------------------------------------

  function resultText(result) {
    const blocks = (result && Array.isArray(result.content)) ? result.content : [];
    return blocks.filter((b) => b && b.type === "text").map((b) => String(b.text)).join(" ");
  }

  async function callTool(name, args) {
    const result = await request("tools/call", { name, arguments: args });
    if (!result || result.isError) {
      throw new Error(resultText(result) || `${name} failed`);
    }
    return result;
  }

  async function structured(name, args) {
    const result = await callTool(name, args);
    const content = result.structuredContent;
    if (!content || typeof content !== "object") throw new Error(`${name} returned no data`);
    return content;
  }

  // ---- which run -------------------------------------------------------------------------

  const run = {
    workflowId: null,
    runId: null,
    status: null,
    expectedCredits: null,
    started: false,
    stopped: false,
    timer: null,
    intervalS: CONFIG.poll.first_s,
    lastKey: null,
  };

  const isId = (value) => typeof value === "string" && value.length > 0 && value.length <= 100;

  function ids() {
    return { workflow_id: run.workflowId, run_id: run.runId };
  }

  function onToolInput(args) {
    if (!run.workflowId && isId(args.workflow_id)) run.workflowId = args.workflow_id;
    if (!run.runId && isId(args.run_id)) run.runId = args.run_id;
    if (run.workflowId && run.runId) begin();
  }

  function onToolResult(result) {
    if (!result || typeof result !== "object") return;
    if (result.isError) {
      showError(resultText(result) || "The tool call failed.");
      setStatus("error");
      return;
    }
    const content = (result.structuredContent && typeof result.structuredContent === "object")
      ? result.structuredContent : {};
    // get_run_results names both ids; start_run names the workflow and the new run's `id`;
    // get_run_status and wait_for_run name neither (their arguments, in tool-input, do).
    if (isId(content.workflow_id)) run.workflowId = content.workflow_id;
    if (isId(content.run_id)) run.runId = content.run_id;
    else if (isId(content.id) && isId(content.workflow_id)) run.runId = content.id;
    if (typeof content.expected_credits === "number") run.expectedCredits = content.expected_credits;
    if (content.progress && typeof content.status === "string") renderStatus(content);
    if (run.workflowId && run.runId) begin();
    else showNotice("This result names no run to show.");
  }

  function onToolCancelled(reason) {
    if (!run.started) {
      setStatus("cancelled");
      showNotice(`The tool call was cancelled${reason ? `: ${String(reason)}` : ""}.`);
    }
  }

  // ---- refreshing ------------------------------------------------------------------------

  function progressKey(status) {
    const p = status.progress || {};
    return [status.status, p.nodes, p.steps, status.pause_reason || ""].join("|");
  }

  async function begin() {
    if (run.started || run.stopped) return;
    run.started = true;
    $("ids").textContent = `workflow ${run.workflowId} · run ${run.runId}`;
    root.dataset.refresh = "active";
    loadRecord();
    await tick();
  }

  // One poll: the cheap status read always, the step log when the run moved. Paced like
  // wait_for_run's polling (watch.PollSchedule): first_s after the first read, min_s after a
  // change, then longer by `backoff` on every quiet poll, never more than max_s.
  async function tick() {
    run.timer = null;
    if (run.stopped) return;
    let changed = false;
    try {
      const status = await structured("get_run_status", ids());
      if (run.stopped) return;
      const key = progressKey(status);
      changed = run.lastKey !== null && key !== run.lastKey;
      const first = run.lastKey === null;
      run.lastKey = key;
      renderStatus(status);
      hideNotice();
      if (first || changed || status.is_terminal) await loadSteps();
      if (status.is_terminal) {
        finish();
        return;
      }
      schedule(first ? CONFIG.poll.first_s : nextInterval(changed));
    } catch (err) {
      if (run.stopped) return;
      showNotice(`Could not refresh: ${err.message}. Trying again.`);
      schedule(nextInterval(false));
    }
  }

  function nextInterval(changed) {
    const p = CONFIG.poll;
    if (changed) return p.min_s;
    return Math.min(p.max_s, Math.max(p.min_s, run.intervalS * p.backoff));
  }

  function schedule(seconds) {
    if (run.stopped) return;
    run.intervalS = seconds;
    root.dataset.nextRefreshMs = String(Math.round(seconds * 1000));
    run.timer = setTimeout(tick, seconds * 1000);
  }

  function stop(why) {
    run.stopped = true;
    if (run.timer !== null) clearTimeout(run.timer);
    run.timer = null;
    root.dataset.refresh = "stopped";
    delete root.dataset.nextRefreshMs;
    if (why) root.dataset.stoppedBecause = why;
  }

  function finish() {
    stop("the run ended");
    loadRecord();
    loadResults();
    loadData();
  }

  async function loadSteps() {
    try {
      renderSteps(await structured("get_run_steps", ids()));
    } catch (err) {
      renderEmpty($("steps"), `Steps unavailable: ${err.message}`, "li");
    }
  }

  async function loadRecord() {
    try {
      renderRecord(await structured("get_run", ids()));
    } catch (err) {
      // get_run may be switched off on this server; the facts shown so far stand.
    }
  }

  async function loadResults() {
    try {
      renderResults(await structured("get_run_results", { ...ids(), view: "overview" }));
    } catch (err) {
      renderEmptyTable($("validators"), `Scores unavailable: ${err.message}`);
    }
  }

  async function loadData() {
    const rows = [];
    try {
      let offset = 0;
      for (let page = 0; page < CONFIG.dataMaxPages && offset !== null; page++) {
        const data = await structured("get_run_data", { ...ids(), offset, limit: CONFIG.dataPageLimit });
        rows.push(...(Array.isArray(data.rows) ? data.rows : []));
        offset = typeof data.next_offset === "number" ? data.next_offset : null;
      }
      renderLines(rows, offset !== null);
    } catch (err) {
      renderEmpty($("lines"), `Lines unavailable: ${err.message}`);
    }
  }

  // ---- rendering (textContent only) ------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function renderEmpty(container, message, tag) {
    container.replaceChildren(el(tag || "p", "empty", message));
  }

  function renderEmptyTable(table, message) {
    const row = el("tr");
    row.append(el("td", "empty", message));
    table.replaceChildren(row);
  }

  function setStatus(status) {
    const badge = $("status");
    badge.textContent = status;
    badge.dataset.status = status;
    root.dataset.status = status;
  }

  function showNotice(text) {
    const notice = $("notice");
    notice.textContent = text;
    notice.hidden = false;
  }

  function hideNotice() {
    $("notice").hidden = true;
  }

  function showError(text) {
    const error = $("error");
    error.textContent = text;
    error.hidden = !text;
  }

  function fraction(text) {
    const match = /^(\d+)\/(\d+)$/.exec(String(text || ""));
    return match ? [Number(match[1]), Number(match[2])] : null;
  }

  function setBar(name, text) {
    const bar = $(`${name}-progress`);
    const counts = fraction(text);
    if (!counts) {
      bar.removeAttribute("value");
      $(`${name}-text`).textContent = "–";
      return;
    }
    const [done, total] = counts;
    bar.max = Math.max(total, 1);
    bar.value = Math.min(done, bar.max);
    $(`${name}-text`).textContent = `${done}/${total}`;
  }

  const facts = new Map();

  function setFact(label, value) {
    if (value === null || value === undefined || value === "") facts.delete(label);
    else facts.set(label, String(value));
    const list = $("facts");
    list.replaceChildren(...[...facts].map(([name, text]) => {
      const item = el("div");
      item.append(el("dt", null, name), el("dd", null, text));
      return item;
    }));
  }

  function renderStatus(status) {
    run.status = status;
    setStatus(String(status.status));
    if (typeof status.run_number === "number") $("title").textContent = `OnePin run #${status.run_number}`;
    const progress = status.progress || {};
    setBar("nodes", progress.nodes);
    setBar("steps", progress.steps);
    showError(status.error ? String(status.error) : status.pause_reason ? `Paused: ${status.pause_reason}` : "");
    if (!facts.has("Credits") && run.expectedCredits !== null) {
      setFact("Expected credits", run.expectedCredits);
    }
  }

  function renderRecord(record) {
    if (typeof record.credits === "number") {
      facts.delete("Expected credits");
      setFact("Credits", record.credits);
    }
    if (typeof record.credits_absorbed === "number" && record.credits_absorbed > 0) {
      setFact("Absorbed", record.credits_absorbed);
    }
    if (typeof record.duration_s === "number") setFact("Duration", `${record.duration_s} s`);
  }

  function renderSteps(view) {
    const steps = Array.isArray(view.steps) ? view.steps : [];
    const list = $("steps");
    if (!steps.length) {
      renderEmpty(list, "No steps yet.", "li");
      return;
    }
    list.replaceChildren(...steps.map((step) => {
      const item = el("li", step.status === "failed" ? "step failed" : "step");
      item.dataset.status = String(step.status);
      const head = el("div", "step-head");
      head.append(el("span", "step-name", step.name || step.node_id));
      const meta = [step.node_type, step.status];
      if (typeof step.iteration === "number" && step.iteration > 0) meta.push(`retry ${step.iteration}`);
      if (typeof step.duration_s === "number") meta.push(`${step.duration_s} s`);
      if (Array.isArray(step.locales) && step.locales.length) meta.push(step.locales.join(", "));
      head.append(el("span", "step-meta", meta.filter(Boolean).join(" · ")));
      item.append(head);
      if (step.error) item.append(el("p", "reason", step.error));
      return item;
    }));
  }

  function renderResults(view) {
    const overview = view.overview || {};
    for (const metric of Array.isArray(overview.metrics) ? overview.metrics : []) {
      if (metric && metric.label && metric.value !== undefined) setFact(metric.label, metric.value);
    }
    const validators = Array.isArray(overview.validators) ? overview.validators : [];
    const table = $("validators");
    if (!validators.length) {
      renderEmptyTable(table, "No validators in this run.");
      return;
    }
    const head = el("tr");
    for (const name of ["validator", "avg score", "pass rate", "passed", "failed", "retries"]) {
      head.append(el("th", null, name));
    }
    const rows = validators.map((v) => {
      const row = el("tr");
      row.append(
        el("td", null, v.label || v.node_id),
        el("td", "num", v.avg_score ?? "–"),
        el("td", "num", typeof v.pass_rate === "number" ? `${Math.round(v.pass_rate * 100)}%` : "–"),
        el("td", "num", v.pass_count ?? "–"),
        el("td", "num", v.fail_count ?? "–"),
        el("td", "num", v.retry_count ?? "–"),
      );
      if (v.fail_count > 0) row.className = "failed";
      return row;
    });
    table.replaceChildren(head, ...rows);
  }

  function renderLines(rows, more) {
    const container = $("lines");
    if (!rows.length) {
      renderEmpty(container, "No lines.");
      return;
    }
    container.replaceChildren(...rows.map((row) => {
      const line = el("div", "line");
      line.append(el("p", "script", `${Number(row.line_index) + 1}. ${row.script ?? ""}`));
      const cards = el("div", "cards");
      for (const card of Array.isArray(row.cards) ? row.cards : []) cards.append(renderCard(card));
      line.append(cards);
      return line;
    }));
    if (more) container.append(el("p", "empty", "More lines than shown: see get_run_data."));
  }

  function renderCard(card) {
    const box = el("div", "card");
    box.dataset.locale = String(card.locale);
    const head = el("div", "card-head");
    head.append(el("span", "locale", card.locale));
    const meta = [card.status, card.voice];
    if (typeof card.duration_s === "number") meta.push(`${card.duration_s} s`);
    for (const [name, score] of Object.entries(card.scores || {})) meta.push(`${name} ${score}`);
    head.append(el("span", "card-meta", meta.filter(Boolean).join(" · ")));
    box.append(head);
    if (card.text) box.append(el("p", "card-text", card.text));
    if (isId(card.audio_id) && card.audio_status === "available") {
      const button = el("button", "play", `▶ Play ${card.locale}`);
      button.type = "button";
      button.dataset.audioId = card.audio_id;
      button.addEventListener("click", () => loadClip(box, button, card.audio_id));
      box.append(button);
    }
    return box;
  }

  // ---- audio -----------------------------------------------------------------------------

  const AUDIO_MIME = /^audio\/[a-z0-9.+-]+$/i;
  const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

  async function loadClip(box, button, audioId) {
    button.disabled = true;
    button.textContent = "Loading…";
    box.querySelectorAll(".reason").forEach((node) => node.remove());
    try {
      const result = await callTool("get_audio_clip", { ...ids(), audio_id: audioId });
      const blocks = Array.isArray(result.content) ? result.content : [];
      const clip = blocks.find((b) => b && b.type === "audio");
      if (clip && AUDIO_MIME.test(String(clip.mimeType)) && BASE64.test(String(clip.data))) {
        const audio = el("audio");
        audio.controls = true;
        audio.preload = "auto";
        audio.src = `data:${clip.mimeType};base64,${clip.data}`;
        button.replaceWith(audio);
        audio.play().catch(() => { /* autoplay refused: the controls are there */ });
        return;
      }
      const url = result.structuredContent && result.structuredContent.url;
      button.replaceWith(clipLink(url));
    } catch (err) {
      button.disabled = false;
      button.textContent = "▶ Try again";
      box.append(el("p", "reason", err.message));
    }
  }

  function clipLink(url) {
    const note = el("p", "card-meta", "Too long to play here.");
    if (typeof url !== "string" || !/^https?:\/\//.test(url)) return note;
    if (hostCapabilities.openLinks) {
      const open = el("button", "open", "Open the clip");
      open.type = "button";
      open.addEventListener("click", () => request("ui/open-link", { url }).catch(() => {}));
      note.append(" ", open);
    } else {
      note.append(" ", el("span", null, url));
    }
    return note;
  }

  // ---- size and start-up -----------------------------------------------------------------

  let lastSize = "";
  function reportSize() {
    const width = Math.ceil(document.documentElement.scrollWidth);
    const height = Math.ceil(document.documentElement.scrollHeight);
    const size = `${width}x${height}`;
    if (size === lastSize) return;
    lastSize = size;
    notify("ui/notifications/size-changed", { width, height });
  }

  async function connect() {
    try {
      const init = await request("ui/initialize", {
        appInfo: { name: CONFIG.appName, version: CONFIG.appVersion },
        appCapabilities: {},
        protocolVersion: CONFIG.protocolVersion,
      });
      hostCapabilities = (init && init.hostCapabilities) || {};
      applyHostContext(init && init.hostContext);
      setStatus("waiting for a run");
      notify("ui/notifications/initialized", {});
      if (typeof ResizeObserver === "function") {
        new ResizeObserver(reportSize).observe(document.documentElement);
      }
      reportSize();
    } catch (err) {
      showError(`No MCP Apps host answered: ${err.message}`);
    }
  }

  connect();
})();
