// The built-in page: asks for an API key (kept in sessionStorage only), then draws the
// overview, a meter's power, the contract's savings and the operations list from /api/v1.
// When every chart is drawn, <body data-ready="1"> (the browser test and bench wait on it).
(function () {
  "use strict";
  var T = {
    zh: {
      logout: "退出", key: "API 密钥", enter: "进入", overview: "概览", daily: "近30天每日用电 (kWh)",
      meter: "电表曲线", power7d: "近7天功率 (kW)", savings: "节能量", monthly: "每月节能量与累计 (kWh)",
      operations: "运行状态", lang: "English", buildings: "楼栋", tenants: "部门", meters: "电表",
      total30: "近30天用电", building: "楼栋", incomer: "变压器进线", kwh: "kWh", noSavings: "暂无节能量数据",
      noData: "暂无数据", badKey: "密钥无效或无权限", stale: "离线", ok: "在线", lastSeen: "最后读数",
      state: "状态", spool: "缓存批次", offline: "离线电表", deadLetters: "死信", never: "从未",
    },
    en: {
      logout: "Log out", key: "API key", enter: "Enter", overview: "Overview", daily: "Daily electricity, last 30 days (kWh)",
      meter: "Meter", power7d: "Power, last 7 days (kW)", savings: "Savings", monthly: "Avoided energy per month and cumulative (kWh)",
      operations: "Operations", lang: "中文", buildings: "Buildings", tenants: "Departments", meters: "Meters",
      total30: "Last 30 days", building: "Building", incomer: "Incomer", kwh: "kWh", noSavings: "No savings yet",
      noData: "No data", badKey: "Unknown key or not allowed", stale: "offline", ok: "online", lastSeen: "Last reading",
      state: "State", spool: "Spooled batches", offline: "Meters offline", deadLetters: "Dead letters", never: "never",
    },
  };
  var lang = sessionStorage.getItem("epcmon.lang") || "zh";
  var DAY = 86400000;
  var site = null, anchor = null, pending = 0;
  function t(k) { return T[lang][k]; }
  function $(id) { return document.getElementById(id); }
  function key() { return sessionStorage.getItem("epcmon.key"); }
  function iso(ms) { return new Date(ms).toISOString().replace(".000Z", "Z"); }
  function localDay(ms) {
    return new Date(ms).toLocaleDateString(lang === "zh" ? "zh-CN" : "en-GB", { timeZone: site.timezone, month: "2-digit", day: "2-digit" });
  }
  function api(path, params) {
    var q = params ? "?" + new URLSearchParams(params).toString() : "";
    return fetch("api/v1" + path + q, { headers: { Authorization: "Bearer " + key() } }).then(function (r) {
      if (r.status === 401 || r.status === 403) { var e = new Error(t("badKey")); e.auth = true; throw e; }
      if (!r.ok) return r.json().then(function (b) { var e = new Error(b.detail || r.statusText); e.status = r.status; throw e; });
      return r.json();
    });
  }
  function applyLang() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-i18n]").forEach(function (n) { n.textContent = t(n.dataset.i18n); });
    $("lang").textContent = t("lang");
  }
  function cell(row, text, cls) { var c = row.insertCell(); c.textContent = text; if (cls) c.className = cls; return c; }
  function done() {
    pending -= 1;
    if (pending === 0) { window.epcmonReadyMs = performance.now(); document.body.dataset.ready = "1"; }
  }
  function fail(target) {
    return function (e) {
      if (e.auth) { showLogin(e.message); return; }
      EpcChart.empty(target, e.message);
      done();
    };
  }

  // The site's daily use at its transformer incomers (one counter query each: fast over a
  // year of data); a site without incomers falls back to its buildings' sub-meters.
  function overview(incomers, buildings) {
    var target = $("chart-overview");
    var start = anchor - 30 * DAY;
    var parts = incomers.length
      ? incomers.map(function (m) { return { path: "/consumption/meters/" + m.id, name: m.id + " " + m.name, name_en: m.id }; })
      : buildings.map(function (b) { return { path: "/consumption/buildings/" + b.id, name: b.name, name_en: b.name_en }; });
    return Promise.all(parts.map(function (p) {
      return api(p.path, { start: iso(start), end: iso(anchor), every: "1d" });
    })).then(function (results) {
      var byTime = {};
      var table = $("buildings");
      table.replaceChildren();
      var head = table.createTHead().insertRow();
      cell(head, t(incomers.length ? "incomer" : "building")); cell(head, t("total30") + " (" + t("kwh") + ")");
      var body = table.createTBody();
      results.forEach(function (r, i) {
        var row = body.insertRow();
        cell(row, lang === "zh" ? parts[i].name : parts[i].name_en);
        cell(row, Math.round(r.total).toLocaleString(), "num");
        r.rows.forEach(function (x) { byTime[x.time] = (byTime[x.time] || 0) + x.value; });
      });
      var times = Object.keys(byTime).sort();
      EpcChart.bars(target, times.map(function (x) { return localDay(Date.parse(x)); }), times.map(function (x) { return byTime[x]; }), null, t("noData"));
      done();
    }).catch(fail(target));
  }

  function meterChart(meterId) {
    var target = $("chart-meter");
    return api("/meters/" + meterId + "/series", { quantity: "power", start: iso(anchor - 7 * DAY), end: iso(anchor), every: "1h", agg: "mean" }).then(function (s) {
      EpcChart.line(target, [{ label: meterId, points: s.points.map(function (p) { return [Date.parse(p.time), p.value]; }) }], localDay, t("noData"));
    }).catch(function (e) { if (e.auth) showLogin(e.message); else EpcChart.empty(target, e.message); });
  }

  function savingsChart(contractId) {
    var target = $("chart-savings");
    return api("/contracts/" + contractId + "/savings", { period: "month" }).then(function (all) {
      var rows = all.filter(function (r) { return r.days_used > 0; });  // months with data
      EpcChart.bars(target, rows.map(function (r) { return r.period; }), rows.map(function (r) { return r.avoided; }), rows.map(function (r) { return r.cumulative; }), t("noSavings"));
    }).catch(function (e) { if (e.auth) showLogin(e.message); else EpcChart.empty(target, t("noSavings") + " (" + e.message + ")"); });
  }

  function operations() {
    return Promise.all([api("/operations/meters"), api("/operations/spool"), api("/operations/dead-letters", { limit: "1000" })]).then(function (r) {
      var meters = r[0], offline = meters.filter(function (m) { return m.stale; });
      $("ops-summary").textContent = t("offline") + ": " + offline.length + " / " + meters.length + " · " + t("spool") + ": " + r[1].spooled_batches + " · " + t("deadLetters") + ": " + r[2].length;
      var table = $("ops");
      table.replaceChildren();
      var head = table.createTHead().insertRow();
      cell(head, t("meters")); cell(head, t("state")); cell(head, t("lastSeen"));
      var body = table.createTBody();
      offline.concat(meters.filter(function (m) { return !m.stale; })).slice(0, 30).forEach(function (m) {
        var row = body.insertRow();
        cell(row, m.meter);
        cell(row, m.stale ? t("stale") : t("ok"), m.stale ? "stale" : "");
        cell(row, m.last_seen ? new Date(m.last_seen).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { timeZone: site.timezone }) : t("never"));
      });
      done();
    }).catch(function (e) { if (e.auth) showLogin(e.message); else { $("ops-summary").textContent = e.message; done(); } });
  }

  function load() {
    document.body.dataset.ready = "";
    Promise.all([api("/site"), api("/buildings"), api("/meters"), api("/contracts")]).then(function (r) {
      site = r[0];
      var buildings = r[1], meters = r[2], contracts = r[3];
      $("login").hidden = true; $("main").hidden = false;
      $("site-name").textContent = lang === "zh" ? site.name : site.name_en;
      $("kpis").innerHTML = "";
      [["buildings", site.buildings], ["tenants", site.tenants], ["meters", site.meters]].forEach(function (k) {
        var d = document.createElement("div"); d.className = "kpi";
        var b = document.createElement("b"); b.textContent = k[1]; d.appendChild(b);
        d.appendChild(document.createTextNode(t(k[0]))); $("kpis").appendChild(d);
      });
      var powered = meters.filter(function (m) { return m.quantities.indexOf("power") >= 0; });
      var select = $("meter-select");
      select.replaceChildren();
      powered.forEach(function (m) { select.add(new Option(m.id + " " + m.name, m.id)); });
      var csel = $("contract-select");
      csel.replaceChildren();
      contracts.forEach(function (c) { csel.add(new Option(c.id + " " + c.name, c.id)); });
      var first = powered.length ? powered[0].id : null;
      var latest = first ? api("/meters/" + first + "/latest") : Promise.resolve([]);
      return latest.then(function (readings) {
        var times = readings.map(function (x) { return Date.parse(x.time); });
        anchor = times.length ? Math.max.apply(null, times) : Date.now();
        anchor = Math.ceil(anchor / DAY) * DAY;
        pending = 4;
        overview(meters.filter(function (m) { return m.end_use === "incomer" && m.kind === "electricity"; }), buildings);
        if (first) meterChart(first).then(done); else { EpcChart.empty($("chart-meter"), t("noData")); done(); }
        if (contracts.length) savingsChart(contracts[0].id).then(done); else { EpcChart.empty($("chart-savings"), t("noSavings")); done(); }
        operations();
      });
    }).catch(function (e) { showLogin(e.auth ? e.message : String(e.message || e)); });
  }

  function showLogin(message) {
    $("main").hidden = true; $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("key").focus();
  }

  $("login").addEventListener("submit", function (ev) {
    ev.preventDefault();
    sessionStorage.setItem("epcmon.key", $("key").value.trim());
    load();
  });
  $("logout").addEventListener("click", function () { sessionStorage.removeItem("epcmon.key"); showLogin(""); });
  $("lang").addEventListener("click", function () {
    lang = lang === "zh" ? "en" : "zh";
    sessionStorage.setItem("epcmon.lang", lang);
    applyLang();
    if (key() && site) load();
  });
  $("meter-select").addEventListener("change", function (ev) { meterChart(ev.target.value); });
  $("contract-select").addEventListener("change", function (ev) { savingsChart(ev.target.value); });
  applyLang();
  if (key()) load(); else showLogin("");
})();
