// Alarms (告警) for every key: the active ones first (the API orders them: active, then the
// most severe, then the newest), each with its severity, what and where, since when, and who
// acknowledged it; admin and engineer keys get an acknowledge button (POST
// /api/v1/alarms/{id}/ack), other keys never ask. "Include cleared" lists the history too;
// a row opens its transitions. A vendor's key gets its contracts' boundary alarms only (the
// API scopes them).
(function () {
  "use strict";
  var Epc = window.Epc, $ = Epc.$;
  var ACKERS = ["admin", "engineer"];
  var state = { rows: [], page: 0, all: false, open: {} };

  function t(k, v) { return Epc.t(k, v); }
  function when(iso) {
    var opts = Epc.site ? { timeZone: Epc.site.timezone } : {};
    return new Date(iso).toLocaleString(Epc.locale(), opts);
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function mayAck() { return Epc.who && ACKERS.indexOf(Epc.who.role) >= 0; }

  function post(path) {
    return fetch("api/v1" + path, {
      method: "POST", headers: { Authorization: "Bearer " + sessionStorage.getItem("epcmon.key") },
    }).then(function (r) {
      if (r.ok) return r.json();
      return r.json().then(function (b) { throw new Error(b.detail || r.statusText); }, function () { throw new Error(r.statusText); });
    });
  }

  function history(a, box) {
    box.replaceChildren(el("span", "empty", "…"));
    Epc.api("/alarms/" + a.id).then(function (d) {
      var list = el("ol", "alarm-history");
      d.history.forEach(function (e) {
        var li = el("li");
        li.appendChild(el("span", "when", when(e.time)));
        li.appendChild(document.createTextNode(" " + t("alEv_" + e.kind) + (e.by ? " · " + e.by : "") + " · "));
        li.appendChild(el("span", "al-" + e.severity, t("alSev_" + e.severity)));
        if (e.kind === "raised" || e.kind === "updated") li.appendChild(document.createTextNode(" · " + e.message));
        list.appendChild(li);
      });
      box.replaceChildren(list);
    }, function (e) { if (e.auth) Epc.showLogin(e.message); else box.textContent = e.message; });
  }

  function ackCell(cell, a) {
    cell.replaceChildren();
    if (a.acknowledged_by) {
      cell.appendChild(el("span", "acked", t("alAcked", { who: a.acknowledged_by, t: when(a.acknowledged) })));
    } else if (mayAck() && a.state === "active") {
      var b = el("button", "ack", t("alAck"));
      b.type = "button"; b.dataset.alarm = a.id;
      b.addEventListener("click", function () {
        b.disabled = true;
        post("/alarms/" + a.id + "/ack").then(function (done) {
          state.rows = state.rows.map(function (r) { return r.id === done.id ? done : r; });
          ackCell(cell, done);
        }, function (e) { b.disabled = false; b.title = e.message; });
      });
      cell.appendChild(b);
    } else {
      cell.appendChild(el("span", "empty", "—"));
    }
  }

  function render(row, a) {
    row.dataset.alarm = a.id;
    row.className = "alarm state-" + a.state;
    var sev = Epc.cell(row, t("alSev_" + a.severity), "sev al-" + a.severity);
    sev.title = t("alCat_" + a.category);
    var what = row.insertCell();
    what.className = "what";
    var open = el("button", "expand", a.message);
    open.type = "button";
    open.setAttribute("aria-expanded", String(!!state.open[a.id]));
    what.appendChild(open);
    var meta = el("div", "meta");
    meta.textContent = a.subject + " · " + t("alSince", { t: when(a.raised) }) + " · "
      + (a.state === "active" ? t("alActive") : t("alCleared", { t: when(a.cleared) }));
    what.appendChild(meta);
    var box = el("div", "history-box");
    box.hidden = !state.open[a.id];
    what.appendChild(box);
    if (state.open[a.id]) history(a, box);
    open.addEventListener("click", function () {
      state.open[a.id] = !state.open[a.id];
      open.setAttribute("aria-expanded", String(state.open[a.id]));
      box.hidden = !state.open[a.id];
      if (state.open[a.id]) history(a, box);
    });
    var ack = row.insertCell();
    ack.className = "ack-cell";
    ackCell(ack, a);
  }

  function draw(page) {
    var active = page.alarms.filter(function (a) { return a.state === "active"; }).length;
    $("alarms-summary").textContent = state.all
      ? t("alShown", { n: page.total, active: active })
      : page.total ? t("alActiveN", { n: page.total }) : "";
    $("alarms-empty").hidden = page.total > 0;
    $("alarms-empty").textContent = t(state.all ? "alNoneAtAll" : "alNone");
    state.rows = page.alarms;
    Epc.head($("alarms"), [t("alColSeverity"), t("alColAlarm"), t("alColAck")]);
    list();
  }
  function list() {
    state.page = Epc.pager($("alarms"), $("alarms-info"), $("alarms-pager"), state.rows, 10, state.page, render,
      function (p) { state.page = p; list(); });
  }

  function load() {
    var params = { state: state.all ? "all" : "active", limit: "500" };
    return Epc.api("/alarms", params).then(draw, function (e) {
      if (e.auth) throw e;
      $("alarms-summary").textContent = e.message;
    });
  }

  $("alarms-history").addEventListener("change", function (ev) {
    state.all = ev.target.checked; state.page = 0;
    load().catch(function (e) { if (e.auth) Epc.showLogin(e.message); });
  });

  window.EpcAlarms = { load: load };
})();
