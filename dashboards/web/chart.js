// Charts for the built-in page, drawn by the vendored uPlot (static/vendor/uplot-*/): time on
// x, nulls drawn as gaps (never bridged), bars or lines, an optional band drawn as whiskers
// (the 90 % interval), a tooltip, uPlot's legend (click a name to hide it) and drag-to-zoom
// (double-click resets). Every drawn chart gets data-drawn="1"; `EpcChart.data(id)` returns
// what it drew (the browser test checks the gaps there).
(function () {
  "use strict";
  var charts = {};
  var COLORS = ["#1f77b4", "#ef6c00", "#2e7d32", "#8e24aa", "#00838f", "#6d4c41"];
  var formatters = {};

  function formatter(locale, tz, kind) {
    var key = locale + "|" + tz + "|" + kind;
    if (!formatters[key]) {
      var o = { timeZone: tz, hourCycle: "h23" };
      if (kind === "day") { o.month = "2-digit"; o.day = "2-digit"; }
      else if (kind === "hour") { o.month = "2-digit"; o.day = "2-digit"; o.hour = "2-digit"; o.minute = "2-digit"; }
      else { o.hour = "2-digit"; o.minute = "2-digit"; }
      formatters[key] = new Intl.DateTimeFormat(locale, o);
    }
    return formatters[key];
  }
  function timeText(sec, opts, kind) {
    kind = kind || opts.xfmt || "day";
    if (kind === "month") {  // YYYY-MM in both languages: short, and what statements are called
      var d = new Date(sec * 1000);
      return d.getUTCFullYear() + "-" + String(d.getUTCMonth() + 1).padStart(2, "0");
    }
    return formatter(opts.locale || "en-GB", opts.tz || "UTC", kind).format(new Date(sec * 1000));
  }
  function num(v, unit) {
    if (v === null || v === undefined || v !== v) return "—";
    var a = Math.abs(v);
    var s = a >= 100 ? Math.round(v).toLocaleString() : a >= 1 ? v.toFixed(1) : v.toPrecision(2);
    return unit ? s + " " + unit : s;
  }
  function compact(v) {
    var a = Math.abs(v);
    if (a >= 1e6) return +(v / 1e6).toFixed(2) + "M";
    if (a >= 1e4) return +(v / 1e3).toFixed(1) + "k";
    return +v.toFixed(a >= 10 ? 0 : 2) + "";
  }
  function empty(target, message) {
    destroy(target);
    var p = document.createElement("p");
    p.className = "empty";
    p.textContent = message;
    target.replaceChildren(p);
    target.dataset.drawn = "1";
  }
  function destroy(target) {
    var old = charts[target.id];
    if (old) { old.observer.disconnect(); old.plot.destroy(); delete charts[target.id]; }
  }

  // The tooltip: the time and every visible series' value at the cursor, kept inside the plot.
  function tooltip(opts) {
    var box;
    return {
      hooks: {
        init: function (u) {
          box = document.createElement("div");
          box.className = "tip";
          box.hidden = true;
          u.over.appendChild(box);
          u.over.addEventListener("mouseleave", function () { box.hidden = true; });
        },
        setCursor: function (u) {
          var i = u.cursor.idx;
          if (i === null || i === undefined || u.cursor.left < 0) { box.hidden = true; return; }
          var lines = [timeText(u.data[0][i], opts, opts.tipfmt)];
          u.series.forEach(function (s, k) {
            if (k === 0 || !s.show) return;
            var spec = opts.series[k - 1];
            var v = u.data[k][i];
            if ((v === null || v === undefined) && spec.skipNull) return;
            var text = s.label + ": " + (v === null || v === undefined ? opts.noData || "—" : num(v, opts.unit));
            if (opts.band && opts.band.of === k - 1 && opts.band.lo[i] !== null && v !== null) {
              text += " (" + opts.band.label + " " + num(opts.band.lo[i]) + " … " + num(opts.band.hi[i]) + ")";
            }
            if (spec.notes && spec.notes[i]) text += " · " + spec.notes[i];
            lines.push(text);
          });
          box.replaceChildren();
          lines.forEach(function (l, n) {
            var d = document.createElement(n ? "div" : "b");
            d.textContent = l;
            box.appendChild(d);
          });
          box.hidden = false;
          var w = box.offsetWidth, h = box.offsetHeight, W = u.over.clientWidth;
          var left = u.cursor.left + 12;
          if (left + w > W) left = Math.max(0, u.cursor.left - w - 12);
          box.style.left = left + "px";
          box.style.top = Math.max(0, Math.min(u.cursor.top - h / 2, u.over.clientHeight - h)) + "px";
        },
      },
    };
  }

  // The band's whiskers (e.g. avoided energy ± its 90 % uncertainty), drawn over the bars.
  function whiskers(band) {
    return {
      hooks: {
        draw: function (u) {
          var ctx = u.ctx, r = devicePixelRatio || 1;
          ctx.save();
          ctx.beginPath();
          ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
          ctx.clip();
          ctx.strokeStyle = "#263238";
          ctx.lineWidth = 1.5 * r;
          ctx.beginPath();
          u.data[0].forEach(function (x, i) {
            var lo = band.lo[i], hi = band.hi[i];
            if (lo === null || hi === null || lo === undefined) return;
            var cx = u.valToPos(x, "x", true), y0 = u.valToPos(lo, "y", true), y1 = u.valToPos(hi, "y", true);
            ctx.moveTo(cx, y0); ctx.lineTo(cx, y1);
            ctx.moveTo(cx - 4 * r, y0); ctx.lineTo(cx + 4 * r, y0);
            ctx.moveTo(cx - 4 * r, y1); ctx.lineTo(cx + 4 * r, y1);
          });
          ctx.stroke();
          ctx.restore();
        },
      },
    };
  }

  function range(values, zero) {
    var lo = Infinity, hi = -Infinity;
    values.forEach(function (arr) { arr.forEach(function (v) { if (v !== null && v !== undefined && v === v) { lo = Math.min(lo, v); hi = Math.max(hi, v); } }); });
    if (lo === Infinity) return null;
    if (zero) { lo = Math.min(0, lo); hi = Math.max(0, hi); }
    var pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
    return [zero && lo === 0 ? 0 : lo - pad, hi + pad];
  }

  // opts: {x: [seconds], series: [{label, values, kind: "line"|"bars"|"dashed", color,
  //   notes: [string|null], skipNull}], unit, tz, locale, xfmt: "month"|"day"|"hour"|"time",
  //   tipfmt, band: {of, lo, hi, label}, zero, empty, noData, height}
  function time(target, opts) {
    var values = opts.series.map(function (s) { return s.values; });
    var span = range(values.concat(opts.band ? [opts.band.lo, opts.band.hi] : []), opts.zero);
    if (!opts.x.length || span === null) return empty(target, opts.empty || "—");
    destroy(target);
    target.replaceChildren();
    var width = Math.max(200, target.clientWidth || 600);
    var height = opts.height || (width < 500 ? 200 : 240);
    var series = [{ label: "", value: function (u, v) { return v === null ? "" : timeText(v, opts, opts.tipfmt); } }];
    opts.series.forEach(function (s, k) {
      var color = s.color || COLORS[k % COLORS.length];
      var spec = {
        label: s.label, stroke: color, width: s.kind === "bars" ? 0 : 1.5, spanGaps: false,
        value: function (u, v) { return num(v, opts.unit); },
      };
      if (s.kind === "bars") { spec.fill = color; spec.paths = uPlot.paths.bars({ size: [0.7, 48], gap: 1 }); spec.points = { show: false }; }
      if (s.kind === "dashed") { spec.dash = [6, 4]; spec.points = { show: false }; }
      series.push(spec);
    });
    var tz = opts.tz || "UTC";
    // bars are centred on their time: leave half a bucket at each end so none is cut in half
    var xs = opts.x, half = 0;
    if (opts.series.some(function (s) { return s.kind === "bars"; })) {
      half = xs.length > 1 ? (xs[xs.length - 1] - xs[0]) / (xs.length - 1) / 2 : 43200;
    }
    var xRange = [xs[0] - half, xs[xs.length - 1] + half];
    var plot = new uPlot({
      width: width,
      height: height,
      padding: [8, 20, 0, 0],  // room for the last time label
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), tz); },
      series: series,
      scales: { x: { time: true, range: function (u, lo, hi) { return lo === xs[0] && hi === xs[xs.length - 1] ? xRange : [lo, hi]; } }, y: { range: function () { return span; } } },
      axes: [
        { values: function (u, splits) { return splits.map(function (s) { return timeText(s, opts); }); }, size: 34, space: width < 500 ? 60 : 80 },
        { values: function (u, splits) { return splits.map(compact); }, size: 52, label: opts.unit || "", labelSize: 16 },
      ],
      cursor: { drag: { x: true, y: false }, points: { size: 6 } },
      legend: { live: false },
      plugins: [tooltip(opts)].concat(opts.band ? [whiskers(opts.band)] : []),
    }, [opts.x].concat(values), target);
    var observer = new ResizeObserver(function () {
      var w = Math.max(200, target.clientWidth);
      if (Math.abs(w - plot.width) > 2) plot.setSize({ width: w, height: w < 500 ? 200 : (opts.height || 240) });
    });
    observer.observe(target);
    charts[target.id] = { plot: plot, observer: observer, opts: opts };
    target.dataset.drawn = "1";
    return plot;
  }

  function data(id) {
    var c = charts[id];
    if (!c) return null;
    return {
      x: c.plot.data[0].slice(),
      series: c.opts.series.map(function (s, k) { return { label: s.label, kind: s.kind || "line", values: c.plot.data[k + 1].slice() }; }),
      band: c.opts.band ? { lo: c.opts.band.lo.slice(), hi: c.opts.band.hi.slice() } : null,
      shown: [c.plot.scales.x.min, c.plot.scales.x.max],
    };
  }

  window.EpcChart = { time: time, empty: empty, data: data, num: num, timeText: timeText };
})();
