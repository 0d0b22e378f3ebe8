// Energy-use intensity against the standards, for the building's roles: the site's and each
// building's kWh/m²·a, kWh/person·a, kgce and water per person over the 12 months through a
// month (`GET /api/v1/intensity`), and each target of the site file (GB/T 51161's constraint
// and guide values, the 公共机构 quotas) with the status of every figure it applies to, its
// source, and whether it is provisional (unverified). The window's gaps are said, not hidden:
// an incomplete window's figures are sums over the months with data, not scaled to a year.
(function () {
  "use strict";
  var Epc = window.Epc, $ = Epc.$;
  var gen = 0;
  var UNITS = {
    kwh_per_m2: "kWh/m²·a", kwh_per_person: "unitKwhPerson", kgce_per_m2: "kgce/m²·a",
    kgce_per_person: "unitKgcePerson", water_m3_per_person: "unitWaterPerson", water_m3_per_m2: "m³/m²·a",
  };
  var COLUMNS = ["kwh_per_m2", "kwh_per_person", "kgce_per_m2", "kgce_per_person", "water_m3_per_person"];

  function t(k, v) { return Epc.t(k, v); }
  function unit(metric) { var u = UNITS[metric]; return u.indexOf("unit") === 0 ? t(u) : u; }
  function value(v) { return Epc.fmt(v, v !== null && Math.abs(v) < 10 ? 2 : 1); }
  function name(b) { return Epc.lang === "zh" ? b.name : b.name_en || b.name; }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function figures(doc) {
    var heads = [t("scope"), t("floorArea") + " m²", t("staff")].concat(COLUMNS.map(unit)).concat([t("ytd") + " kWh/m²"]);
    var body = Epc.head($("intensity"), heads);
    [[t("site"), doc.site]].concat(doc.buildings.map(function (b) { return [name(b), b]; })).forEach(function (r) {
      var row = body.insertRow(), f = r[1];
      Epc.cell(row, r[0]);
      Epc.cell(row, Epc.fmt(f.floor_area_m2, 0), "num");
      Epc.cell(row, String(f.staff), "num");
      COLUMNS.forEach(function (m) { Epc.cell(row, value(f[m]), "num"); });
      Epc.cell(row, value(f.year_to_date.kwh_per_m2), "num");
    });
  }

  // A bar from 0 to the figure, with the guide and constraint values marked on the same scale.
  function gauge(v, target) {
    var g = el("span", "gauge"), top = Math.max(target.constraint || 0, target.guide || 0, v || 0) * 1.1 || 1;
    var bar = el("span", "bar");
    bar.style.width = Math.max(0, Math.min(100, (v || 0) / top * 100)) + "%";
    g.appendChild(bar);
    ["guide", "constraint"].forEach(function (k) {
      if (target[k] === null) return;
      var mark = el("span", "mark mark-" + k);
      mark.style.left = target[k] / top * 100 + "%";
      mark.title = t(k) + " " + Epc.fmt(target[k], 2);
      g.appendChild(mark);
    });
    return g;
  }
  function check(scope, label, c, target) {
    var row = el("div", "check status-" + c.status);
    row.dataset.scope = scope;
    row.appendChild(el("span", "scope", label));
    row.appendChild(gauge(c.value, target));
    row.appendChild(el("span", "value", value(c.value)));
    row.appendChild(el("span", "state", t("st_" + c.status)));
    return row;
  }
  function targets(doc) {
    var box = $("targets"), names = {};
    doc.buildings.forEach(function (b) { names[b.id] = name(b); });
    box.replaceChildren();
    doc.targets.forEach(function (target) {
      var div = el("div", "target");
      div.dataset.id = target.id;
      var h = el("h3", "", t("metric_" + target.metric) + " · " + unit(target.metric) + " ");
      h.appendChild(el("small", "", target.id));
      if (target.provisional) {
        var mark = el("span", "provisional badge", t("unverified"));
        mark.title = t("unverifiedTitle");
        h.appendChild(document.createTextNode(" "));
        h.appendChild(mark);
      }
      div.appendChild(h);
      var limits = { constraint: target.constraint === null ? "—" : Epc.fmt(target.constraint, 2), guide: target.guide === null ? "—" : Epc.fmt(target.guide, 2), unit: unit(target.metric) };
      div.appendChild(Epc.fill(el("p", "limits"), t(target.guide === null ? "limitsConstraint" : "limits"), limits));
      if (target.site) div.appendChild(check("site", t("site"), target.site, target));
      Object.keys(target.buildings || {}).forEach(function (id) { div.appendChild(check(id, names[id] || id, target.buildings[id], target)); });
      div.appendChild(el("p", "source", t("source") + ": " + target.source));
      box.appendChild(div);
    });
  }

  function render(doc) {
    var w = doc.window;
    var text = t("window", { first: w.first, last: w.last, months: w.months, n: w.months_with_data });
    if (!w.complete) text += t("windowIncomplete");
    text += t("ytdWindow", { first: doc.year_to_date.first, last: doc.year_to_date.last });
    $("intensity-window").textContent = text;
    $("intensity-provisional").hidden = !doc.provisional;
    $("intensity-provisional").title = t(w.complete ? "provisionalTargets" : "provisionalWindow");
    figures(doc);
    targets(doc);
    $("intensity-note").textContent = t("intensityNote", { kwh: Epc.fmt(doc.unallocated.kwh, 0), m3: Epc.fmt(doc.unallocated.water_m3, 0), k: doc.kgce_per_kwh });
  }

  // The 12 months through `through` (YYYY-MM); the newest request wins.
  function show(through) {
    var g = ++gen;
    return Epc.api("/intensity", { month: through }).then(function (doc) {
      if (g !== gen) return;
      render(doc);
      $("s-intensity").dataset.shown = through;
    }, function (e) {
      if (e.auth) { Epc.showLogin(e.message); throw e; }
      if (g !== gen) return;
      $("intensity-window").textContent = e.message;
      $("intensity").replaceChildren(); $("targets").replaceChildren();
    });
  }
  window.EpcIntensity = { show: show };
})();
