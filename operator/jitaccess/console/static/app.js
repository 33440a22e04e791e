// The jitaccess console's page. Everything anyone typed (justifications, comments, messages) is
// put into the page with textContent, never parsed as HTML: it stays text, whatever it holds.
"use strict";

(() => {
  const state = { me: null, view: null, request: null, grants: [], shown: {}, refreshing: null, again: false };

  // -- building the page (text only) -------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  function el(tag, options, ...children) {
    const node = document.createElement(tag);
    const { text, attrs, data } = options || {};
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    for (const [name, value] of Object.entries(data || {})) node.dataset[name] = String(value);
    for (const child of children) node.append(child);
    return node;
  }

  function setText(id, value) {
    $(id).textContent = value === undefined || value === null || value === "" ? "—" : String(value);
  }

  function cell(value, testid) {
    return el("td", { text: value === undefined || value === null ? "" : value, data: testid ? { testid } : {} });
  }

  function link(path, text, testid) {
    return el("a", { text, attrs: { href: path }, data: { nav: "link", ...(testid ? { testid } : {}) } });
  }

  function requestPath(namespace, name) {
    return `/requests/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`;
  }

  function say(text, kind) {
    const message = $("message");
    message.textContent = text || "";
    message.dataset.kind = kind || "info";
    message.hidden = !text;
  }

  // -- the API -----------------------------------------------------------------------------

  async function api(method, path, body, retried) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") {
      headers["Content-Type"] = "application/json";
      headers["X-CSRF-Token"] = state.me ? state.me.csrfToken : "";
    }
    const answer = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: method === "GET" ? undefined : JSON.stringify(body || {}),
    });
    const data = await answer.json().catch(() => ({}));
    if (answer.status === 403 && method !== "GET" && !retried && /forgery/.test(data.error || "")) {
      state.me = await api("GET", "/api/me"); // the token expired while the page was open
      return api(method, path, body, true);
    }
    if (!answer.ok) throw new Error(data.error || `HTTP ${answer.status}`);
    return data;
  }

  // Whether `data` differs from what `view` shows now (a change elsewhere leaves it as it is, so
  // nothing someone is typing is lost).
  function changed(view, data) {
    const text = JSON.stringify(data);
    if (state.shown[view] === text) return false;
    state.shown[view] = text;
    return true;
  }

  // -- views -------------------------------------------------------------------------------

  const VIEWS = ["grants", "requests", "approvals", "request"];

  function show(view) {
    for (const name of VIEWS) $(`view-${name}`).hidden = name !== view;
    for (const name of ["grants", "requests", "approvals"]) {
      $(`nav-${name}`).classList.toggle("current", name === view);
    }
    state.view = view;
  }

  function approvalRule(approval) {
    if (!approval) return "none (self-approved)";
    return approval.steps
      .map((step, index) => `${approval.steps.length > 1 ? `step ${index + 1}: ` : ""}${step.minApprovals} of ${step.approvers.join(", ")} within ${step.timeout}`)
      .join("; ");
  }

  async function renderGrants() {
    const data = await api("GET", "/api/grants");
    if (!changed("grants", data)) return;
    state.grants = data.eligible;
    const body = $("grants-body");
    body.replaceChildren();
    for (const grant of data.eligible) {
      const button = el("button", { text: "Request", attrs: { type: "button" }, data: { testid: "request-button", grant: grant.name } });
      button.disabled = Boolean(grant.closed);
      button.addEventListener("click", () => openRequestForm(grant));
      const hint = grant.justification.hint || (grant.justification.required ? "required" : "optional");
      body.append(
        el(
          "tr",
          { data: { testid: "grant-row", grant: grant.name } },
          cell(grant.name, "grant-name"),
          cell(grant.resource, "grant-resource"),
          cell(grant.roles.join(", "), "grant-roles"),
          cell(grant.maxDuration, "grant-max-duration"),
          cell(approvalRule(grant.approval), "grant-approval"),
          cell(grant.closed ? `${hint} (${grant.closed})` : hint, "grant-justification"),
          el("td", {}, button),
        ),
      );
    }
    $("grants-empty").hidden = data.eligible.length > 0;
    $("grants-table").hidden = data.eligible.length === 0;
    $("group-only-count").textContent = String(data.throughGroups);
    $("group-only").hidden = data.throughGroups === 0;
  }

  function openRequestForm(grant) {
    const form = $("request-form");
    form.dataset.grant = grant.name;
    $("request-form-grant").textContent = `${grant.name} on ${grant.resource}`;
    const roles = $("request-roles");
    roles.replaceChildren(el("legend", { text: "Roles" }));
    for (const role of grant.roles) {
      const box = el("input", { attrs: { type: "checkbox", name: "role", value: role }, data: { testid: "role-checkbox" } });
      box.checked = true;
      roles.append(el("label", {}, box, ` ${role}`));
    }
    $("request-duration").value = grant.defaultDuration;
    $("request-duration").placeholder = `up to ${grant.maxDuration}`;
    $("request-justification").value = "";
    $("request-justification-hint").textContent = grant.justification.hint || "";
    $("request-start").value = "";
    $("request-break-glass").checked = false;
    $("request-break-glass-row").hidden = !grant.breakGlass;
    $("request-break-glass-max").textContent = grant.breakGlass ? grant.breakGlass.maxDuration : "";
    form.hidden = false;
    $("request-justification").focus();
  }

  async function submitRequest(event) {
    event.preventDefault();
    const form = $("request-form");
    const checked = [...form.querySelectorAll("input[name=role]")];
    const roles = checked.filter((box) => box.checked).map((box) => box.value);
    const start = $("request-start").value;
    const body = {
      grant: form.dataset.grant,
      roles: roles.length === checked.length ? [] : roles,
      duration: $("request-duration").value.trim(),
      justification: $("request-justification").value,
      breakGlass: $("request-break-glass").checked,
    };
    if (start) body.startTime = new Date(start).toISOString().replace(/\.\d{3}Z$/, "Z");
    try {
      const data = await api("POST", "/api/requests", body);
      form.hidden = true;
      say(`Filed ${data.created.name}.`, "ok");
      navigate(requestPath(data.created.namespace, data.created.name));
    } catch (error) {
      say(error.message, "error");
    }
  }

  async function renderRequests() {
    const data = await api("GET", "/api/requests");
    if (!changed("requests", data)) return;
    const body = $("requests-body");
    body.replaceChildren(
      ...data.requests.map((request) =>
        el(
          "tr",
          { data: { testid: "request-row", request: `${request.namespace}/${request.name}`, phase: request.phase } },
          el("td", {}, link(requestPath(request.namespace, request.name), request.name, "request-link")),
          cell(request.grant),
          cell(request.phase, "request-phase"),
          cell(request.expiresAt),
          cell(request.created),
        ),
      ),
    );
    $("requests-empty").hidden = data.requests.length > 0;
    $("requests-table").hidden = data.requests.length === 0;
  }

  async function decide(request, decision, comment, digest) {
    const body = { decision, comment, requestUID: request.uid };
    if (digest) body.requestDigest = digest;
    await api("POST", `${requestPath(request.namespace, request.name).replace("/requests/", "/api/requests/")}/decisions`, body);
    say(`${decision} filed for ${request.name}.`, "ok");
  }

  function approvalRow(item) {
    const actions = el("td", {});
    if (item.kind === "approval") {
      const comment = el("input", { attrs: { type: "text", placeholder: "comment", "aria-label": "comment" }, data: { testid: "decision-comment" } });
      const buttons = ["Approve", "Deny"].map((decision) => {
        const button = el("button", { text: decision, attrs: { type: "button" }, data: { testid: `${decision.toLowerCase()}-button` } });
        button.addEventListener("click", () =>
          decide(item, decision, comment.value, item.requestDigest).then(refresh, (error) => say(error.message, "error")),
        );
        return button;
      });
      actions.append(comment, ...buttons);
    }
    actions.append(link(requestPath(item.namespace, item.name), item.kind === "review" ? "Review" : "Details", "approval-details"));
    return el(
      "tr",
      { data: { testid: "approval-row", request: `${item.namespace}/${item.name}`, kind: item.kind } },
      cell(item.requester, "approval-requester"),
      cell(item.grant, "approval-grant"),
      cell(item.resource, "approval-resource"),
      cell((item.roles || []).join(", "), "approval-roles"),
      cell(item.duration, "approval-duration"),
      cell(item.justification, "approval-justification"),
      cell(item.kind === "review" ? "break-glass review" : item.step, "approval-step"),
      actions,
    );
  }

  async function renderApprovals() {
    const data = await api("GET", "/api/approvals");
    if (!changed("approvals", data)) return;
    const typed = {}; // comments being written survive a redraw
    for (const input of $("approvals-body").querySelectorAll("[data-testid=decision-comment]")) {
      typed[input.closest("tr").dataset.request] = input.value;
    }
    $("approvals-body").replaceChildren(...data.pending.map(approvalRow));
    for (const input of $("approvals-body").querySelectorAll("[data-testid=decision-comment]")) {
      input.value = typed[input.closest("tr").dataset.request] || "";
    }
    $("approvals-empty").hidden = data.pending.length > 0;
    $("approvals-table").hidden = data.pending.length === 0;
  }

  async function countApprovals() {
    const data = await api("GET", "/api/approvals");
    $("approvals-count").textContent = data.pending.length ? `(${data.pending.length})` : "";
  }

  function windowText(request) {
    if (request.activatedAt) return `from ${request.activatedAt} until ${request.expiresAt || "?"}`;
    if (request.expiresAt) return `until ${request.expiresAt}`;
    return "";
  }

  // Where it waits, or (once met) who approved; empty where no approval was asked.
  function approvalText(request) {
    if (request.may.approvalSummary) return request.may.approvalSummary;
    const approvers = (request.approvals || []).map((approval) => approval.approver);
    return approvers.length ? `approved by ${approvers.join(", ")}` : "";
  }

  async function renderRequest(namespace, name) {
    const request = await api("GET", `/api/requests/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`);
    if (!changed("request", request)) return;
    state.request = request;
    setText("request-name", `${request.namespace}/${request.name}`);
    setText("request-phase", request.phase);
    $("request-phase").dataset.phase = request.phase;
    setText("request-requester", request.requester);
    setText("request-grant", request.grant);
    setText("request-resource", request.resource);
    setText("request-roles-shown", (request.roles || []).join(", "));
    setText("request-duration-shown", request.duration);
    setText("request-justification-shown", request.justification);
    setText("request-start-shown", request.startTime || "as soon as allowed");
    setText("request-window", windowText(request));
    setText("request-approval", approvalText(request));
    setText("request-ended-by", request.endedBy);
    renderActions(request);
    $("request-decisions").replaceChildren(
      ...request.decisions.map((d) =>
        el("li", { text: `${d.decision} by ${d.approver} at ${d.time}${d.comment ? `: ${d.comment}` : ""} (${d.counted ? "counts" : d.message || "not counted"})`, data: { testid: "decision" } }),
      ),
    );
    $("request-conditions-body").replaceChildren(
      ...request.conditions.map((c) => el("tr", { data: { testid: "condition", type: c.type } }, cell(c.type), cell(c.status), cell(c.reason), cell(c.message), cell(c.lastTransitionTime))),
    );
    $("request-events").replaceChildren(
      ...request.events.map((e) => el("li", { text: `${e.time} ${e.type} ${e.reason}: ${e.message}${e.count > 1 ? ` (×${e.count})` : ""}`, data: { testid: "event", reason: e.reason } })),
    );
  }

  function renderActions(request) {
    const may = request.may;
    $("revoke-button").hidden = !may.revoke;
    $("revoke-button").textContent = request.phase === "Active" ? "Revoke my access" : "Withdraw my request";
    $("extend-form").hidden = !may.extend;
    const deciding = may.decide || may.review;
    $("decision-form").hidden = !deciding && !may.why;
    $("decision-why").textContent = may.why || "";
    $("approve-button").hidden = !may.approve;
    $("deny-button").hidden = !may.decide;
    $("review-button").hidden = !may.review;
    $("reviewer-revoke-button").hidden = !may.review;
  }

  async function onDecision(event) {
    const decision = event.target.dataset.decision;
    const request = state.request;
    if (!decision || !request) return;
    const digest = decision === "Approve" || decision === "Deny" ? request.may.requestDigest : null;
    try {
      await decide(request, decision, $("decision-comment").value, digest);
      $("decision-comment").value = "";
      await refresh();
    } catch (error) {
      say(error.message, "error");
    }
  }

  async function onRevoke() {
    const request = state.request;
    try {
      await api("POST", `/api/requests/${encodeURIComponent(request.namespace)}/${encodeURIComponent(request.name)}/revoke`, {});
      say(`Revoking ${request.name}.`, "ok");
      await refresh();
    } catch (error) {
      say(error.message, "error");
    }
  }

  async function onExtend(event) {
    event.preventDefault();
    const request = state.request;
    const body = { duration: $("extend-duration").value.trim(), justification: $("extend-justification").value };
    try {
      const data = await api("POST", `/api/requests/${encodeURIComponent(request.namespace)}/${encodeURIComponent(request.name)}/extend`, body);
      say(`Filed ${data.created.name}.`, "ok");
      navigate(requestPath(data.created.namespace, data.created.name));
    } catch (error) {
      say(error.message, "error");
    }
  }

  // -- routing and live updates ------------------------------------------------------------

  function route() {
    const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    if (parts[0] === "requests" && parts.length === 3) return ["request", parts[1], parts[2]];
    if (parts[0] === "requests") return ["requests"];
    if (parts[0] === "approvals") return ["approvals"];
    return ["grants"];
  }

  // One refresh at a time; a change that comes during one asks for one more after it.
  async function refresh() {
    if (state.refreshing) {
      state.again = true;
      return state.refreshing;
    }
    state.refreshing = (async () => {
      do {
        state.again = false;
        await draw();
      } while (state.again);
    })();
    try {
      await state.refreshing;
    } finally {
      state.refreshing = null;
    }
  }

  async function draw() {
    const [view, ...args] = route();
    show(view);
    try {
      if (view === "grants") await renderGrants();
      if (view === "requests") await renderRequests();
      if (view === "approvals") await renderApprovals();
      if (view === "request") await renderRequest(...args);
      await countApprovals();
      document.body.dataset.loaded = "true";
    } catch (error) {
      say(error.message, "error");
    }
  }

  function navigate(path) {
    if (path !== location.pathname) history.pushState({}, "", path);
    $("request-form").hidden = true;
    refresh();
  }

  function listen() {
    const live = $("live-status");
    const source = new EventSource("/api/stream");
    source.addEventListener("ready", () => {
      live.textContent = "live";
      live.dataset.state = "live";
    });
    source.addEventListener("change", () => refresh());
    source.addEventListener("error", () => {
      live.textContent = "reconnecting";
      live.dataset.state = "reconnecting";
    });
  }

  async function start() {
    try {
      state.me = await api("GET", "/api/me");
    } catch (error) {
      say(error.message, "error");
      return;
    }
    $("whoami-email").textContent = state.me.email;
    $("groups-note").textContent = state.me.groups;
    document.addEventListener("click", (event) => {
      const anchor = event.target.closest("a[data-nav]");
      if (!anchor || event.ctrlKey || event.metaKey || event.shiftKey) return;
      event.preventDefault();
      navigate(anchor.getAttribute("href"));
    });
    window.addEventListener("popstate", refresh);
    $("request-form").addEventListener("submit", submitRequest);
    $("request-cancel").addEventListener("click", () => {
      $("request-form").hidden = true;
    });
    $("revoke-button").addEventListener("click", onRevoke);
    $("extend-form").addEventListener("submit", onExtend);
    for (const id of ["approve-button", "deny-button", "review-button", "reviewer-revoke-button"]) {
      $(id).addEventListener("click", onDecision);
    }
    setInterval(async () => {
      state.me = await api("GET", "/api/me").catch(() => state.me);
    }, 3600 * 1000);
    listen();
    await refresh();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
