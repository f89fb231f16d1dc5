/* Small SVG charts shared by the dashboard and the HTML report (`tokenomy report --format html` inlines this
   file): a stacked time chart, lines over time and horizontal bars, plus the charts both pages draw from the
   same data shapes (cost over time by lever, savings by lever, per-group bars).
   Every label is set with textContent (never HTML), so ledger values cannot inject markup.
   The time axis spans the data's own first and last point, with ticks at a step that fits it. */
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = { spend: "#cf6a2e", cache: "#2f81f7", routing: "#3fb950", compression: "#a371f7", batching: "#d29922" };
  const STEPS = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 10800, 21600, 43200, 86400, 172800, 604800, 2592000];

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }
  function text(parent, x, y, value, anchor) {
    const t = el("text", { x: x, y: y, "text-anchor": anchor || "start" }, parent);
    t.textContent = value;
    return t;
  }

  /* Money with enough digits: $1,234.56, $0.50, $0.12, then two significant digits under 10 cents:
     $0.012, $0.0033, $0.000012. */
  function money(v) {
    if (v === null || v === undefined || isNaN(v)) return "-";
    if (v === 0) return "$0";
    const a = Math.abs(v), r = a >= 0.1 ? a : Number(a.toPrecision(2));
    const sign = v < 0 ? "-$" : "$";
    if (r >= 0.1) return sign + r.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    return sign + String(r);
  }

  /* A count with thousands separators (and up to `digits` decimals). */
  function count(v, digits) {
    if (v === null || v === undefined || isNaN(v)) return "-";
    return Number(v).toLocaleString("en-US", { maximumFractionDigits: digits === undefined ? 0 : digits });
  }

  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function timeLabel(t, span) {
    const d = new Date(t * 1000);
    const iso = d.toISOString();
    if (span <= 300) return iso.slice(11, 19);
    if (span <= 2 * 86400) return iso.slice(11, 16);
    return iso.slice(5, 10);
  }

  function legend(container, items) {
    const box = document.createElement("div");
    box.className = "legend";
    for (const [name, color] of items) {
      const span = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.style.background = color;
      span.appendChild(swatch);
      span.appendChild(document.createTextNode(name));
      box.appendChild(span);
    }
    container.appendChild(box);
  }

  function empty(container, message) {
    container.replaceChildren();
    const p = document.createElement("p");
    p.textContent = message || "no records in this window";
    container.appendChild(p);
  }

  /* The SVG, scales, value grid and time axis shared by the time charts: x(t) maps epoch s over the data's
     own span [first time, last time + bucket], y(v) maps [0, top]. */
  function timeFrame(container, times, bucket, top, format) {
    container.replaceChildren();
    const W = 640, H = 240, L = 64, R = 10, T = 10, B = 28;
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" }, container);
    const t0 = times[0], t1 = times[times.length - 1] + bucket;
    const span = Math.max(t1 - t0, 1);
    const x = (t) => L + ((t - t0) / span) * (W - L - R);
    const y = (v) => H - B - (v / top) * (H - T - B);
    for (let k = 0; k <= 4; k++) {
      const v = (top * k) / 4;
      el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "axis" }, svg);
      text(svg, L - 4, y(v) + 4, format(v), "end");
    }
    const step = STEPS.find((s) => span / s <= 8) || STEPS[STEPS.length - 1];
    for (let t = Math.ceil(t0 / step) * step; t <= t1 && x(t) <= W - R - 24; t += step) {
      el("line", { x1: x(t), x2: x(t), y1: H - B, y2: H - B + 4, class: "axis" }, svg);
      text(svg, x(t), H - 8, timeLabel(t, span), "middle");
    }
    return { svg, x, y, t0 };
  }

  /* layers: [{name, color, values:[...]}] stacked bottom-up over times (epoch s); line: optional
     {name, color, values} drawn on top (the baseline). Bars, one per time bucket of width bucket_s. */
  function timeStack(container, times, layers, line, bucket, format) {
    if (!times.length) return empty(container);
    const totals = times.map((_, i) => layers.reduce((s, l) => s + l.values[i], 0));
    const top = niceMax(Math.max(...totals, ...(line ? line.values : [0])));
    const { svg, x, y, t0 } = timeFrame(container, times, bucket, top, format);
    const bw = Math.max(1, x(t0 + bucket) - x(t0) - 1);
    times.forEach((t, i) => {
      let base = 0;
      for (const layer of layers) {
        const v = layer.values[i];
        if (v > 0) {
          const r = el("rect", { x: x(t), y: y(base + v), width: bw, height: Math.max(0.5, y(base) - y(base + v)), fill: layer.color }, svg);
          const tip = el("title", {}, r);
          tip.textContent = `${layer.name}: ${format(v)}`;
        }
        base += v;
      }
    });
    if (line) {
      const pts = times.map((t, i) => `${x(t) + bw / 2},${y(line.values[i])}`).join(" ");
      el("polyline", { points: pts, fill: "none", stroke: line.color, "stroke-width": 2, "stroke-dasharray": "4 3" }, svg);
    }
    legend(container, [...layers.map((l) => [l.name, l.color]), ...(line ? [[line.name, line.color]] : [])]);
  }

  /* Lines over time (epoch s), one point per bucket; a null value leaves a gap. series: [{name, color,
     values, dash?}]. Same time axis as timeStack; the value axis starts at 0. */
  function lines(container, times, series, bucket, format) {
    const all = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
    if (!times.length || !all.length) return empty(container);
    const frame = timeFrame(container, times, bucket, niceMax(Math.max(...all)), format);
    const svg = frame.svg, y = frame.y;
    const x = (t) => frame.x(t + bucket / 2);  // a point in the middle of its bucket
    for (const s of series) {
      let run = [];
      const flush = () => {
        if (run.length > 1) {
          const attrs = { points: run.join(" "), fill: "none", stroke: s.color, "stroke-width": 2 };
          if (s.dash) attrs["stroke-dasharray"] = "5 3";
          el("polyline", attrs, svg);
        } else if (run.length === 1) {
          const [cx, cy] = run[0].split(",");
          el("circle", { cx: cx, cy: cy, r: 2.5, fill: s.color }, svg);
        }
        run = [];
      };
      times.forEach((t, i) => {
        const v = s.values[i];
        if (v === null || v === undefined) flush();
        else run.push(`${x(t)},${y(v)}`);
      });
      flush();
    }
    const shown = series.filter((s) => s.values.some((v) => v !== null && v !== undefined));
    legend(container, shown.map((s) => [s.name + (s.dash ? " (dashed)" : ""), s.color]));
  }

  /* Horizontal bars with the value printed at the end of each bar. */
  function bars(container, labels, values, format, color) {
    if (!labels.length) return empty(container);
    container.replaceChildren();
    const row = 22, L = 150, R = 80, W = 640, H = labels.length * row + 8;
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" }, container);
    const top = Math.max(...values, 0) || 1;
    labels.forEach((label, i) => {
      const y = 4 + i * row;
      const name = String(label);
      const shown = text(svg, L - 6, y + 14, name.length > 22 ? name.slice(0, 21) + "…" : name, "end");
      el("title", {}, shown).textContent = name;
      const w = (values[i] / top) * (W - L - R);
      el("rect", { x: L, y: y + 3, width: Math.max(w, 0.5), height: row - 8, fill: color || "#4493f8" }, svg);
      text(svg, L + w + 4, y + 14, format(values[i]));
    });
  }

  /* Spend and each lever's saving per time bucket, stacked. series: [{t, cost_usd, saved_usd: {lever: usd}}]
     (the dashboard's overview series and the report's), bucket: the bucket's length in seconds. */
  function costOverTime(container, series, levers, bucket) {
    const layers = [{ name: "spend", color: COLORS.spend, values: series.map((p) => p.cost_usd) }];
    for (const lever of levers) {
      const values = series.map((p) => (p.saved_usd && p.saved_usd[lever]) || 0);
      layers.push({ name: "saved by " + lever, color: COLORS[lever] || "#8b949e", values: values });
    }
    timeStack(container, series.map((p) => p.t), layers, null, bucket, money);
  }

  /* The window's saving per lever. saved: {lever: usd}. */
  function leverBars(container, levers, saved) {
    bars(container, levers, levers.map((l) => saved[l] || 0), money, COLORS.routing);
  }

  /* Groups (report/overview group objects, highest spend first): cost per 1,000 requests. */
  function costPer1k(container, groups, limit) {
    const shown = groups.slice(0, limit || 12);
    bars(container, shown.map((g) => g.group), shown.map((g) => g.cost_per_1k_requests_usd), money, COLORS.spend);
  }

  /* Groups: tokens (prompt plus completion) per request. */
  function tokensPerRequest(container, groups, limit) {
    const shown = groups.slice(0, limit || 12);
    bars(container, shown.map((g) => g.group), shown.map((g) => g.tokens_per_request), (v) => count(v, 1), COLORS.cache);
  }

  window.TokenomyChart = {
    COLORS, money, count, timeStack, lines, bars, legend, empty, costOverTime, leverBars, costPer1k, tokensPerRequest,
  };
})();
