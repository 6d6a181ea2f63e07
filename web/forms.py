"""Parsing of what a user types into the search form: positions, radii, numbers."""

from __future__ import annotations

import math
import re

#: Largest cone radius accepted (degrees).
MAX_RADIUS_DEG = 10.0
_SEXAGESIMAL = re.compile(r"[:hms\s]|[dD°'\"]")


class FormError(ValueError):
    """A field that cannot be read: the message names the field and what was expected."""


def position(ra: str, dec: str) -> tuple[float, float]:
    """``ra``, ``dec`` in degrees (``10.684``) or sexagesimal (``00:42:44.3``/``00h42m44.3s``,
    ``+41:16:09``/``41d16m09s``); a sexagesimal RA is in hours. Returns degrees (ICRS)."""
    from astropy import units as u
    from astropy.coordinates import Angle

    ra, dec = ra.strip(), dec.strip()
    try:
        ra_deg = (Angle(ra, unit=u.hourangle).degree if _SEXAGESIMAL.search(ra)
                  else float(ra))
    except (ValueError, u.UnitsError) as e:
        raise FormError(f"RA {ra!r} is not an angle: expected degrees (10.684) or "
                        f"hh:mm:ss (00:42:44.3) ({e})") from None
    try:
        dec_deg = Angle(dec, unit=u.deg).degree if _SEXAGESIMAL.search(dec) else float(dec)
    except (ValueError, u.UnitsError) as e:
        raise FormError(f"Dec {dec!r} is not an angle: expected degrees (41.27) or "
                        f"±dd:mm:ss (+41:16:09) ({e})") from None
    if not (math.isfinite(ra_deg) and 0 <= ra_deg < 360 + 1e-9):
        raise FormError(f"RA {ra!r} is outside [0, 360) degrees")
    if not (math.isfinite(dec_deg) and -90 <= dec_deg <= 90):
        raise FormError(f"Dec {dec!r} is outside [-90, 90] degrees")
    return float(ra_deg) % 360.0, float(dec_deg)


def radius(text: str) -> float:
    """A cone radius in degrees: a plain number is arcminutes; or with a unit (``30"``,
    ``1'``, ``0.5arcmin``, ``0.1deg``)."""
    from astropy import units as u
    from astropy.coordinates import Angle

    text = text.strip()
    try:
        deg = float(text) / 60.0
    except ValueError:
        try:
            deg = float(Angle(text).degree)
        except (ValueError, u.UnitsError):
            raise FormError(f"radius {text!r} is not an angle: expected arcminutes (1.5) "
                            "or a number with a unit (30\", 1', 0.1deg)") from None
    if not (math.isfinite(deg) and 0 < deg <= MAX_RADIUS_DEG):
        raise FormError(f"radius {text!r} must be above 0 and at most {MAX_RADIUS_DEG:g} deg")
    return deg


def probability(text: str) -> float:
    try:
        p = float(text)
    except ValueError:
        raise FormError(f"minimum probability {text!r} is not a number in [0, 1]") from None
    if not (0 <= p <= 1):
        raise FormError(f"minimum probability {text!r} is outside [0, 1]")
    return p
