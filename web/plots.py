"""Bokeh figures of the explorer (no hand-written charting). Values reach the browser as
Bokeh's own binary-encoded column data; tooltips show fields as text (escaped)."""

from __future__ import annotations

import numpy as np
from bokeh.models import ColumnDataSource, LinearColorMapper, Range1d, Whisker
from bokeh.palettes import Category10_10, Viridis256
from bokeh.plotting import figure
from bokeh.transform import transform

from classifier.taxonomy import AGG_CLASSES, CLASSES
from db.web_queries import CLASS_COLUMNS

#: A fixed colour per fine class and per aggregated class (the same on every page).
CLASS_COLORS = dict(zip(CLASSES, Category10_10, strict=True))
AGG_COLORS = {"AGN": "#1f77b4", "Seyfert": "#ff7f0e", "XB": "#d62728", "YSO": "#2ca02c",
              "": "#9e9e9e"}
AGG_LABELS = [*AGG_CLASSES, ""]


def _finite(v) -> float:
    """A probability for a chart: None or NaN (no value) as 0 (the page's JSON has no NaN)."""
    return float(v) if v is not None and np.isfinite(v) else 0.0


def _fig(**kw):
    kw.setdefault("sizing_mode", "stretch_width")
    kw.setdefault("height", 320)
    kw.setdefault("toolbar_location", "above")
    return figure(**kw)


def detection_chart():
    """Per-detection probabilities stacked to 1 (like the paper's Fig. 10): an empty figure
    whose data source ``det-bars`` and x range ``det-range`` the page fills
    (:func:`detection_data`), so the figure is built once per process."""
    from bokeh.models import FactorRange

    src = ColumnDataSource({k: [] for k in ("det", "bottom", "top", "cls", "p", "color")},
                           name="det-bars")
    p = _fig(x_range=FactorRange(name="det-range"), y_range=Range1d(0, 1),
             title="per-detection probabilities", tools="hover,save,reset",
             tooltips=[("detection", "@det"), ("class", "@cls"), ("p", "@p{0.000}")])
    p.vbar(x="det", bottom="bottom", top="top", width=0.8, color="color", legend_field="cls",
           source=src)
    p.xaxis.major_label_orientation = 0.8
    p.xaxis.axis_label = "ObsID/OBI/region"
    p.yaxis.axis_label = "probability"
    p.add_layout(p.legend[0], "right")
    p.legend.label_text_font_size = "8pt"
    return p


def detection_data(dets: list[dict]) -> dict:
    """The columns of ``det-bars`` and the factors of ``det-range`` for ``dets``."""
    rows = [d for d in dets if d.get("p_qso") is not None]
    labels = [f"{d['obsid']}/{d['obi']}/{d['region_id']}" for d in rows]
    cols: dict[str, list] = {k: [] for k in ("det", "bottom", "top", "cls", "p", "color")}
    for label, d in zip(labels, rows, strict=True):
        acc = 0.0
        for c in CLASSES:
            v = _finite(d[f"p_{CLASS_COLUMNS[c]}"])
            cols["det"].append(label)
            cols["bottom"].append(acc)
            cols["top"].append(acc + v)
            cols["cls"].append(c)
            cols["p"].append(v)
            cols["color"].append(CLASS_COLORS[c])
            acc += v
    return {"sources": {"det-bars": cols}, "factors": {"det-range": labels}}


def master_chart():
    """The master result: mean probability per class with ±1 std whiskers; an empty figure
    whose source ``master-bars`` the page fills (:func:`master_data`)."""
    src = ColumnDataSource({k: [] for k in ("cls", "mean", "lo", "hi", "std", "color")},
                           name="master-bars")
    p = _fig(x_range=list(CLASSES), y_range=Range1d(0, 1.05), height=280,
             title="mean probability per class (±1 std over detections)",
             tools="hover,save", tooltips=[("class", "@cls"), ("mean", "@mean{0.000}"),
                                           ("std", "@std{0.000}")])
    p.vbar(x="cls", top="mean", width=0.7, color="color", source=src)
    p.add_layout(Whisker(source=src, base="cls", lower="lo", upper="hi"))
    p.yaxis.axis_label = "probability"
    return p


def master_data(current: dict | None) -> dict:
    if not current or current.get("mean_qso") is None:
        return {"sources": {}, "factors": {}}
    mean = np.array([_finite(current[f"mean_{CLASS_COLUMNS[c]}"]) for c in CLASSES])
    std = np.array([_finite(current[f"std_{CLASS_COLUMNS[c]}"]) for c in CLASSES])
    return {"sources": {"master-bars": {
        "cls": list(CLASSES), "mean": mean.tolist(), "std": std.tolist(),
        "lo": np.clip(mean - std, 0, 1).tolist(), "hi": np.clip(mean + std, 0, 1).tolist(),
        "color": [CLASS_COLORS[c] for c in CLASSES]}}, "factors": {}}


