// The sky map: the server rasterises the sources (/skymap/data, one RGBA image of the
// visible window) and answers hover and click with the nearest source (/skymap/near).
// Sets window.skymapReady = {n, total_ms, fetch_ms, draw_ms} once the first image is drawn.
(function () {
  "use strict";
  const status = document.getElementById("skymap-status");
  const projection = new URLSearchParams(location.search).get("projection") || "aitoff";
  const PICK_PX = 6;  // hover and click reach this far (CSS pixels)
  let doc = null, view = null, image = null, ndarray = null, seq = 0;
  let tip = null, drawn = false;

  function bokehView() {
    return new Promise(function (resolve) {
      (function poll() {
        const B = window.Bokeh;
        const d = B && B.documents && B.documents.length ? B.documents[0] : null;
        const v = B && B.index ? Object.values(B.index)[0] : null;
        if (d && v && d.get_model_by_name("sky-image")) { resolve([d, v]); } else { setTimeout(poll, 5); }
      })();
    });
  }

  function frames() {
    return new Promise(function (r) { requestAnimationFrame(function () { requestAnimationFrame(r); }); });
  }

  function hidden() {
    const out = [];
    for (const m of doc.all_models) {
      if (m.name && m.name.startsWith("legend-") && m.visible === false) out.push(m.name.slice(7));
    }
    return out.join(",");
  }

  function show(buf) {
    const hlen = new DataView(buf).getUint32(0, true);
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, hlen)).trim());
    const pixels = new Uint32Array(buf, 4 + hlen, header.w * header.h);
    image.data = {image: [ndarray(pixels, {dtype: "uint32", shape: [header.h, header.w]})],
                  x: [header.x0], y: [header.y0], dw: [header.x1 - header.x0],
                  dh: [header.y1 - header.y0]};
    return header;
  }

  function describe(header, extra) {
    status.textContent = header.n.toLocaleString("en") + " sources, " +
      header.n_view.toLocaleString("en") + " in view" + extra +
      ". Hover for a source, click for its page; pan or zoom to redraw.";
  }

  let pending = null;
  window.skymapRefresh = function () {  // after pan, zoom, reset or a legend click
    if (!drawn) return;  // the first image is the whole sky, already on its way
    clearTimeout(pending);
    pending = setTimeout(async function () {
      const mine = ++seq, f = view.frame, xr = f.x_range, yr = f.y_range;
      const q = new URLSearchParams({projection: projection, x0: xr.start, x1: xr.end,
        y0: yr.start, y1: yr.end, w: Math.max(1, Math.round(f.bbox.width)),
        h: Math.max(1, Math.round(f.bbox.height)), hide: hidden()});
      const r = await fetch("/skymap/data?" + q);
      if (!r.ok) { status.textContent = "The sky map could not be redrawn: HTTP " + r.status; return; }
      const buf = await r.arrayBuffer();
      if (mine === seq) describe(show(buf), "");
    }, 120);
  };

  function radius() {
    const f = view.frame;
    return PICK_PX * (f.x_range.end - f.x_range.start) / Math.max(1, f.bbox.width);
  }

  async function near(x, y) {
    const q = new URLSearchParams({projection: projection, x: x, y: y, r: radius(), hide: hidden()});
    const r = await fetch("/skymap/near?" + q);
    return r.ok ? r.json() : {};
  }

  window.skymapTap = async function (e) {
    const s = await near(e.x, e.y);
    if (s.id !== undefined) { window.location.href = "/go/source/" + s.id; }
  };

  let hovering = false, lastHover = null;
  window.skymapHover = async function (e) {
    lastHover = e;
    if (hovering || !view) return;
    hovering = true;
    try {
      while (lastHover) {
        const ev = lastHover; lastHover = null;
        const s = await near(ev.x, ev.y);
        if (!tip) {
          tip = document.createElement("div");
          tip.id = "skymap-tip";
          tip.className = "skymap-tip";
          document.getElementById("skymap").appendChild(tip);
        }
        if (s.id === undefined) { tip.style.display = "none"; continue; }
        tip.textContent = s.cls + " · RA, Dec " + s.ra.toFixed(4) + ", " + s.dec.toFixed(4) +
          " · source id " + s.id;
        const rect = view.canvas_view.el.getBoundingClientRect();
        const host = document.getElementById("skymap").getBoundingClientRect();
        tip.style.left = (rect.left - host.left + view.frame.x_scale.compute(s.x) + 10) + "px";
        tip.style.top = (rect.top - host.top + view.frame.y_scale.compute(s.y) + 10) + "px";
        tip.style.display = "block";
      }
    } finally { hovering = false; }
  };

  async function load() {
    const t0 = performance.now();
    const marks = {script_ms: t0};
    const buf = await window.skymapData;  // started in the page's head
    const fetched = performance.now();
    [doc, view] = await bokehView();
    ndarray = window.Bokeh.require("core/util/ndarray").ndarray;
    image = doc.get_model_by_name("sky-image");
    marks.bokeh_ms = performance.now();
    const header = show(buf);
    marks.data_set_ms = performance.now();
    await frames();
    drawn = true;
    const total = performance.now();
    window.skymapReady = Object.assign(marks, {n: header.n, total_ms: total,
                                               fetch_ms: fetched - t0, draw_ms: total - fetched});
    describe(header, " (drawn in " + (total / 1000).toFixed(2) + " s since the page was requested)");
  }

  load().catch(function (e) {
    status.textContent = "The sky map could not be drawn: " + e.message;
    window.skymapReady = {error: String(e)};
    throw e;
  });
})();
