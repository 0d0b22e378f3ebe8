// The portfolio page (`/` of `epcmon run --site DIR`): the sites a key may see, each with its
// consumption, intensity, avoided energy and statement status, the portfolio's totals with its
// 90 % interval (the sites' combined by root sum of squares: the API's figures, presented
// only), ranked by intensity or by savings; each site links to its own page (/sites/<id>/).
// A vendor key sees its contracts only (no building figures). <body data-ready="1"> when drawn.
(function () {
  "use strict";
  function $(id) { return document.getElementById(id); }
  function key() { return sessionStorage.getItem("epcmon.key"); }
  function api(path, params) {
    var q = params ? "?" + new URLSearchParams(params).toString() : "";
    return fetch("api/v1" + path + q, { headers: { Authorization: "Bearer " + key() } }).then(function (r) {
      if (r.ok) return path.indexOf("format=csv") >= 0 ? r.blob() : r.json();
      var e = new Error(r.status === 401 ? "密钥无效 (unknown key)" : r.status === 403 ? "无权限 (not allowed)" : r.statusText);
      e.status = r.status; throw e;
    });
  }
  function fmt(v, digits) {
    if (v === null || v === undefined || v !== v) return "—";
    return (+v.toFixed(digits) || 0).toLocaleString("zh-CN", { maximumFractionDigits: digits });
  }
  function cell(row, text, cls) {
    var td = document.createElement(row.parentNode && row.parentNode.tagName === "THEAD" ? "th" : "td");
    if (text instanceof Node) td.appendChild(text); else td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }
  function kpi(label, value) {
    var d = document.createElement("div"); d.className = "kpi";
    var v = document.createElement("b"); v.textContent = value;
    var l = document.createElement("span"); l.textContent = label;
    d.append(v, l); return d;
  }
  function params() {
    var p = {}; if ($("window").value) p.year = $("window").value; return p;
  }
  function draw(body) {
    var t = body.totals, building = t.kwh !== undefined;
    var k = $("kpis"); k.replaceChildren();
    k.appendChild(kpi("单位 (sites)", fmt(t.sites, 0)));
    if (building) {
      k.appendChild(kpi("用电 kWh (" + body.window.first + "…" + body.window.last + ")", fmt(t.kwh, 0)));
      k.appendChild(kpi("单位面积能耗 kWh/m²", fmt(t.kwh_per_m2, 1)));
    }
    k.appendChild(kpi("节能量 kWh (avoided)", fmt(t.avoided_kwh, 0) + " ± " + fmt(t.u90_kwh, 0)));
    k.appendChild(kpi("90 % 区间 (interval)", fmt(t.interval_90_kwh[0], 0) + " … " + fmt(t.interval_90_kwh[1], 0)));
    $("method").textContent = body.method;
    var order = body.ranking[$("rank").value] || body.ranking.by_savings;
    var byId = {}; body.sites.forEach(function (s) { byId[s.id] = s; });
    var seen = {}, ids = [];
    order.forEach(function (r) { ids.push(r.site); seen[r.site] = true; });
    body.sites.forEach(function (s) { if (!seen[s.id]) ids.push(s.id); });
    var table = $("sites"); table.replaceChildren();
    var head = table.createTHead().insertRow();
    ["#", "单位 (site)"].concat(building ? ["kWh", "kWh/m²"] : [], ["合同 (contracts)", "节能量 kWh", "± 90 %", "结算单 (statements)"]).forEach(function (h) { cell(head, h); });
    var tbody = table.createTBody();
    ids.forEach(function (id, i) {
      var s = byId[id], row = tbody.insertRow();
      row.dataset.site = id;
      cell(row, String(i + 1));
      var a = document.createElement("a"); a.href = "sites/" + encodeURIComponent(id) + "/"; a.textContent = s.name + " (" + id + ")";
      cell(row, a);
      if (building) { cell(row, fmt(s.kwh, 0), "num"); cell(row, fmt(s.kwh_per_m2, 1), "num"); }
      cell(row, s.contracts.map(function (c) { return c.id; }).join(", ") || "—");
      cell(row, s.contracts.length ? fmt(s.avoided_kwh, 0) : "—", "num");
      cell(row, s.contracts.length ? fmt(s.u90_kwh, 0) : "—", "num");
      cell(row, s.contracts.map(function (c) {
        return c.statements.final + " 终 / " + c.statements.provisional + " 暂" + (c.statements.unreliable ? " / " + c.statements.unreliable + " 不可靠" : "");
      }).join("; ") || "—");
    });
    document.body.dataset.ready = "1";
  }
  function load() {
    document.body.dataset.ready = "";
    return api("/portfolio", params()).then(draw, fail);
  }
  function fail(e) {
    if (e.status === 401) { logout(e.message); return; }
    $("method").textContent = e.message;
    document.body.dataset.ready = "1";
  }
  function start() {
    api("/whoami").then(function (who) {
      $("who").textContent = (who.name || who.key_id) + " · " + who.role + (who.sites && who.sites.length ? " · " + who.sites.join(", ") : "");
      $("login").hidden = true; $("main").hidden = false;
      return api("/sites").then(function (sites) {
        if (sites.length === 1 && who.role !== "vendor" && who.sites && who.sites.length === 1) {
          $("portfolio-name").textContent = sites[0].name;
        }
        return load();
      });
    }, function (e) { logout(e.message); });
  }
  function logout(message) {
    sessionStorage.removeItem("epcmon.key");
    $("main").hidden = true; $("login").hidden = false;
    $("login-error").textContent = message || "";
  }
  $("login").addEventListener("submit", function (ev) {
    ev.preventDefault();
    sessionStorage.setItem("epcmon.key", $("key").value.trim());
    start();
  });
  $("logout").addEventListener("click", function () { logout(""); });
  $("window").addEventListener("change", load);
  $("rank").addEventListener("change", load);
  $("csv").addEventListener("click", function () {
    var p = params(); p.format = "csv";
    api("/portfolio?" + new URLSearchParams(p).toString()).then(function (blob) {
      var a = document.createElement("a"); a.href = URL.createObjectURL(blob); a.download = "portfolio.csv";
      document.body.appendChild(a); a.click(); a.remove();
    }, fail);
  });
  fetch("api/v1/portfolio/info").then(function (r) { return r.ok ? r.json() : null; }).then(function (p) {
    if (p) { $("portfolio-name").textContent = p.name; document.title = p.name + " · epcmon"; }
  });
  if (key()) start(); else logout("");
})();
