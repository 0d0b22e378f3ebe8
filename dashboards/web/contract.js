// The contract views, for every key that sees a contract (a vendor sees only these): the
// terms, avoided energy per month with its 90 % interval, cumulative savings against the
// guarantee, the statements with their status and downloads (CSV, the JSON record, the
// plot), and the baseline's fit statistics and findings. Only /api/v1/contracts/... is called.
(function () {
  "use strict";
  var Epc = window.Epc, $ = Epc.$;
  var state = { contracts: [], id: null, utility: "electricity", terms: null, page: 0, statements: [] };

  function t(k, v) { return Epc.t(k, v); }
  function kwh(v, unit) { return EpcChart.num(v, unit || "kWh"); }
  function pct(v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + " %"; }
  function monthStart(label) { var p = label.split("-"); return Date.UTC(+p[0], +p[1] - 1, 1) / 1000; }
  function base() { return "/contracts/" + encodeURIComponent(state.id); }
  function dl(list, rows) {
    list.replaceChildren();
    rows.forEach(function (r) {
      var dt = document.createElement("dt"); dt.textContent = r[0];
      var dd = document.createElement("dd"); dd.textContent = r[1];
      list.appendChild(dt); list.appendChild(dd);
    });
  }
  function button(text, onClick) {
    var b = document.createElement("button");
    b.type = "button"; b.className = "link"; b.textContent = text;
    b.addEventListener("click", function () { onClick().catch(function (e) { if (e.auth) Epc.showLogin(e.message); else b.title = e.message; }); });
    return b;
  }
  function blocked(e) { if (e.auth) { Epc.showLogin(e.message); throw e; } }

  function terms(asked) {
    return asked.then(function (c) {
      state.terms = c;
      var us = $("utility-select");
      us.replaceChildren();
      ["electricity"].concat(c.water_meters && c.water_meters.length ? ["water"] : []).forEach(function (u) { us.add(new Option(t(u), u)); });
      us.value = state.utility;
      us.hidden = us.options.length < 2;
      var g = c.guarantee;
      dl($("contract-terms"), [
        [t("vendor"), c.vendor],
        [t("reportingStart"), c.reporting_start + (c.reporting_end ? " – " + c.reporting_end : "")],
        [t("guarantee"), g ? kwh(g.kwh_per_year) + t("perYear") : "—"],
        [t("vendorShare"), pct(c.vendor_share)],
        [t("boundary"), (state.utility === "water" ? c.water_meters : c.meters).join(", ")],
      ]);
    });
  }

  // Avoided energy per month (months without data are gaps), and the running sum against the
  // guaranteed kWh per year accumulated by day from the reporting start.
  function savings(asked) {
    var monthly = $("chart-monthly"), cumulative = $("chart-cumulative");
    return asked.then(function (rows) {
      var used = rows.map(function (r) { return r.days_used > 0; });
      var first = used.indexOf(true), last = used.lastIndexOf(true);
      if (first < 0) { EpcChart.empty(monthly, t("noSavings")); EpcChart.empty(cumulative, t("noSavings")); return; }
      rows = rows.slice(first, last + 1);
      var unit = rows[0].unit, has = function (r) { return r.days_used > 0; };
      var x = rows.map(function (r) { return monthStart(r.period); });
      var notes = rows.map(function (r) { return r.days_used < r.days ? r.days_used + " / " + r.days + " d" : null; });
      EpcChart.time(monthly, {
        x: x, tz: "UTC", locale: Epc.locale(), xfmt: "month", unit: unit, zero: true,
        series: [{ label: t("avoided"), values: rows.map(function (r) { return has(r) ? r.avoided : null; }), kind: "bars", color: "#2e7d32", notes: notes }],
        band: {
          of: 0, label: t("band90"),
          lo: rows.map(function (r) { return has(r) && r.u90 !== null ? r.avoided - r.u90 : null; }),
          hi: rows.map(function (r) { return has(r) && r.u90 !== null ? r.avoided + r.u90 : null; }),
        },
        empty: t("noSavings"), noData: t("noData"),
      });
      var g = state.terms.guarantee, startMs = Date.parse(state.terms.reporting_start + "T00:00:00Z");
      var series = [{ label: t("cumulativeLine"), values: rows.map(function (r) { return has(r) ? r.cumulative : null; }), color: "#1f4e79" }];
      if (g && state.utility === "electricity") {
        series.push({
          label: t("guaranteedLine"), kind: "dashed", color: "#b3261e",
          values: rows.map(function (r) { return g.kwh_per_year * (Date.parse(r.end + "T00:00:00Z") - startMs) / 86400000 / 365; }),
        });
      }
      EpcChart.time(cumulative, {
        x: x, tz: "UTC", locale: Epc.locale(), xfmt: "month", unit: unit, zero: true, series: series,
        empty: t("noSavings"), noData: t("noData"),
      });
    }).catch(function (e) { blocked(e); EpcChart.empty(monthly, t("noSavings") + " (" + e.message + ")"); EpcChart.empty(cumulative, t("noSavings")); });
  }

  function statusText(s) {
    if (s.status === "final") return t("final") + " · " + t("version", { n: s.version });
    if (s.status === "provisional") return t("provisional");
    return s.status;
  }
  function statementRows() {
    var table = $("statements");
    Epc.head(table, [t("month"), t("status"), t("avoided"), t("written"), t("downloads")]);
    state.page = Epc.pager(table, $("statements-info"), $("statements-pager"), state.statements, 12, state.page, function (row, s) {
      var file = state.id + "-" + s.month + (state.utility === "water" ? "-water" : "");
      var path = base() + "/statements/" + s.month, q = { utility: state.utility };
      Epc.cell(row, s.month, "nowrap");
      Epc.cell(row, statusText(s), "status status-" + String(s.status).split(":")[0]);
      Epc.cell(row, kwh(s.avoided, state.utility === "water" ? "m³" : "kWh"), "num");
      Epc.cell(row, s.created_at ? new Date(s.created_at).toLocaleDateString(Epc.locale()) : "—");
      var links = Epc.cell(row, "", "downloads");
      links.appendChild(button("CSV", function () { return Epc.download(path, { utility: state.utility, format: "csv" }, file + ".csv"); }));
      links.appendChild(button("JSON", function () { return Epc.download(path, q, file + ".json"); }));
      links.appendChild(button("PNG", function () { return Epc.download(path + "/plot.png", q, file + ".png"); }));
    }, function (page) { state.page = page; statementRows(); });
  }
  // The newest statement's guarantee figures (the contract year to date), as processing wrote them.
  function guarantee(newest) {
    var box = $("guarantee-status");
    box.replaceChildren();
    if (!newest) return Promise.resolve();
    return Epc.api(base() + "/statements/" + newest.month, { utility: state.utility }).then(function (s) {
      var g = s.numbers && s.numbers.guarantee;
      var items = [[t("latestStatement"), s.month + " · " + statusText({ status: s.status, version: newest.version })]];
      if (g) {
        items.push([t("contractYear", { n: g.contract_year }), g.year_start + " – " + g.year_end]);
        items.push([t("achieved"), kwh(g.achieved_kwh)]);
        items.push([t("proRata"), kwh(g.pro_rata_kwh)]);
        items.push([t("shortfall"), kwh(g.shortfall_kwh) + " · " + t(g.shortfall_kwh > 0 ? "guaranteeShort" : "guaranteeMet")]);
      }
      items.forEach(function (i) {
        var d = document.createElement("div"); d.className = "kpi";
        var b = document.createElement("b"); b.textContent = i[1]; d.appendChild(b);
        d.appendChild(document.createTextNode(i[0])); box.appendChild(d);
      });
    });
  }
  function statements() {
    return Epc.api(base() + "/statements", { utility: state.utility }).then(function (rows) {
      state.statements = rows.slice().sort(function (a, b) { return a.month < b.month ? 1 : -1; });
      state.page = 0;
      statementRows();
      $("statements-empty").hidden = rows.length > 0;
      return guarantee(state.statements[0]);
    }).catch(function (e) { blocked(e); $("statements-info").textContent = e.message; });
  }

  function baseline() {
    var list = $("baseline-stats"), table = $("findings");
    return Epc.api(base() + "/baseline", { utility: state.utility }).then(function (b) {
      var st = (b.model && b.model.stats) || {};
      var fit = (b.findings || []).filter(function (f) { return f.code === "fit_limits"; })[0];
      var v = function (k) { return st[k] !== undefined ? st[k] : fit && fit.values ? fit.values[k] : undefined; };
      var n = function (x, d) { return x === undefined || x === null ? "—" : (+x).toFixed(d); };
      dl(list, [
        [t("model"), b.model ? b.model.model + (b.model.segments ? " (" + b.model.segments.map(function (s) { return s.name + " " + s.form; }).join(", ") + ")" : "") : "—"],
        [t("period"), b.start + " – " + b.end],
        ["CV(RMSE)", pct(v("cvrmse"))],
        ["NMBE", v("nmbe") === undefined ? "—" : (v("nmbe") * 100).toFixed(2) + " %"],
        ["R²", n(v("r2"), 3)],
        ["n / p", n(v("n"), 0) + " / " + n(v("p"), 0)],
        ["n′", n(st.n_eff, 1)],
        [t("fitted"), b.fitted_at ? new Date(b.fitted_at).toLocaleString(Epc.locale()) : "—"],
      ]);
      var body = Epc.head(table, [t("severity"), t("findings"), t("clause")]);
      (b.findings || []).forEach(function (f) {
        var row = body.insertRow();
        Epc.cell(row, f.severity, "sev sev-" + f.severity);
        Epc.cell(row, f.message);
        Epc.cell(row, f.clause || "");
      });
    }).catch(function (e) { blocked(e); dl(list, [[t("baseline"), t("noBaseline") + " (" + e.message + ")"]]); table.replaceChildren(); });
  }

  function show() {  // every request at once; the charts wait for the terms (the guarantee)
    var asked = Epc.api(base() + "/savings", { period: "month", utility: state.utility });
    asked.catch(function () {});  // handled in savings()
    return Promise.all([
      terms(Epc.api(base())).then(function () { return savings(asked); }, function (e) {
        blocked(e);
        EpcChart.empty($("chart-monthly"), e.message);
        EpcChart.empty($("chart-cumulative"), e.message);
      }),
      statements(),
      baseline(),
    ]).catch(blocked);
  }

  function load(contracts) {
    state.contracts = contracts;
    if (!contracts.some(function (c) { return c.id === state.id; })) state.id = contracts[0].id;
    var select = $("contract-select");
    select.replaceChildren();
    contracts.forEach(function (c) { select.add(new Option(c.id + " " + c.name, c.id)); });
    select.value = state.id;
    return show();
  }

  $("contract-select").addEventListener("change", function (ev) { state.id = ev.target.value; state.utility = "electricity"; show(); });
  $("utility-select").addEventListener("change", function (ev) { state.utility = ev.target.value; show(); });
  $("savings-csv").addEventListener("click", function () {
    Epc.download(base() + "/savings", { period: "month", utility: state.utility, format: "csv" }, state.id + "-savings-month.csv").catch(blocked);
  });
  window.EpcContract = { load: load };
})();
