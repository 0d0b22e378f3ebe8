// The monthly energy reports (月度能耗报告) for the keys that may download them (admin and
// engineer: `GET /api/v1/reports`; a viewer or vendor key never asks): the months written so
// far, newest first, each with its XLSX and PDF. The service writes them; the page only lists.
(function () {
  "use strict";
  var Epc = window.Epc, $ = Epc.$;
  var AUTHORS = ["admin", "engineer"];

  function t(k, v) { return Epc.t(k, v); }

  function button(label, month, kind) {
    var b = document.createElement("button");
    b.type = "button"; b.className = "link"; b.textContent = label;
    b.addEventListener("click", function () {
      Epc.download("/reports/" + month + "." + kind, null, "epcmon-" + Epc.site.id + "-" + month + "." + kind)
        .catch(function (e) { if (e.auth) Epc.showLogin(e.message); else b.title = e.message; });
    });
    return b;
  }

  function draw(rows) {
    var body = Epc.head($("reports"), [t("month"), t("written"), t("siteKwh"), t("downloads")]);
    $("reports-empty").hidden = rows.length > 0;
    rows.slice().reverse().forEach(function (r) {
      var tr = body.insertRow();
      tr.insertCell().textContent = r.month;
      tr.insertCell().textContent = new Date(r.generated_at).toLocaleString(Epc.locale());
      var kwh = tr.insertCell(); kwh.className = "num"; kwh.textContent = Epc.fmt(r.kwh, 0);
      var links = tr.insertCell();
      links.appendChild(button("XLSX", r.month, "xlsx"));
      links.appendChild(document.createTextNode(" "));
      links.appendChild(button("PDF", r.month, "pdf"));
    });
  }

  window.EpcReports = {
    load: function () {
      var allowed = Epc.who && AUTHORS.indexOf(Epc.who.role) >= 0;
      $("s-reports").hidden = !allowed;
      if (!allowed) return Promise.resolve();
      return Epc.api("/reports").then(draw, function (e) {
        if (e.auth) throw e;
        $("reports-empty").hidden = false; $("reports-empty").textContent = e.message;
      });
    }
  };
})();
