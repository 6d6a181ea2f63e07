// Fills the sky map's Bokeh data sources from /skymap/data (typed arrays, no per-point JSON).
// Sets window.skymapReady = {n, total_ms, fetch_ms} once the points are drawn.
(function () {
  "use strict";
  const status = document.getElementById("skymap-status");

  function bokehDocument() {
    return new Promise(function (resolve) {
      (function poll() {
        const B = window.Bokeh;
        if (B && B.documents && B.documents.length &&
            B.documents[0].get_model_by_name("sky-none")) {
          resolve(B.documents[0]);
        } else {
          setTimeout(poll, 5);
        }
      })();
    });
  }

  function frames() {
    return new Promise(function (r) { requestAnimationFrame(function () { requestAnimationFrame(r); }); });
  }

  async function load() {
    const t0 = performance.now();
    const marks = {script_ms: t0};
    const buf = await window.skymapData;  // started in the page's head
    const fetched = performance.now();
    const hlen = new DataView(buf).getUint32(0, true);
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, hlen)).trim());
    const n = header.n;
    let off = 4 + hlen;
    function f32() { const a = new Float32Array(buf, off, n); off += 4 * n; return a; }
    const x = f32(), y = f32(), ra = f32(), dec = f32();
    const id = new Int32Array(buf, off, n);
    const doc = await bokehDocument();
    marks.bokeh_ms = performance.now();
    let start = 0;
    for (const c of header.classes) {
      const src = doc.get_model_by_name("sky-" + (c.name || "none"));
      const end = start + c.n;
      src.data = {x: x.subarray(start, end), y: y.subarray(start, end),
                  ra: ra.subarray(start, end), dec: dec.subarray(start, end),
                  id: id.subarray(start, end)};
      start = end;
    }
    marks.data_set_ms = performance.now();
    await frames();
    const total = performance.now();
    window.skymapReady = Object.assign(marks, {n: n, total_ms: total, fetch_ms: fetched - t0,
                                               draw_ms: total - fetched});
    status.textContent = n.toLocaleString("en") + " sources drawn in " +
      (total / 1000).toFixed(2) + " s since the page was requested (waited " +
      ((fetched - t0) / 1000).toFixed(2) + " s for the data). Hover for a position, click a point for its source page.";
  }

  load().catch(function (e) {
    status.textContent = "The sky map could not be drawn: " + e.message;
    window.skymapReady = {error: String(e)};
    throw e;
  });
})();
