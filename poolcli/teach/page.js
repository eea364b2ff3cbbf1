// poolcli --html: explain any output cell of the maps inline in this page (contract §9).
// The numbers are recomputed here from the maps' exact float32 values and the stages'
// parameters, by the same rules as poolcli.teach (numbers.py, layer.py, stage.py), so that
// window.poolcli.select(stage, x, y, channel) returns what `poolcli explain --json` prints.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("poolcli-data").textContent);
  const MISSING = { missing: true }; // thrown when a value lies outside the map's stored crop
  const LIM = D.limits;

  function decode(m) {
    const raw = atob(m.values);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    const data = m.dtype === "u8" ? bytes : m.dtype === "u16" ? new Uint16Array(bytes.buffer) : new Float32Array(bytes.buffer);
    return Object.assign({}, m, { data: data, values: undefined });
  }
  const maps = D.maps.map(decode);
  const weights = D.stages.map(function (st) {
    if (st.kind !== "conv2d") return null;
    const raw = atob(st.weight);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  });

  function value(k, r, c, ch) {
    const m = maps[k];
    const i = r - m.crop[0], j = c - m.crop[1];
    if (i < 0 || j < 0 || i >= m.crop[2] || j >= m.crop[3]) throw MISSING;
    return m.data[(i * m.crop[3] + j) * m.c + ch];
  }
  function mod(a, n) { return ((a % n) + n) % n; }
  function srcIndex(i, n, mode) { // where padded position i reads from (api.index_map); -1: the constant
    if (i >= 0 && i < n) return i;
    if (mode === "reflect") { const m = mod(i, 2 * n); return m < n ? m : 2 * n - 1 - m; }
    if (mode === "mirror") { if (n === 1) return 0; const m = mod(i, 2 * n - 2); return m < n ? m : 2 * n - 2 - m; }
    if (mode === "nearest") return Math.min(Math.max(i, 0), n - 1);
    if (mode === "wrap") return mod(i, n);
    return -1;
  }
  function range(a, n, step) { const out = []; for (let i = 0; i < n; i++) out.push(a + i * (step || 1)); return out; }
  function total(grid) { let s = 0; for (const row of grid) for (const v of row) s += v; return s; }
  function times(a, b) { return a.map(function (row, i) { return row.map(function (v, j) { return v * b[i][j]; }); }); }
  function listed(grid) { return grid.map(function (row) { return row.map(function (v) { return Number.isNaN(v) ? null : v; }); }); }
  function isNested3(v) { return Array.isArray(v[0]) && Array.isArray(v[0][0]); }

  function heat(values) { // block means, at most LIM.heat a side (numbers._heat); NaN cells left out
    const h = values.length, w = values[0].length;
    const by = Math.ceil(h / LIM.heat), bx = Math.ceil(w / LIM.heat);
    const out = [];
    for (let r0 = 0; r0 < h; r0 += by) {
      const row = [];
      for (let c0 = 0; c0 < w; c0 += bx) {
        let s = 0, n = 0;
        for (let i = r0; i < Math.min(h, r0 + by); i++)
          for (let j = c0; j < Math.min(w, c0 + bx); j++) if (!Number.isNaN(values[i][j])) { s += values[i][j]; n++; }
        row.push(n ? s / n : 0);
      }
      out.push(row);
    }
    return out;
  }
  function summary(values, rows, cols) { // a window too large to list (numbers._summary)
    let n = 0, s = 0, lo = Infinity, hi = -Infinity, at = [0, 0], best = -Infinity;
    values.forEach(function (row, i) {
      row.forEach(function (v, j) {
        if (Number.isNaN(v)) return;
        n++; s += v; lo = Math.min(lo, v); hi = Math.max(hi, v);
        if (v > best) { best = v; at = [i, j]; }
      });
    });
    return { count: n, min: lo, max: hi, mean: s / n, argmax: [rows[at[0]], cols[at[1]]], truncated: true };
  }
  function bounded(info, grids, pad, rows, cols) { // numbers._bounded
    const patch = grids.input_patch;
    const big = Math.max(patch.length, patch[0].length) > LIM.grid;
    if (patch.length * patch[0].length > LIM.cells) {
      const keep = {};
      for (const k in info.window) if (k !== "rows" && k !== "cols" && k !== "cells") keep[k] = info.window[k];
      info.window = Object.assign(keep, summary(patch, rows, cols),
        { rows_span: [rows[0], rows[rows.length - 1]], cols_span: [cols[0], cols[cols.length - 1]] });
      for (const k in grids) info[k] = null;
      info.padding = null;
    } else {
      for (const k in grids) info[k] = grids[k] === null ? null : (isNested3(grids[k]) ? grids[k].map(listed) : listed(grids[k]));
      info.padding = pad;
    }
    if (big) {
      info.heatmap = {};
      for (const k in grids) {
        const g = grids[k];
        info.heatmap[k] = g === null ? null : (isNested3(g) ? g.map(heat) : heat(g));
      }
    }
    return info;
  }

  function convolution(s, st, x, y, outCh) { // numbers.explain_convolution (and a bank's map k·C + c)
    const inp = maps[s], C = inp.c;
    const k = st.bank ? Math.floor(outCh / C) : 0, c = st.bank ? outCh % C : outCh;
    if (k >= st.specs.length || c >= C) return null;
    const spec = st.specs[k];
    const pair = isNested3(spec.kernel), kernels = pair ? spec.kernel : [spec.kernel];
    const kh = kernels[0].length, kw = kernels[0][0].length, Dl = spec.dilation, S = spec.stride;
    const cy = spec.crop[0] + y * S, cx = spec.crop[1] + x * S;
    const rows = range(cy - Math.floor(kh / 2) * Dl, kh, Dl), cols = range(cx - Math.floor(kw / 2) * Dl, kw, Dl);
    const H = inp.h, W = inp.w;
    const pad = rows.map(function (r) { return cols.map(function (q) { return !(r >= 0 && r < H && q >= 0 && q < W); }); });
    const patch = rows.map(function (r) {
      return cols.map(function (q) {
        if (spec.boundary === "constant" && !(r >= 0 && r < H && q >= 0 && q < W)) return spec.cval;
        return value(s, srcIndex(r, H, spec.boundary), srcIndex(q, W, spec.boundary), c);
      });
    });
    const products = kernels.map(function (kk) { return times(kk, patch); });
    const sums = products.map(total);
    const info = {
      kind: "convolution", position: { x: x, y: y, channel: c },
      window: { rows: rows, cols: cols, centre: [cy, cx], dilation: Dl, stride: S, boundary: spec.boundary },
      sum: pair ? sums : sums[0], magnitude: pair ? Math.hypot(sums[0], sums[1]) : null,
      output: value(s + 1, y, x, outCh), output_size: st.output_size,
    };
    if (st.bank) {
      info.position.channel = outCh;
      info.bank_kernel = { index: k, name: st.names[k], input_channel: c };
    }
    return bounded(info, { input_patch: patch, kernel: pair ? kernels : kernels[0], products: pair ? products : products[0] },
      pad, rows, cols);
  }

  function pooling(s, st, x, y, ch) { // numbers.explain_pooling
    const inp = maps[s], H = inp.h, W = inp.w;
    if (ch >= inp.c) return null;
    let rows, cols, area;
    if (st.adaptive) {
      const oh = st.adaptive[0], ow = st.adaptive[1];
      const r0 = Math.floor(y * H / oh), r1 = Math.ceil((y + 1) * H / oh);
      const c0 = Math.floor(x * W / ow), c1 = Math.ceil((x + 1) * W / ow);
      rows = range(r0, r1 - r0); cols = range(c0, c1 - c0); area = rows.length * cols.length;
    } else {
      rows = range(y * st.stride[0] - st.padding[0], st.size[0], st.dilation[0]);
      cols = range(x * st.stride[1] - st.padding[1], st.size[1], st.dilation[1]);
      area = rows.filter(function (r) { return r < H + st.padding[0]; }).length *
        cols.filter(function (q) { return q < W + st.padding[1]; }).length;
    }
    const rin = rows.filter(function (r) { return r >= 0 && r < H; }), cin = cols.filter(function (q) { return q >= 0 && q < W; });
    const patch = rows.map(function (r) {
      return cols.map(function (q) { return (r >= 0 && r < H && q >= 0 && q < W) ? value(s, r, q, ch) : NaN; });
    });
    const vals = [];
    for (const r of rin) for (const q of cin) vals.push([r, q, value(s, r, q, ch)]);
    const output = value(s + 1, y, x, ch);
    let chosen = null, sum = null, divisor = null, ties = null;
    if (st.picks) {
      const f = Math.fround(output);
      const hits = vals.filter(function (v) { return Math.fround(v[2]) === f || v[2] === output; });
      ties = hits.length;
      if (hits.length) chosen = [hits[0][0], hits[0][1]];
    } else if (st.mode === "avg") {
      sum = vals.reduce(function (a, v) { return a + v[2]; }, 0);
      divisor = st.divisor !== null ? st.divisor : (st.count_include_pad || st.adaptive ? area : vals.length);
    } else {
      sum = vals.reduce(function (a, v) { return a + Math.pow(v[2], st.p); }, 0);
    }
    const info = {
      kind: "pooling", mode: st.mode, position: { x: x, y: y, channel: ch },
      window: { rows: rows, cols: cols, chosen: chosen, divisor: divisor, ties: ties }, kernel: null, products: null,
      sum: sum, output: output, output_size: st.output_size,
    };
    if (rows.length * cols.length <= LIM.cells) info.window.cells = vals;
    const pad = patch.map(function (row) { return row.map(function (v) { return Number.isNaN(v); }); });
    bounded(info, { input_patch: patch }, pad, rows, cols);
    info.kernel = null; info.products = null;
    return info;
  }

  function layer(s, st, x, y, k) { // layer.explain_layer
    const inp = maps[s], H = inp.h, W = inp.w, sh = st.shape;
    if (k >= sh[0]) return null;
    const rows = range(y * st.stride[0] - st.pads[0], sh[2], st.dilation[0]);
    const cols = range(x * st.stride[1] - st.pads[2], sh[3], st.dilation[1]);
    const first = Math.floor(k / (sh[0] / st.groups)) * sh[1];
    const w = weights[s];
    const channels = [], sums = [];
    for (let i = 0; i < sh[1]; i++) {
      const patch = rows.map(function (r) {
        return cols.map(function (q) {
          if (r >= 0 && r < H && q >= 0 && q < W) return value(s, r, q, first + i);
          if (st.padding_mode === "zeros") return 0;
          return value(s, srcIndex(r, H, st.boundary), srcIndex(q, W, st.boundary), first + i);
        });
      });
      const kernel = range(0, sh[2]).map(function (a) {
        return range(0, sh[3]).map(function (b) { return w[((k * sh[1] + i) * sh[2] + a) * sh[3] + b]; });
      });
      const products = times(patch, kernel);
      sums.push(total(products));
      channels.push({ channel: first + i, input_patch: patch, kernel: kernel, products: products, partial_sum: sums[i] });
    }
    const bias = st.bias[k];
    return {
      kind: "conv2d", position: { x: x, y: y, channel: k }, window: { rows: rows, cols: cols },
      padding: rows.map(function (r) { return cols.map(function (q) { return !(r >= 0 && r < H && q >= 0 && q < W); }); }),
      channels: channels, input_patch: channels.map(function (c) { return c.input_patch; }),
      kernel: channels.map(function (c) { return c.kernel; }), products: channels.map(function (c) { return c.products; }),
      partial_sums: sums, bias: bias, sum: sums.reduce(function (a, b) { return a + b; }, 0) + bias,
      output: value(s + 1, y, x, k), output_size: st.output_size, padding_mode: st.padding_mode,
    };
  }

  function elementwise(s, st, x, y, c) { // stage._elementwise
    if (c >= maps[s + 1].c) return null;
    const reads = st.operation === "gray" ? range(0, maps[s].c).map(function (i) { return value(s, y, x, i); }) : [value(s, y, x, c)];
    return {
      kind: "elementwise", operation: st.operation, options: st.options, position: { x: x, y: y, channel: c },
      input: reads, output: value(s + 1, y, x, c), output_size: st.output_size,
    };
  }

  function reads(a, first, last, n) { // shapes.Axis.reads
    if (a.kind === "same") return [first, last];
    if (a.kind === "global") return [0, n - 1];
    if (a.kind === "adaptive") return [Math.floor(first * n / a.out), Math.ceil((last + 1) * n / a.out) - 1];
    return [first * a.s + a.start, last * a.s + a.start + a.d * (a.k - 1)];
  }
  function field(s, x, y) { // shapes.field_on_input
    let r = [y, y], c = [x, x];
    for (let n = s; n >= 0; n--) {
      const st = D.stages[n], h = maps[n].h, w = maps[n].w;
      r = reads(st.rows, r[0], r[1], h); c = reads(st.cols, c[0], c[1], w);
      r = [Math.max(0, r[0]), Math.min(h - 1, r[1])]; c = [Math.max(0, c[0]), Math.min(w - 1, c[1])];
    }
    return { rows: r, cols: c };
  }

  let current = null, where = null;
  function explainCell(stage, x, y, channel) {
    const st = D.stages[stage], out = maps[stage + 1];
    if (!st || x < 0 || y < 0 || x >= out.w || y >= out.h || channel < 0) return null;
    const f = { convolution: convolution, pooling: pooling, conv2d: layer, elementwise: elementwise }[st.kind];
    const info = f(stage, st, x, y, channel);
    if (info && !D.single) {
      info.stage = { number: stage + 1, text: st.text };
      info.receptive_field = field(stage, x, y);
    }
    return info;
  }
  function select(stage, x, y, channel) {
    channel = channel === undefined ? 0 : channel;
    if (![stage, x, y, channel].every(Number.isInteger)) return null;
    let info;
    try { info = explainCell(stage, x, y, channel); } catch (e) { if (e === MISSING) info = null; else throw e; }
    where = { stage: stage, x: x, y: y, channel: channel };
    current = info;
    show(info);
    return info === null ? null : JSON.parse(JSON.stringify(info));
  }

  // ------------------------------------------------------------------ drawing
  const fmt = function (v) {
    if (v === null || v === undefined) return "·";
    if (typeof v === "boolean") return String(v);
    const a = v + 0;
    return Number.isInteger(a) && Math.abs(a) < 1e9 ? String(a) : a.toPrecision(4).replace(/\.?0+($|e)/, "$1");
  };
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function table(title, grid, pad, mark) {
    const box = el("div", { class: "grid" });
    box.appendChild(el("div", { class: "title" }, title));
    const t = el("table");
    grid.forEach(function (row, i) {
      const tr = el("tr");
      row.forEach(function (v, j) {
        const picked = mark && mark[0] === i && mark[1] === j;
        const td = el("td", { class: (pad && pad[i][j] ? "pad" : "") + (picked ? " pick" : "") }, picked ? "[" + fmt(v) + "]" : fmt(v));
        tr.appendChild(td);
      });
      t.appendChild(tr);
    });
    box.appendChild(t);
    return box;
  }
  const TIE = "tie: N cells hold this value; the first, row by row, is shown (the one PyTorch's indices name)";
  function line(parent, text, cls) { parent.appendChild(el("div", { class: cls || "line" }, text)); }

  function show(info) {
    const box = document.getElementById("explain");
    box.textContent = "";
    placeMarks(info);
    if (info === null) {
      line(box, where ? "stage " + where.stage + " (" + where.x + ", " + where.y + "): outside the values this page holds (a crop of a large image: run explain on it)" : "");
      return;
    }
    const p = info.position;
    const head = (info.stage ? "stage " + info.stage.number + " (" + info.stage.text + "), " : "") +
      "output (x=" + p.x + ", y=" + p.y + "), channel " + p.channel;
    line(box, head, "head");
    const row = el("div", { class: "row" });
    box.appendChild(row);
    if (info.kind === "convolution") {
      if (info.input_patch) {
        const pair = Array.isArray(info.sum);
        row.appendChild(table("input patch" + (info.bank_kernel ? " (input channel " + info.bank_kernel.input_channel + ")" : ""), info.input_patch, info.padding));
        (pair ? info.kernel : [info.kernel]).forEach(function (k, n) {
          const label = pair ? (n === 0 ? " gx" : " gy") : "";
          row.appendChild(table("× kernel" + label, k));
          row.appendChild(table("= products" + label, (pair ? info.products : [info.products])[n]));
        });
      } else line(box, "window of " + info.window.count + " cells: min " + fmt(info.window.min) + ", max " + fmt(info.window.max) + ", mean " + fmt(info.window.mean));
      const sums = Array.isArray(info.sum) ? info.sum : [info.sum];
      sums.forEach(function (s, n) { line(box, (sums.length > 1 ? (n ? "gy" : "gx") + " = " : "") + "sum of products = " + fmt(s)); });
      if (info.magnitude !== null) line(box, "magnitude √(gx² + gy²) = " + fmt(info.magnitude));
    } else if (info.kind === "pooling") {
      const w = info.window;
      let mark = null;
      if (w.chosen && w.rows) mark = [w.rows.indexOf(w.chosen[0]), w.cols.indexOf(w.chosen[1])];
      if (info.input_patch) row.appendChild(table(info.mode + " window", info.input_patch, info.padding, mark));
      else line(box, "window of " + w.count + " cells: min " + fmt(w.min) + ", max " + fmt(w.max) + ", mean " + fmt(w.mean));
      if (info.mode === "avg") line(box, "sum " + fmt(info.sum) + " / divisor " + w.divisor + " = " + fmt(info.sum / w.divisor));
      else if (info.mode === "lp") line(box, "Σ xᵖ = " + fmt(info.sum));
      else if (w.chosen) line(box, "[bracketed]: the cell " + info.mode + " picks, input row " + w.chosen[0] + ", column " + w.chosen[1]);
      if (w.ties > 1) line(box, TIE.replace("N", w.ties));
    } else if (info.kind === "conv2d") {
      info.channels.forEach(function (c) {
        const r = el("div", { class: "row" });
        r.appendChild(table("input channel " + c.channel, c.input_patch, info.padding));
        r.appendChild(table("× kernel", c.kernel));
        r.appendChild(table("= products", c.products));
        r.appendChild(el("div", { class: "partial" }, "partial sum " + fmt(c.partial_sum)));
        box.appendChild(r);
      });
      line(box, "sum of partial sums + bias = " + info.partial_sums.map(fmt).join(" + ") + " + " + fmt(info.bias) + " = " + fmt(info.sum));
    } else {
      line(box, info.operation + "(" + info.input.map(fmt).join(", ") + ") = " + fmt(info.output));
    }
    const size = info.output_size;
    line(box, "output height " + size.formula_h, "formula");
    line(box, "output width  " + size.formula_w, "formula");
    line(box, "output = " + fmt(info.output), "head");
    if (info.receptive_field) {
      const f = info.receptive_field;
      line(box, "receptive field on the input: rows " + f.rows[0] + "…" + f.rows[1] + ", columns " + f.cols[0] + "…" + f.cols[1]);
    }
  }

  function boxOn(img, map, r0, r1, c0, c1, cls) {
    const sx = img.clientWidth / map.w, sy = img.clientHeight / map.h;
    const m = el("div", { class: "mark " + cls });
    m.style.left = (img.offsetLeft + c0 * sx) + "px";
    m.style.top = (img.offsetTop + r0 * sy) + "px";
    m.style.width = Math.max(2, (c1 - c0 + 1) * sx) + "px";
    m.style.height = Math.max(2, (r1 - r0 + 1) * sy) + "px";
    img.parentNode.appendChild(m);
  }
  function placeMarks(info) {
    document.querySelectorAll(".mark").forEach(function (m) { m.remove(); });
    if (!where) return;
    const out = document.querySelector('img[data-map="' + where.stage + '"][data-channel="' + where.channel + '"]');
    if (out) boxOn(out, maps[where.stage + 1], where.y, where.y, where.x, where.x, "cell");
    if (!info) return;
    const w = info.window || {};
    let rows = w.rows ? [Math.min.apply(null, w.rows), Math.max.apply(null, w.rows)] : w.rows_span;
    let cols = w.cols ? [Math.min.apply(null, w.cols), Math.max.apply(null, w.cols)] : w.cols_span;
    if (info.kind === "elementwise") { rows = [where.y, where.y]; cols = [where.x, where.x]; }
    const sel = where.stage === 0 ? 'img[data-map="input"]' : 'img[data-map="' + (where.stage - 1) + '"]';
    document.querySelectorAll(sel).forEach(function (img) { boxOn(img, maps[where.stage], rows[0], rows[1], cols[0], cols[1], "window"); });
    if (info.receptive_field && where.stage > 0) {
      const f = info.receptive_field;
      document.querySelectorAll('img[data-map="input"]').forEach(function (img) { boxOn(img, maps[0], f.rows[0], f.rows[1], f.cols[0], f.cols[1], "field"); });
    }
  }

  function build() {
    const root = document.getElementById("maps");
    maps.forEach(function (m, k) {
      const sec = el("section", { class: "map" });
      const title = k === 0 ? "input" : "stage " + (D.single ? "" : k + ": ") + D.stages[k - 1].text;
      sec.appendChild(el("h2", {}, title + "  " + m.w + "×" + m.h + "×" + m.c + (D.full ? "" : " (exact values for rows " +
        m.crop[0] + "…" + (m.crop[0] + m.crop[2] - 1) + ", columns " + m.crop[1] + "…" + (m.crop[1] + m.crop[3] - 1) + ")")));
      const strip = el("div", { class: "strip" });
      m.overview.forEach(function (src, c) {
        const holder = el("div", { class: "holder" });
        const img = el("img", { src: src, alt: title + " channel " + c, "data-map": k === 0 ? "input" : String(k - 1), "data-channel": String(m.overview.length === 1 && m.c > 1 ? 0 : c) });
        const side = m.overview.length > 16 ? 128 : m.overview.length > 3 ? 256 : 512;
        const longest = Math.max(m.w, m.h);
        const scale = longest >= side ? side / longest : Math.floor(side / longest); // small maps: whole pixels larger
        img.style.width = Math.max(1, Math.round(m.w * scale)) + "px";
        img.style.height = Math.max(1, Math.round(m.h * scale)) + "px";
        if (k > 0) {
          const pick = function (e) {
            const x = Math.min(m.w - 1, Math.floor(e.offsetX / img.clientWidth * m.w));
            const y = Math.min(m.h - 1, Math.floor(e.offsetY / img.clientHeight * m.h));
            if (!where || where.stage !== k - 1 || where.x !== x || where.y !== y || where.channel !== c) select(k - 1, x, y, c);
          };
          img.addEventListener("click", pick);
          img.addEventListener("mousemove", pick);
        }
        holder.appendChild(img);
        holder.appendChild(el("div", { class: "caption" }, m.overview.length > 1 ? "channel " + c : ""));
        strip.appendChild(holder);
      });
      sec.appendChild(strip);
      root.appendChild(sec);
    });
    document.addEventListener("keydown", function (e) {
      if (!where) return;
      const step = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[e.key];
      if (!step) return;
      e.preventDefault();
      const out = maps[where.stage + 1];
      select(where.stage, Math.min(out.w - 1, Math.max(0, where.x + step[0])), Math.min(out.h - 1, Math.max(0, where.y + step[1])), where.channel);
    });
  }

  window.poolcli = {
    select: select,
    selected: function () { return current === null ? null : JSON.parse(JSON.stringify(current)); },
    stages: D.stages.length,
  };
  build();
  select(D.explained, D.at[0], D.at[1], D.channel || 0);
})();
