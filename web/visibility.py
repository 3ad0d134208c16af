"""Which instruments' pages and products a user sees: SVOM's or COLIBRI's, as the GIC separates them.

Each instrument's telescope comes from its definition (``config/instruments/*.yaml``,
``telescope: SVOM|COLIBRI``), matched on any of the names a product may carry (the short
name, the INSTRUME value, the product code), or on their prefix for derived codes
(``DDRAGO-B-BIAS-r``). Products of an instrument the definitions do not name count as
SVOM's (the mission's own ground segment).
"""

from __future__ import annotations

import functools

from svomflow.web.auth import COLIBRI_ROLES, SVOM_ROLES, CurrentUser, Role

__all__ = [
    "HK_INSTRUMENTS",
    "can_see",
    "instrument_roles",
    "telescope_of",
    "visible_hk_instruments",
]

#: Housekeeping sources and the roles that see them.
HK_INSTRUMENTS: dict[str, tuple[Role, ...]] = {"ECLAIRS": SVOM_ROLES, "COLIBRI": COLIBRI_ROLES}


@functools.cache
def _telescopes() -> dict[str, str]:
    from svomflow.config.instrument import available_instruments, load_instrument

    out: dict[str, str] = {}
    for name in available_instruments():
        d = load_instrument(name)
        for alias in (d.name, d.instrument, getattr(d, "product_code", None)):
            if alias:
                out[str(alias).upper()] = d.telescope.upper()
    return out


def telescope_of(instrument: str) -> str:
    """Return the telescope (``SVOM`` or ``COLIBRI``) of an instrument name or product code."""
    key = instrument.upper()
    if key == "COLIBRI":  # the housekeeping source named after the telescope
        return key
    known = _telescopes()
    if key in known:
        return known[key]
    # derived codes: QC plots ("DDRAGO-B-BIAS-r"), calibration histories ("ECLAIRS-PIXGAIN")
    prefixes = [a for a in known if key.startswith(a + "-")]
    return known[max(prefixes, key=len)] if prefixes else "SVOM"


def instrument_roles(instrument: str) -> tuple[Role, ...]:
    """Return the roles that see an instrument's products and pages."""
    return COLIBRI_ROLES if telescope_of(instrument) == "COLIBRI" else SVOM_ROLES


def visible_hk_instruments(user: CurrentUser) -> list[str]:
    """Return the housekeeping sources whose pages ``user`` sees."""
    return [name for name, roles in HK_INSTRUMENTS.items() if user.has(*roles)]


def can_see(user: CurrentUser, instrument: str) -> bool:
    """Return whether ``user`` sees the products and pages of ``instrument``."""
    return user.has(*instrument_roles(instrument))
