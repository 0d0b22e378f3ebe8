// A tiny server-free SVG chart renderer (line and bar charts), vendored with the page:
// no build step, no CDN, nothing to install. Every drawn chart gets data-drawn="1".
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var W = 640, H = 240, L = 56, R = 12, T = 10, B = 28;

  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function nice(lo, hi) {
    if (!(hi > lo)) { hi = lo + 1; }
    var step = Math.pow(10, Math.floor(Math.log10((hi - lo) / 4)));
    var err = (hi - lo) / 4 / step;
    step *= err >= 5 ? 5 : err >= 2 ? 2 : 1;
    return { lo: Math.floor(lo / step) * step, hi: Math.ceil(hi / step) * step, step: step };
  }
  function fmt(v) {
    var a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
    if (a >= 100) return v.toFixed(0);
    return +v.toFixed(2) + "";
  }
  function frame(target, lo, hi) {
    var s = nice(lo, hi);
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img" });
    var y = function (v) { return T + (H - T - B) * (1 - (v - s.lo) / (s.hi - s.lo)); };
    for (var v = s.lo; v <= s.hi + s.step / 2; v += s.step) {
      svg.appendChild(el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e3e7eb" }));
      svg.appendChild(el("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#4a5663" }, fmt(v)));
    }
    target.replaceChildren(svg);
    return { svg: svg, y: y };
  }
  function xLabels(svg, labels, x) {
    var every = Math.max(1, Math.ceil(labels.length / 8));
    for (var i = 0; i < labels.length; i += every) {
      svg.appendChild(el("text", { x: x(i), y: H - 8, "text-anchor": "middle", "font-size": 11, fill: "#4a5663" }, labels[i]));
    }
  }
  function empty(target, message) {
    target.replaceChildren();
    var p = document.createElement("p");
    p.className = "empty";
    p.textContent = message;
    target.appendChild(p);
    target.dataset.drawn = "1";
  }

  // series: [{label, points: [[timeMs, value], ...], color}]; labelOf(timeMs) -> string
  function line(target, series, labelOf, emptyText) {
    var all = [];
    series.forEach(function (s) { s.points.forEach(function (p) { all.push(p); }); });
    if (!all.length) return empty(target, emptyText || "—");
    var t0 = Infinity, t1 = -Infinity, lo = Infinity, hi = -Infinity;
    all.forEach(function (p) { t0 = Math.min(t0, p[0]); t1 = Math.max(t1, p[0]); lo = Math.min(lo, p[1]); hi = Math.max(hi, p[1]); });
    var f = frame(target, Math.min(0, lo), hi);
    var x = function (t) { return L + (W - L - R) * (t1 > t0 ? (t - t0) / (t1 - t0) : 0.5); };
    series.forEach(function (s) {
      var d = s.points.map(function (p, i) { return (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + f.y(p[1]).toFixed(1); }).join("");
      f.svg.appendChild(el("path", { d: d, fill: "none", stroke: s.color || "#1f77b4", "stroke-width": 1.5, "class": "series" }));
    });
    var ticks = [];
    for (var i = 0; i <= 6; i++) ticks.push(t0 + (t1 - t0) * i / 6);
    xLabels(f.svg, ticks.map(labelOf), function (i) { return x(ticks[i]); });
    target.dataset.drawn = "1";
  }

  // labels: [string]; bars: [number]; overlay: optional [number] drawn as a line (e.g. cumulative)
  function bars(target, labels, values, overlay, emptyText) {
    if (!values.length) return empty(target, emptyText || "—");
    var all = values.concat(overlay || []);
    var f = frame(target, Math.min(0, Math.min.apply(null, all)), Math.max.apply(null, all));
    var slot = (W - L - R) / values.length;
    var x = function (i) { return L + slot * (i + 0.5); };
    values.forEach(function (v, i) {
      var top = f.y(Math.max(v, 0)), bottom = f.y(Math.min(v, 0));
      var r = el("rect", { x: x(i) - slot * 0.35, width: slot * 0.7, y: top, height: Math.max(bottom - top, 0.5), fill: v >= 0 ? "#2e7d32" : "#b3261e", "class": "bar" });
      r.appendChild(el("title", {}, labels[i] + ": " + fmt(v)));
      f.svg.appendChild(r);
    });
    if (overlay && overlay.length) {
      var d = overlay.map(function (v, i) { return (i ? "L" : "M") + x(i).toFixed(1) + " " + f.y(v).toFixed(1); }).join("");
      f.svg.appendChild(el("path", { d: d, fill: "none", stroke: "#ef6c00", "stroke-width": 2, "class": "series" }));
    }
    xLabels(f.svg, labels, x);
    target.dataset.drawn = "1";
  }

  window.EpcChart = { line: line, bars: bars, empty: empty };
})();
