// The department bills (分户计量与费用分摊), for the building's roles (never a vendor): a month
// (the last closed one by default; the running one is provisional), every department ranked
// with kWh (own + apportioned), CNY (by time-of-use period on hover and in the expanded row),
// kWh/m², kWh/person and water, sortable by each column and paged; the pools, the unallocated
// remainder and the reconciliation (departments + remainder = incomers); the API's CSV. The
// figures are the API's (`GET /api/v1/bills`): the page only presents them. The month chosen
// is kept in the tab (sessionStorage) and drives the energy intensity (intensity.js).
(function () {
  "use strict";
  var Epc = window.Epc, $ = Epc.$;
  var PAGE = 20, MONTHS_BACK = 36, PERIODS = ["sharp", "peak", "flat", "valley"];
  var state = { month: null, doc: null, sort: { key: "rank", dir: 1 }, page: 0, open: {}, gen: 0, buildings: null };

  function t(k, v) { return Epc.t(k, v); }
  function fmt(v, d) { return Epc.fmt(v, d === undefined ? 1 : d); }
  function money(v) { return Epc.fmt(v, 2, 2); }
  function unit(u) { return u === "m3" ? "m³" : u; }
  function sum(o) { var s = 0; for (var k in o) s += o[k]; return s; }
  function name(r) { return Epc.lang === "zh" ? r.name : r.name_en || r.name; }
  function buildingName(id) {
    if (id === null || id === undefined) return t("siteWide");
    var b = state.buildings && state.buildings[id];
    return b ? (Epc.lang === "zh" ? b.name : b.name_en || b.name) : id;
  }
  function poolName(id) {
    var p = (state.doc.pools || []).filter(function (x) { return x.id === id; })[0];
    return p ? (Epc.lang === "zh" ? p.name : p.id) : id;
  }

  // -- months in the site's zone ------------------------------------------------------------------
  function shift(month, n) {
    var p = month.split("-"), i = +p[0] * 12 + (+p[1] - 1) + n;
    return Math.floor(i / 12) + "-" + String(i % 12 + 1).padStart(2, "0");
  }
  function running() {
    var p = {};
    new Intl.DateTimeFormat("en-US", { timeZone: Epc.site.timezone, year: "numeric", month: "numeric" })
      .formatToParts(new Date()).forEach(function (x) { p[x.type] = x.value; });
    return p.year + "-" + String(p.month).padStart(2, "0");
  }
  function options() {
    var now = running(), select = $("bills-month"), oldest = shift(now, -MONTHS_BACK);
    if (state.month < oldest) oldest = state.month;
    select.replaceChildren();
    for (var m = now; m >= oldest; m = shift(m, -1)) {
      select.add(new Option(m === now ? t("monthRunning", { m: m }) : m, m));
    }
    select.value = state.month;
    select.setAttribute("aria-label", t("month"));
    [["bills-prev", "prevMonth"], ["bills-next", "nextMonth"]].forEach(function (b) {
      $(b[0]).title = t(b[1]); $(b[0]).setAttribute("aria-label", t(b[1]));
    });
    $("bills-next").disabled = state.month >= now;
  }

  // -- the ranking: columns, sorting, paging, a row's detail ---------------------------------------
  var COLUMNS = [
    { key: "rank", label: "colRank", asc: true, d: 0 },
    { key: "name", label: "colDepartment", asc: true, text: true, value: name },
    { key: "kwh", label: "colKwh" },
    { key: "kwh_own", label: "colOwn" },
    { key: "kwh_shared", label: "colShared", value: function (r) { return sum(r.kwh_apportioned); } },
    { key: "cny_electricity", label: "colCnyElectricity", money: true },
    { key: "kwh_per_m2", label: "colPerM2", d: 2 },
    { key: "kwh_per_person", label: "colPerPerson" },
    { key: "water_m3", label: "colWater" },
    { key: "cny", label: "colCny", money: true },
  ];
  COLUMNS.forEach(function (c) { if (!c.value) c.value = function (r) { return r[c.key]; }; });
  function column(key) { return COLUMNS.filter(function (c) { return c.key === key; })[0]; }

  function sorted() {
    var col = column(state.sort.key), dir = state.sort.dir, locale = Epc.locale();
    var none = function (v) { return v === null || v === undefined; };
    return state.doc.rows.slice().sort(function (a, b) {
      var x = col.value(a), y = col.value(b);
      if (none(x) || none(y)) return none(x) === none(y) ? a.rank - b.rank : none(x) ? 1 : -1;
      var c = col.text ? x.localeCompare(y, locale) : x - y;
      return c ? c * dir : a.rank - b.rank;
    });
  }
  function header(table) {
    table.replaceChildren();
    var row = table.createTHead().insertRow();
    COLUMNS.forEach(function (c) {
      var th = document.createElement("th");
      th.dataset.key = c.key;
      if (state.sort.key === c.key) th.setAttribute("aria-sort", state.sort.dir > 0 ? "ascending" : "descending");
      var b = document.createElement("button");
      b.type = "button"; b.className = "sort"; b.dataset.sort = c.key; b.textContent = t(c.label);
      b.addEventListener("click", function () {
        state.sort = state.sort.key === c.key ? { key: c.key, dir: -state.sort.dir } : { key: c.key, dir: c.asc ? 1 : -1 };
        state.page = 0;
        ranking();
      });
      th.appendChild(b);
      if (!c.text) th.className = "num";
      row.appendChild(th);
    });
    return table.createTBody();
  }
  function periodsTitle(r) {
    return PERIODS.map(function (p) {
      return t("period_" + p) + " " + money(r.cny_by_period ? r.cny_by_period[p] : null) + " " + t("yuan") + " · " + fmt(r.kwh_by_period[p]) + " kWh";
    }).join("\n");
  }
  function small(cls, heads, rows) {
    var table = document.createElement("table");
    table.className = cls;
    var body = Epc.head(table, heads);
    rows.forEach(function (cells) {
      var row = body.insertRow();
      cells.forEach(function (c, i) { Epc.cell(row, c, i ? "num" : ""); });
    });
    return table;
  }
  function detail(row, r) {
    var cell = row.insertCell();
    cell.colSpan = COLUMNS.length;
    var box = document.createElement("div");
    box.className = "detail-box";
    box.appendChild(small("periods", [t("touPeriod"), "kWh", t("yuan")], PERIODS.map(function (p) {
      return [t("period_" + p), fmt(r.kwh_by_period[p]), money(r.cny_by_period ? r.cny_by_period[p] : null)];
    })));
    var shares = [[t("ownMeters") + " (" + r.meters.join(", ") + ")", fmt(r.kwh_own)]];
    Object.keys(r.kwh_apportioned).forEach(function (p) { shares.push([poolName(p), fmt(r.kwh_apportioned[p])]); });
    shares.push([t("total"), fmt(r.kwh)]);
    box.appendChild(small("shares", [t("electricityShares"), "kWh"], shares));
    var water = [[t("ownMeters"), fmt(r.water_m3_own)]];
    Object.keys(r.water_m3_apportioned).forEach(function (p) { water.push([poolName(p), fmt(r.water_m3_apportioned[p])]); });
    water.push([t("total"), fmt(r.water_m3) + " m³ · " + money(r.cny_water) + " " + t("yuan")]);
    box.appendChild(small("shares", [t("waterShares"), "m³"], water));
    var facts = document.createElement("dl");
    facts.className = "terms";
    [[t("building"), buildingName(r.building)], [t("floorArea"), fmt(r.floor_area_m2, 0) + " m²"], [t("staff"), String(r.staff)]].forEach(function (f) {
      var dt = document.createElement("dt"); dt.textContent = f[0];
      var dd = document.createElement("dd"); dd.textContent = f[1];
      facts.appendChild(dt); facts.appendChild(dd);
    });
    box.appendChild(facts);
    cell.appendChild(box);
  }
  function ranking() {
    var table = $("bills");
    header(table);
    state.page = Epc.pager(table, $("bills-info"), $("bills-pager"), sorted(), PAGE, state.page, function (row, r) {
      row.dataset.tenant = r.tenant;
      COLUMNS.forEach(function (c) {
        if (c.key === "name") {
          var cell = row.insertCell(), b = document.createElement("button");
          b.type = "button"; b.className = "link expand"; b.textContent = name(r);
          b.title = buildingName(r.building);
          b.setAttribute("aria-expanded", String(!!state.open[r.tenant]));
          b.addEventListener("click", function () { state.open[r.tenant] = !state.open[r.tenant]; ranking(); });
          cell.appendChild(b);
          return;
        }
        var v = c.value(r), cell2 = Epc.cell(row, c.money ? money(v) : fmt(v, c.d), "num");
        if (c.key === "cny_electricity") cell2.title = periodsTitle(r);
      });
      if (state.open[r.tenant]) {
        var more = row.parentNode.insertRow();
        more.className = "detail";
        detail(more, r);
      }
    }, function (page) { state.page = page; ranking(); });
  }

  // -- the pools, the remainder, the reconciliation -------------------------------------------------
  function pools(doc) {
    var body = Epc.head($("pools"), [t("pool"), t("building"), t("rule"), t("amount"), t("yuan"), t("allocated"), t("unallocated"), t("recipients")]);
    $("pools").querySelectorAll("th").forEach(function (th, i) { if (i >= 3) th.className = "num"; });
    doc.pools.forEach(function (p) {
      var row = body.insertRow();
      Epc.cell(row, Epc.lang === "zh" ? p.name : p.id).title = p.meters.join(", ");
      Epc.cell(row, buildingName(p.building));
      Epc.cell(row, t("rule_" + p.rule));
      Epc.cell(row, fmt(p.quantity) + " " + unit(p.unit), "num");
      Epc.cell(row, money(p.cny), "num");
      Epc.cell(row, fmt(p.allocated), "num");
      var left = Epc.cell(row, fmt(p.unallocated), "num");
      if (p.reason) left.title = p.reason;
      Epc.cell(row, String(p.recipients), "num");
    });
  }
  function remainder(doc) {
    var box = $("remainder"), u = doc.unallocated;
    box.replaceChildren();
    box.appendChild(Epc.fill(document.createElement("p"), t("remainderLine"), {
      kwh: fmt(u.kwh), cny_electricity: money(u.cny_electricity), m3: fmt(u.water_m3), cny_water: money(u.cny_water),
    }));
    var list = document.createElement("ul");
    u.electricity.concat(u.water).forEach(function (item) {
      var li = document.createElement("li"), water = u.water.indexOf(item) >= 0;
      var what = item.source === "pool" ? poolName(item.id) + (Epc.lang === "zh" ? " (" + item.id + ")" : "") : t("meterItem", { id: item.id });
      li.textContent = what + ": " + fmt(item.quantity) + (water ? " m³" : " kWh") + ", " + money(item.cny) + " " + t("yuan") + (item.reason ? " · " + item.reason : "");
      list.appendChild(li);
    });
    box.appendChild(list);
  }
  function reconciliation(doc) {
    var box = $("reconciliation");
    box.replaceChildren();
    ["electricity", "water"].forEach(function (utility) {
      var r = doc.reconciliation[utility], div = document.createElement("div");
      div.className = "recon"; div.dataset.utility = utility;
      var ok = Math.abs(r.difference) < 0.0005, mark = document.createElement("span");
      mark.className = ok ? "ok" : "error"; mark.textContent = ok ? "✓" : "✗";
      div.appendChild(Epc.fill(document.createElement("p"), t("reconLine"), {
        utility: t(utility), own: fmt(r.departments_own), apportioned: fmt(r.apportioned), unallocated: fmt(r.unallocated),
        sum: fmt(r.departments_own + r.apportioned + r.unallocated), unit: unit(r.unit),
        meters: t(utility === "electricity" ? "incomers" : "mains") + " (" + r.meters.join(", ") + ")",
        measured: fmt(r.measured), difference: fmt(r.difference, 3), mark: mark,
      }));
      if (r.cny) {
        div.appendChild(Epc.fill(document.createElement("p"), t("reconMoney"), {
          cny_departments: money(r.cny.departments), cny_unallocated: money(r.cny.unallocated),
          cny_measured: money(r.cny.measured), cny_difference: money(r.cny.difference),
        }));
      }
      box.appendChild(div);
    });
  }

  function render() {
    var doc = state.doc, s = doc.site;
    var status = $("bills-status");
    status.className = "status status-" + doc.status;
    status.textContent = doc.status === "final" ? t("final")
      : doc.through ? t("provisionalThrough", { at: new Date(doc.through).toLocaleString(Epc.locale(), { timeZone: Epc.site.timezone, dateStyle: "short", timeStyle: "short" }) })
        : t("provisionalNoData");
    var notes = [];
    if (!doc.through) notes.push(t("billsNoData"));
    if (!doc.priced) notes.push(t("unpriced"));
    $("bills-note").textContent = notes.join(" ");
    $("bills-note").hidden = !notes.length;
    $("bills-csv").hidden = false;
    var kpis = $("bills-kpis");
    kpis.replaceChildren();
    [[String(doc.rows.length), t("departments")], [fmt(s.kwh, 0) + " kWh", t("siteKwh")], [fmt(s.water_m3, 0) + " m³", t("siteWater")],
      [money(s.cny) + " " + t("yuan"), t("siteCny")], [fmt(s.kwh_per_m2, 2), "kWh/m²"], [fmt(s.kwh_per_person), t("colPerPerson")]].forEach(function (k) {
      var d = document.createElement("div"); d.className = "kpi";
      var b = document.createElement("b"); b.textContent = k[0]; d.appendChild(b);
      d.appendChild(document.createTextNode(k[1])); kpis.appendChild(d);
    });
    ranking();
    pools(doc);
    remainder(doc);
    reconciliation(doc);
  }
  function failed(e) {
    if (e.auth) { Epc.showLogin(e.message); throw e; }
    state.doc = null;
    if (Epc.site && state.month) options();
    $("bills-status").className = "status error";
    $("bills-status").textContent = e.message;
    $("bills-csv").hidden = true;
    ["bills", "pools"].forEach(function (id) { $(id).replaceChildren(); });
    ["bills-kpis", "bills-info", "bills-pager", "remainder", "reconciliation"].forEach(function (id) { $(id).replaceChildren(); });
  }

  // One month's bills, then the intensity through it (through the month before while it runs,
  // as the API's own site.intensity: already computed with the bills, so no second wait).
  // No month chosen yet: the API's default, the last closed month in the site's zone. `site`
  // resolves once Epc.site is known (the month list needs its time zone).
  function show(site) {
    var month = state.month, gen = ++state.gen;
    if (month && Epc.site) options();
    var names = state.buildings ? null : Epc.api("/buildings").then(function (list) {
      state.buildings = {};
      list.forEach(function (b) { state.buildings[b.id] = b; });
    });
    return Promise.all([Epc.api("/bills", month ? { month: month } : null), names, site]).then(function (r) {
      if (gen !== state.gen) return;
      var doc = r[0];
      state.month = doc.month; state.doc = doc; state.page = 0; state.open = {};
      sessionStorage.setItem("epcmon.billsMonth", doc.month);
      options();
      render();
      $("s-bills").dataset.shown = doc.month;
      return EpcIntensity.show(doc.status === "provisional" ? shift(doc.month, -1) : doc.month);
    }, function (e) { if (gen === state.gen) failed(e); });
  }

  function load(site) {
    var kept = sessionStorage.getItem("epcmon.billsMonth");
    if (!state.month && kept && /^\d{4}-\d{2}$/.test(kept)) state.month = kept;
    return show(site);
  }

  function go(month) { state.month = month; show(); }
  $("bills-month").addEventListener("change", function (ev) { go(ev.target.value); });
  $("bills-prev").addEventListener("click", function () { go(shift(state.month, -1)); });
  $("bills-next").addEventListener("click", function () { if (state.month < running()) go(shift(state.month, 1)); });
  $("bills-csv").addEventListener("click", function () {
    Epc.download("/bills", { month: state.month, format: "csv" }, "bills-" + Epc.site.id + "-" + state.month + ".csv").catch(function (e) {
      if (e.auth) Epc.showLogin(e.message); else $("bills-csv").title = e.message;
    });
  });
  window.EpcBills = { load: load };
})();
