"""The promotion rule of a refit, one for the ctl model and every family's model."""

from __future__ import annotations


def promotion(agg: float | None, active: dict | None, tolerance: float, *,
              refused: str | None = None, what: str = "model",
              first: str = "first model") -> tuple[bool, str]:
    """(promote, reason) of a refit whose aggregated validation accuracy is ``agg``.

    Not promoted when ``refused`` (why it cannot classify enough) or when ``agg`` is worse
    than the ``active`` model's (``validation.aggregated.accuracy``) by more than
    ``tolerance``; promoted otherwise, ``first`` when there is no active model. ``what``
    names the active model in the reason ("model", "gbm model").
    """
    if refused is not None:
        return False, refused
    if active is None:
        return True, first
    old = (active.get("validation") or {}).get("aggregated", {}).get("accuracy")
    if old is not None and agg is not None and agg < old - tolerance:
        return False, (f"aggregated accuracy {agg:.3f} is worse than the active {what}'s "
                       f"{old:.3f} by more than {tolerance}")
    return True, f"aggregated accuracy {_acc(agg)} (active {what}: {old})"


def _acc(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.3f}"
