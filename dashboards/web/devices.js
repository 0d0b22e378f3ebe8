// Devices nobody configured (`GET /api/v1/devices/unconfigured`): what arrives over MQTT from
// devices no meter of the site file claims, for an installer to adopt, as Home Assistant lists
// discovered devices. The building's keys only (a vendor's page never asks); read-only: the
// site file is edited on the server, and the suggested snippet is a starting point to check.
(function () {
  "use strict";
  var Epc = window.Epc, $ = Epc.$;
  var SHOWN = 120;  // payload characters in the row; the whole (4 KiB at most) when opened

  function t(k, v) { return Epc.t(k, v); }
  function when(iso) { return new Date(iso).toLocaleString(Epc.locale()); }

  function folded(summary, text, cls) {
    var d = document.createElement("details");
    var s = document.createElement("summary"); s.textContent = summary; d.appendChild(s);
    var pre = document.createElement("pre"); pre.className = cls; pre.textContent = text; d.appendChild(pre);
    return d;
  }

  function payloadCell(row, d) {
    var c = row.insertCell(); c.className = "payload";
    var text = d.last_payload !== null ? d.last_payload : "base64: " + d.last_payload_b64;
    if (d.truncated) text += " …(" + t("payloadBytes", { n: d.payload_bytes }) + ")";
    if (text.length <= SHOWN) { var code = document.createElement("code"); code.textContent = text; c.appendChild(code); }
    else c.appendChild(folded(text.slice(0, SHOWN) + "…", text, "payload"));
    c.title = d.reason;
  }

  function draw(rows) {
    var body = Epc.head($("devices"), [t("colTopic"), t("colWouldBe"), t("colCount"), t("firstSeen"), t("seenLast"), t("colPayload"), t("suggestion")]);
    $("devices-empty").hidden = rows.length > 0;
    rows.forEach(function (d) {
      var tr = body.insertRow();
      var topic = tr.insertCell(); var code = document.createElement("code"); code.textContent = d.topic; topic.appendChild(code);
      Epc.cell(tr, d.meter ? d.meter + (d.route ? " (" + d.route + ")" : "") : "–");
      Epc.cell(tr, Epc.fmt(d.count, 0), "num");
      Epc.cell(tr, when(d.first_seen));
      Epc.cell(tr, when(d.last_seen));
      payloadCell(tr, d);
      var s = tr.insertCell();
      if (d.suggestion) s.appendChild(folded(t("showSnippet"), d.suggestion, "snippet"));
      else s.textContent = "–";
    });
  }

  window.EpcDevices = {
    load: function () {
      return Epc.api("/devices/unconfigured").then(draw, function (e) {
        if (e.auth) throw e;
        $("devices-empty").hidden = false; $("devices-empty").textContent = e.message;
      });
    }
  };
})();