def family_chart(family: str):
    """One family's probability of every class of its model for the source, with the
    family's interval (lo-hi) as whiskers where it gives one: an empty figure whose sources
    ``fam-<family>-bars`` and ``fam-<family>-err`` and x range ``fam-<family>-range`` the
    page fills (:func:`family_data`)."""
    from bokeh.models import FactorRange

    bars = ColumnDataSource({k: [] for k in ("cls", "p", "lo", "hi", "color")},
                            name=f"fam-{family}-bars")
    err = ColumnDataSource({k: [] for k in ("cls", "lo", "hi")}, name=f"fam-{family}-err")
    p = _fig(x_range=FactorRange(name=f"fam-{family}-range"), y_range=Range1d(0, 1.05),
             height=240, title=f"{family}: probability per class",
             tools="hover,save", tooltips=[("class", "@cls"), ("p", "@p{0.000}"),
                                           ("interval", "@lo{0.000}–@hi{0.000}")])
    p.vbar(x="cls", top="p", width=0.7, color="color", source=bars)
    p.add_layout(Whisker(source=err, base="cls", lower="lo", upper="hi"))
    p.xaxis.major_label_orientation = 0.8
    p.yaxis.axis_label = "probability"
    return p


def family_data(families: list[dict]) -> dict:
    """The columns of every ``fam-<family>-*`` source and range for a source's families
    (``db.web_queries.source_families``); a family without intervals has no whiskers."""
    sources, factors = {}, {}
    for f in families:
        name, probs = f["family"], f["probabilities"]
        if not probs:
            continue
        cls = [r["class"] for r in probs]
        p = [_finite(r["probability"]) for r in probs]
        has = [r["probability_lo"] is not None and r["probability_hi"] is not None
               for r in probs]
        lo = [_finite(r["probability_lo"]) if h else v for r, h, v in zip(probs, has, p,
                                                                          strict=True)]
        hi = [_finite(r["probability_hi"]) if h else v for r, h, v in zip(probs, has, p,
                                                                          strict=True)]
        sources[f"fam-{name}-bars"] = {
            "cls": cls, "p": p, "lo": lo, "hi": hi,
            "color": [CLASS_COLORS.get(c, "#9e9e9e") for c in cls]}
        sources[f"fam-{name}-err"] = {
            "cls": [c for c, h in zip(cls, has, strict=True) if h],
            "lo": [v for v, h in zip(lo, has, strict=True) if h],
            "hi": [v for v, h in zip(hi, has, strict=True) if h]}
        factors[f"fam-{name}-range"] = cls
    return {"sources": sources, "factors": factors}


def source_charts() -> dict:
    """Every figure of the source page (built once per app: :func:`web.render.cached_plots`)."""
    from classifier import FAMILIES

    return {"dets": detection_chart(), "master": master_chart(),
            **{f"fam_{f}": family_chart(f) for f in FAMILIES}}


def confusion(report: dict, title: str):
    """Row-normalised confusion matrix (rows true, columns predicted) as a heat map."""
    labels = report.get("labels") or []
    matrix = report.get("confusion")
    if not labels or not matrix:
        return None
    counts = report.get("counts") or [[0] * len(labels) for _ in labels]
    xs, ys, vs, ns = [], [], [], []
    for i, t in enumerate(labels):
        for j, pr in enumerate(labels):
            xs.append(pr)
            ys.append(t)
            v = matrix[i][j]
            vs.append(np.nan if v is None else float(v))
            ns.append(int(counts[i][j]))
    mapper = LinearColorMapper(palette=Viridis256, low=0, high=1, nan_color="#eeeeee")
    p = _fig(x_range=list(labels), y_range=list(reversed(labels)), height=360,
             sizing_mode="fixed", width=420, title=title, tools="hover,save",
             tooltips=[("true", "@true"), ("predicted", "@pred"), ("share", "@v{0.000}"),
                       ("count", "@n")])
    p.rect(x="pred", y="true", width=1, height=1, source=ColumnDataSource(
        {"pred": xs, "true": ys, "v": vs, "n": ns}), fill_color=transform("v", mapper),
        line_color=None)
    p.xaxis.axis_label = "predicted"
    p.yaxis.axis_label = "true"
    p.xaxis.major_label_orientation = 0.8
    return p


def precision_recall(report: dict, title: str):
    labels = report.get("labels") or []
    if not labels:
        return None
    prec = [report["precision"].get(c) for c in labels]
    rec = [report["recall"].get(c) for c in labels]
    xs = [(c, m) for c in labels for m in ("precision", "recall")]
    vals = [float(v) if v is not None else np.nan for pair in zip(prec, rec, strict=True)
            for v in pair]
    from bokeh.models import FactorRange
    from bokeh.transform import factor_cmap

    p = _fig(x_range=FactorRange(*xs), y_range=Range1d(0, 1.05), height=300, title=title,
             tools="hover,save", tooltips=[("", "@x"), ("value", "@v{0.000}")])
    p.vbar(x="x", top="v", width=0.9, source=ColumnDataSource({"x": xs, "v": vals}),
           fill_color=factor_cmap("x", ["#4c72b0", "#dd8452"], ["precision", "recall"],
                                  start=1, end=2), line_color=None)
    p.xaxis.major_label_orientation = 0.9
    return p


