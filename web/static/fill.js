// Fills Bokeh data sources and factor ranges by name from the page's #plot-data JSON:
// {"sources": {name: {column: [...]}}, "factors": {range name: [...]}}.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("plot-data").textContent);
  (function poll() {
    const B = window.Bokeh;
    const doc = B && B.documents && B.documents[0];
    const names = Object.keys(data.sources).concat(Object.keys(data.factors));
    if (!doc || !names.every(function (n) { return doc.get_model_by_name(n); })) {
      setTimeout(poll, 5);
      return;
    }
    for (const [name, factors] of Object.entries(data.factors)) {
      doc.get_model_by_name(name).factors = factors;
    }
    for (const [name, columns] of Object.entries(data.sources)) {
      doc.get_model_by_name(name).data = columns;
    }
    window.plotsFilled = true;
  })();
})();
