// The built-in page: asks for an API key (kept in sessionStorage only), asks /api/v1/whoami
// who it belongs to, then shows what that key may see: the building (overview, any meter's
// chart, operations) for admin/engineer/viewer keys, and the contract views (contract.js) for
// every key with a contract; the department bills and energy intensity (bills.js,
// intensity.js) for the building's roles; the alarms (alarms.js) for every key, a vendor's
// scoped by the API to its contracts' boundaries. A vendor's page never calls a building route.
// When every section is drawn, <body data-ready="1"> (the browser test and bench wait on it).
(function () {
  "use strict";
  var HOUR = 3600000, DAY = 86400000;
  var COUNTERS = ["energy_import", "energy_export", "energy_total", "volume", "volume_reverse", "thermal_energy", "cooling_energy", "heating_energy"];
  var Epc = window.Epc = { lang: sessionStorage.getItem("epcmon.lang") || "zh", gen: 0, who: null, site: null };
  var state = { meter: null, quantity: null, range: 7, opsPage: 0, offlineOnly: false, meters: [], status: [] };

  function $(id) { return document.getElementById(id); }
  Epc.$ = $;
  Epc.t = function (k, vars) {
    var s = EpcText[Epc.lang][k] || k;
    for (var v in vars || {}) s = s.replace("{" + v + "}", vars[v]);
    return s;
  };
  Epc.locale = function () { return Epc.lang === "zh" ? "zh-CN" : "en-GB"; };
  function key() { return sessionStorage.getItem("epcmon.key"); }
  function url(path, params) { return "api/v1" + path + (params ? "?" + new URLSearchParams(params).toString() : ""); }
  function failure(r) {
    var e = new Error(r.status === 401 ? Epc.t("badKey") : r.status === 403 ? Epc.t("notAllowed") : r.statusText);
    e.status = r.status; e.auth = r.status === 401;
    if (e.auth) return Promise.reject(e);
    return r.json().then(function (b) { if (b && typeof b.detail === "string") e.message = b.detail; throw e; }, function () { throw e; });
  }
  Epc.api = function (path, params) {
    return fetch(url(path, params), { headers: { Authorization: "Bearer " + key() } }).then(function (r) { return r.ok ? r.json() : failure(r); });
  };
  Epc.download = function (path, params, filename) {
    return fetch(url(path, params), { headers: { Authorization: "Bearer " + key() } }).then(function (r) {
      if (!r.ok) return failure(r);
      return r.blob().then(function (blob) {
        var a = document.createElement("a");
        a.href = URL.createObjectURL(blob);
        a.download = filename;
        document.body.appendChild(a); a.click(); a.remove();
        setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
      });
    });
  };
  // A number in the page's language, at most `digits` decimals (at least `min`); never "-0".
  Epc.fmt = function (v, digits, min) {
    if (v === null || v === undefined || v !== v) return "—";
    v = +v.toFixed(digits) || 0;
    return v.toLocaleString(Epc.locale(), { minimumFractionDigits: min || 0, maximumFractionDigits: digits });
  };
  // `template` with each {name} replaced by a <span class="name"> holding parts[name] (or by
  // parts[name] itself when it is a node): numbers in a sentence stay addressable.
  Epc.fill = function (el, template, parts) {
    el.replaceChildren();
    template.split(/(\{\w+\})/).forEach(function (bit) {
      var m = /^\{(\w+)\}$/.exec(bit);
      if (!m) { if (bit) el.appendChild(document.createTextNode(bit)); return; }
      var v = parts[m[1]];
      if (v instanceof Node) { el.appendChild(v); return; }
      var span = document.createElement("span");
      span.className = m[1].replace(/_/g, "-");
      span.textContent = v;
      el.appendChild(span);
    });
    return el;
  };
  Epc.cell = function (row, text, cls) { var c = row.insertCell(); c.textContent = text; if (cls) c.className = cls; return c; };
  Epc.head = function (table, names) {
    table.replaceChildren();
    var row = table.createTHead().insertRow();
    names.forEach(function (n) { var th = document.createElement("th"); th.textContent = n; row.appendChild(th); });
    return table.createTBody();
  };
  // A table of `rows` shown `size` at a time, saying how many are not shown.
  Epc.pager = function (table, info, controls, rows, size, page, render, turn) {
    var pages = Math.max(1, Math.ceil(rows.length / size));
    page = Math.min(Math.max(page, 0), pages - 1);
    var a = page * size, b = Math.min(rows.length, a + size);
    var body = table.tBodies[0];
    body.replaceChildren();
    rows.slice(a, b).forEach(function (r) { render(body.insertRow(), r); });
    info.textContent = rows.length > size
      ? Epc.t("shown", { a: rows.length ? a + 1 : 0, b: b, n: rows.length, hidden: rows.length - (b - a) })
      : Epc.t("shownAll", { n: rows.length });
    controls.replaceChildren();
    if (pages > 1) {
      [["prev", page - 1, page === 0], ["next", page + 1, page === pages - 1]].forEach(function (p) {
        var btn = document.createElement("button");
        btn.type = "button"; btn.textContent = Epc.t(p[0]); btn.disabled = p[2]; btn.dataset.page = p[1];
        btn.addEventListener("click", function () { turn(p[1]); });
        controls.appendChild(btn);
      });
    }
    return page;
  };
  Epc.failed = function (target) {
    return function (e) {
      if (e.auth) { showLogin(e.message); throw e; }
      if (target) EpcChart.empty(target, e.message);
    };
  };

  function applyLang() {
    document.documentElement.lang = Epc.lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-i18n]").forEach(function (n) { n.textContent = Epc.t(n.dataset.i18n); });
    $("lang").textContent = Epc.t("lang");
  }

  // -- time in the site's zone ------------------------------------------------------------
  var offsetFmt = {};
  function tzOffset(ms, tz) {
    var f = offsetFmt[tz] || (offsetFmt[tz] = new Intl.DateTimeFormat("en-US", { timeZone: tz, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric" }));
    var p = {};
    f.formatToParts(new Date(ms)).forEach(function (x) { p[x.type] = +x.value; });
    return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute) - Math.floor(ms / 60000) * 60000;
  }
  var offsets = {};
  function localDay(ms, tz) {  // the local midnight before `ms` (UTC ms); offsets kept per hour
    var h = tz + Math.floor(ms / HOUR), off = offsets[h];
    if (off === undefined) off = offsets[h] = tzOffset(ms, tz);
    return Math.floor((ms + off) / DAY) * DAY - off;
  }

  // A counter's increase per bucket from its last value per bucket: a bucket whose previous
  // bucket holds no reading spans a gap, and a decrease is a reset: both are null (not drawn),
  // so an outage never shows as one huge bar. Buckets are multiples of `step` since the epoch,
  // as the store makes them for widths below a day.
  function increases(points, start, end, step) {
    var last = {};
    points.forEach(function (p) { last[Date.parse(p.time)] = p.value; });
    var out = [];
    for (var t = Math.ceil(start / step) * step; t < end; t += step) {
      var a = last[t - step], b = last[t];
      out.push([t, a === undefined || b === undefined || b < a ? null : b - a]);
    }
    return out;
  }
  function onGrid(points, start, end, step) {
    var at = {};
    points.forEach(function (p) { at[Date.parse(p.time)] = p.value; });
    var out = [];
    for (var t = Math.ceil(start / step) * step; t < end; t += step) out.push([t, at[t] === undefined ? null : at[t]]);
    return out;
  }

  // -- the building: overview ---------------------------------------------------------------
  function overview(meters, latest) {
    var target = $("chart-overview"), tz = Epc.site.timezone;
    var counted = meters.filter(function (m) { return m.kind === "electricity" && m.quantities.indexOf("energy_import") >= 0; });
    var incomers = counted.filter(function (m) { return m.end_use === "incomer"; });
    var parts = incomers.length ? incomers : counted.filter(function (m) { return !m.parent; });
    $("overview-title").textContent = Epc.t(incomers.length ? "daily" : "dailyTop");
    var end = localDay(latest, tz) + DAY, start = end - 30 * DAY;
    return Promise.all(parts.map(function (m) {
      return Epc.api("/meters/" + m.id + "/series", { quantity: "energy_import", start: iso(start - HOUR), end: iso(end), every: "1h", agg: "last" });
    })).then(function (results) {
      // the hours of the window, each with its local day; hours not over yet are not missing
      var days = [], byKey = {}, slots = [];
      for (var t = Math.ceil(start / HOUR) * HOUR; t < end; t += HOUR) {
        var k = localDay(t, tz);
        if (!byKey[k]) { byKey[k] = { t: k, sum: 0, all: 0, past: 0, hours: results.map(function () { return 0; }) }; days.push(byKey[k]); }
        byKey[k].all += 1;
        if (t + HOUR <= latest + 1) byKey[k].past += 1;
        slots.push(byKey[k]);
      }
      var body = Epc.head($("buildings"), [Epc.t("incomer"), Epc.t("total30"), Epc.t("coverage")]);
      results.forEach(function (s, m) {
        var total = 0, hours = 0, past = 0;
        increases(s.points, start, end, HOUR).forEach(function (p, i) {
          if (p[0] + HOUR > latest + 1) return;  // the running hour and the future
          past += 1;
          if (p[1] !== null) { slots[i].sum += p[1]; slots[i].hours[m] += 1; total += p[1]; hours += 1; }
        });
        var row = body.insertRow();
        Epc.cell(row, parts[m].id + " " + parts[m].name);
        Epc.cell(row, Math.round(total).toLocaleString(), "num");
        Epc.cell(row, hours + " / " + past, "num");
      });
      // a whole day: every hour of it, at every meter; otherwise the metered hours only, in grey
      var whole = days.map(function (d) { return d.past === d.all && Math.min.apply(null, d.hours) === d.all ? d.sum : null; });
      var partial = days.map(function (d, i) { return whole[i] === null && Math.max.apply(null, d.hours) > 0 ? d.sum : null; });
      var notes = days.map(function (d) { return Epc.t("hoursOf", { h: Math.min.apply(null, d.hours), n: d.past }); });
      EpcChart.time(target, {
        x: days.map(function (d) { return d.t / 1000; }), tz: tz, locale: Epc.locale(), xfmt: "day", unit: "kWh", zero: true,
        series: [
          { label: Epc.t("completeDay"), values: whole, kind: "bars", color: "#2e7d32", notes: notes, skipNull: true },
          { label: Epc.t("partialDay"), values: partial, kind: "bars", color: "#9e9e9e", notes: notes, skipNull: true },
        ],
        empty: Epc.t("noData"), noData: Epc.t("noData"),
      });
    }).catch(Epc.failed(target));
  }
  function iso(ms) { return new Date(ms).toISOString().replace(".000Z", "Z"); }

  // -- the building: any meter, any quantity ------------------------------------------------
  function meterOptions() {
    var select = $("meter-select");
    select.replaceChildren();
    var groups = {};
    state.meters.filter(function (m) { return m.quantities.length; }).forEach(function (m) {
      if (!groups[m.kind]) { groups[m.kind] = document.createElement("optgroup"); groups[m.kind].label = m.kind; select.appendChild(groups[m.kind]); }
      groups[m.kind].appendChild(new Option(m.id + " " + m.name, m.id));
    });
    select.value = state.meter;
    var meter = state.meters.filter(function (m) { return m.id === state.meter; })[0];
    var qs = $("quantity-select");
    qs.replaceChildren();
    (meter ? meter.quantities : []).forEach(function (q) { qs.add(new Option(q, q)); });
    if (meter && meter.quantities.indexOf(state.quantity) < 0) state.quantity = meter.quantities[0];
    qs.value = state.quantity;
    document.querySelectorAll("#ranges button").forEach(function (b) { b.setAttribute("aria-pressed", String(+b.dataset.range === state.range)); });
  }
  function meterChart() {
    var target = $("chart-meter"), tz = Epc.site.timezone;
    meterOptions();
    if (!state.meter || !state.quantity) { EpcChart.empty(target, Epc.t("noData")); return Promise.resolve(); }
    var counter = COUNTERS.indexOf(state.quantity) >= 0;
    var every = state.range === 1 && !counter ? "15m" : "1h";
    var step = every === "15m" ? 900000 : HOUR;
    var end = Math.ceil((state.latest + 1) / step) * step, start = end - state.range * DAY;
    var meter = state.meter, quantity = state.quantity;
    return Epc.api("/meters/" + meter + "/series", {
      quantity: quantity, start: iso(counter ? start - step : start), end: iso(end), every: every, agg: counter ? "last" : "mean",
    }).then(function (s) {
      if (meter !== state.meter || quantity !== state.quantity) return;
      var pts = counter ? increases(s.points, start, end, step) : onGrid(s.points, start, end, step);
      var label = quantity + " · " + Epc.t(counter ? "perBucket" : "mean", { every: every });
      $("meter-title").textContent = meter + " · " + label + " (" + s.unit + ")";
      EpcChart.time(target, {
        x: pts.map(function (p) { return p[0] / 1000; }), tz: tz, locale: Epc.locale(), xfmt: state.range === 1 ? "time" : "day", tipfmt: "hour",
        unit: s.unit, zero: counter, series: [{ label: label, values: pts.map(function (p) { return p[1]; }), kind: counter ? "bars" : "line" }],
        empty: Epc.t("noData"), noData: Epc.t("noData"),
      });
    }).catch(Epc.failed(target));
  }

  // -- the building: operations, paged --------------------------------------------------------
  function operationsList() {
    var rows = state.status.filter(function (m) { return m.stale; });
    if (!state.offlineOnly) rows = rows.concat(state.status.filter(function (m) { return !m.stale; }));
    var table = $("ops");
    Epc.head(table, [Epc.t("meters"), Epc.t("state"), Epc.t("lastSeen")]);
    state.opsPage = Epc.pager(table, $("ops-info"), $("ops-pager"), rows, 15, state.opsPage, function (row, m) {
      Epc.cell(row, m.meter);
      Epc.cell(row, m.stale ? Epc.t("stale") : Epc.t("ok"), m.stale ? "stale" : "");
      Epc.cell(row, m.last_seen ? new Date(m.last_seen).toLocaleString(Epc.locale(), { timeZone: Epc.site.timezone }) : Epc.t("never"));
    }, function (page) { state.opsPage = page; operationsList(); });
  }
  function operations() {
    return Promise.all([Epc.api("/operations/spool"), Epc.api("/operations/dead-letters", { limit: "1000" })]).then(function (r) {
      var offline = state.status.filter(function (m) { return m.stale; }).length;
      $("ops-summary").textContent = Epc.t("offline") + ": " + offline + " / " + state.status.length + " · " + Epc.t("spool") + ": " + r[0].spooled_batches + " · " + Epc.t("deadLetters") + ": " + r[1].length;
      operationsList();
    }).catch(function (e) { if (e.auth) { showLogin(e.message); throw e; } $("ops-summary").textContent = e.message; });
  }

  function building() {
    var site = Epc.api("/site").then(function (s) { Epc.site = s; });
    var bills = EpcBills.load(site);  // at once: the month is the API's default until chosen
    bills.catch(function () {});  // handled below
    return Promise.all([site, Epc.api("/meters"), Epc.api("/operations/meters")]).then(function (r) {
      state.meters = r[1]; state.status = r[2];
      $("site-name").textContent = Epc.lang === "zh" ? Epc.site.name : Epc.site.name_en;
      $("kpis").replaceChildren();
      [["buildings", Epc.site.buildings], ["tenants", Epc.site.tenants], ["meters", Epc.site.meters]].forEach(function (k) {
        var d = document.createElement("div"); d.className = "kpi";
        var b = document.createElement("b"); b.textContent = k[1]; d.appendChild(b);
        d.appendChild(document.createTextNode(Epc.t(k[0]))); $("kpis").appendChild(d);
      });
      var seen = state.status.map(function (m) { return m.last_seen ? Date.parse(m.last_seen) : 0; });
      var latest = Math.max.apply(null, seen.concat([0])) || Date.now();
      state.latest = latest;
      if (!state.meter) {
        var first = state.meters.filter(function (m) { return m.end_use === "incomer" && m.quantities.indexOf("power") >= 0; })[0]
          || state.meters.filter(function (m) { return m.quantities.length; })[0];
        state.meter = first ? first.id : null;
        state.quantity = first && first.quantities.indexOf("power") >= 0 ? "power" : first ? first.quantities[0] : null;
      }
      return Promise.all([overview(state.meters, latest), meterChart(), operations(), bills]);
    });
  }

  function load(asked) {
    var gen = ++Epc.gen;
    document.body.dataset.ready = "";
    (asked || Epc.api("/whoami")).then(function (who) {
      if (gen !== Epc.gen) return;
      Epc.who = who;
      $("login").hidden = true; $("main").hidden = false;
      $("who").textContent = Epc.t("role_" + who.role) + (who.name ? " · " + who.name : "");
      document.body.dataset.role = who.role;
      document.querySelectorAll(".building").forEach(function (s) { s.hidden = !who.building; });
      document.querySelectorAll(".contract").forEach(function (s) { s.hidden = !who.contracts.length; });
      if (!who.building) $("site-name").textContent = "epcmon";
      var parts = [];
      if (who.building) parts.push(building(), EpcDevices.load());
      if (who.contracts.length) parts.push(EpcContract.load(who.contracts));
      parts.push(EpcReports.load());
      parts.push(EpcAlarms.load());
      return Promise.all(parts).then(function () {
        if (gen !== Epc.gen) return;
        window.epcmonReadyMs = performance.now();
        document.body.dataset.ready = "1";
      });
    }).catch(function (e) { if (gen === Epc.gen) showLogin(e.auth ? e.message : String(e.message || e)); });
  }

  function showLogin(message) {
    $("main").hidden = true; $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("key").focus();
  }
  Epc.showLogin = showLogin;

  $("login").addEventListener("submit", function (ev) {
    ev.preventDefault();
    sessionStorage.setItem("epcmon.key", $("key").value.trim());
    load();
  });
  $("logout").addEventListener("click", function () { sessionStorage.removeItem("epcmon.key"); Epc.gen++; showLogin(""); });
  $("lang").addEventListener("click", function () {
    Epc.lang = Epc.lang === "zh" ? "en" : "zh";
    sessionStorage.setItem("epcmon.lang", Epc.lang);
    applyLang();
    if (key() && Epc.who) load();
  });
  $("meter-select").addEventListener("change", function (ev) { state.meter = ev.target.value; state.quantity = "power"; meterChart(); });
  $("quantity-select").addEventListener("change", function (ev) { state.quantity = ev.target.value; meterChart(); });
  document.querySelectorAll("#ranges button").forEach(function (b) {
    b.addEventListener("click", function () { state.range = +b.dataset.range; meterChart(); });
  });
  $("offline-only").addEventListener("change", function (ev) { state.offlineOnly = ev.target.checked; state.opsPage = 0; operationsList(); });
  applyLang();
  // ask who the key is at once; show what it may see once every script of the page has run
  // (contract.js, bills.js, intensity.js, reports.js, alarms.js and devices.js define their Epc* objects)
  var asked = key() ? Epc.api("/whoami") : null;
  if (asked) asked.catch(function () {});  // handled in load()
  document.addEventListener("DOMContentLoaded", function () { if (asked) load(asked); else showLogin(""); });
})();