def calibration(calib: dict, title: str):
    """Reliability diagram: mean predicted probability vs. accuracy per bin, and y = x."""
    bins = [b for b in (calib or {}).get("bins", []) if b.get("n")]
    if not bins:
        return None
    p = _fig(x_range=Range1d(0, 1), y_range=Range1d(0, 1), height=340, width=380,
             sizing_mode="fixed", title=title, tools="hover,save",
             tooltips=[("bin", "@lo{0.00}–@hi{0.00}"), ("n", "@n"),
                       ("mean p", "@p{0.000}"), ("right", "@acc{0.000}")])
    p.line([0, 1], [0, 1], line_dash="dashed", color="#999999")
    src = ColumnDataSource({"p": [b["mean_probability"] for b in bins],
                            "acc": [b["accuracy"] for b in bins], "n": [b["n"] for b in bins],
                            "lo": [b["lo"] for b in bins], "hi": [b["hi"] for b in bins]})
    p.line("p", "acc", source=src, line_width=2)
    p.scatter("p", "acc", source=src, size=8)
    p.xaxis.axis_label = "mean predicted probability"
    p.yaxis.axis_label = "fraction right"
    return p


def bic(curve: dict):
    """BIC against the number of mixture components (mean over seeds, ±1 std)."""
    ks, mean = curve.get("ks"), curve.get("bic_mean")
    if not ks or not mean:
        return None
    std = curve.get("bic_std") or [0.0] * len(ks)
    src = ColumnDataSource({"k": ks, "bic": mean, "lo": np.subtract(mean, std),
                            "hi": np.add(mean, std)})
    p = _fig(height=300, title="BIC of the Gaussian mixture", tools="hover,save",
             tooltips=[("K", "@k"), ("BIC", "@bic{0,0}")])
    p.line("k", "bic", source=src, line_width=2)
    p.scatter("k", "bic", source=src, size=7)
    p.add_layout(Whisker(source=src, base="k", lower="lo", upper="hi"))
    p.xaxis.axis_label = "K (components)"
    p.yaxis.axis_label = "BIC"
    return p


def feature_scatter(sample: dict, x_label: str, y_label: str):
    """Detections in a feature plane, one glyph group (and legend entry) per class."""
    p = _fig(height=560, output_backend="webgl", title=f"{y_label} vs {x_label}",
             tools="pan,wheel_zoom,box_zoom,reset,save")
    for cls in AGG_CLASSES:
        m = sample["cls"] == cls
        if not m.any():
            continue
        p.scatter(sample["x"][m], sample["y"][m], size=3, alpha=0.5,
                  color=AGG_COLORS[cls], legend_label=f"{cls} ({int(m.sum()):,})")
    p.xaxis.axis_label = x_label
    p.yaxis.axis_label = y_label
    if p.legend:
        p.legend.click_policy = "hide"
    return p


def sky_map(projection: str, window: tuple[float, float, float, float]):
    """The sky-map figure: one image of the sources, drawn on the server and filled by
    ``static/skymap.js`` from ``/skymap/data`` (again after each pan or zoom), one legend
    entry per class (hiding one redraws without it), hover and tap (click through to the
    source) answered by ``/skymap/near``."""
    from bokeh.events import MouseMove, RangesUpdate, Tap
    from bokeh.models import CustomJS

    x0, x1, y0, y1 = window
    p = figure(sizing_mode="stretch_width", height=560, match_aspect=True,
               x_range=Range1d(x0, x1), y_range=Range1d(y0, y1),
               tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="above",
               title=f"classified sources, {projection} projection (galactic)")
    src = ColumnDataSource({"image": [np.zeros((1, 1), dtype=np.uint32)], "x": [x0],
                            "y": [y0], "dw": [x1 - x0], "dh": [y1 - y0]}, name="sky-image")
    p.image_rgba(image="image", x="x", y="y", dw="dw", dh="dh", source=src, name="sky")
    for cls in AGG_LABELS:  # legend entries only: the points are in the image
        # one point far outside the (fixed) ranges, so the legend draws its swatch
        r = p.scatter([0.0], [1e3], size=8, color=AGG_COLORS[cls], legend_label=cls or "no class",
                      name=f"legend-{cls or 'none'}")
        r.js_on_change("visible", CustomJS(code="window.skymapRefresh && window.skymapRefresh()"))
    p.js_on_event(Tap, CustomJS(code="window.skymapTap && window.skymapTap(cb_obj)"))
    p.js_on_event(MouseMove, CustomJS(code="window.skymapHover && window.skymapHover(cb_obj)"))
    p.js_on_event(RangesUpdate, CustomJS(
        code="window.skymapRefresh && window.skymapRefresh()"))
    p.axis.visible = False
    p.grid.visible = False
    p.legend.click_policy = "hide"
    p.legend.location = "bottom_right"
    return p
