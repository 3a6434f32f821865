"""Static annual-average carbon intensity per zone: the last rung of the fallback chain.

Values are Electricity Maps lifecycle (LCA) consumption-based averages in gCO2e/kWh.
The paper's three zones use the paper's Table 2 figures (2023); the others are the 2023
means of the Electricity Maps data-portal hourly exports (see ``../shared/data/README.md``).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from forecasts.errors import ForecastsError
from forecasts.series import SignalKind

__all__ = ["STATIC_ANNUAL_INTENSITY", "STATIC_KIND", "UnknownZoneError", "static_annual_intensity"]

STATIC_KIND: Final[SignalKind] = "lifecycle"  # what every value below is


class UnknownZoneError(ForecastsError, KeyError):
    """A zone key that no source or table knows."""

    def __init__(self, zone: str, known: tuple[str, ...] = ()) -> None:
        self.zone = zone
        hint = f" (known: {', '.join(known)})" if known else ""
        super().__init__(f"unknown zone {zone!r}{hint}")

    def __str__(self) -> str:
        return str(self.args[0])


STATIC_ANNUAL_INTENSITY: Final = MappingProxyType(
    {
        # The paper's Table 2 (Electricity Maps, 2023 averages).
        "CA-QC": 31.0,
        "US-CAL-CISO": 262.0,
        "US-NW-PACE": 647.0,
        # 2023 LCA means of the Electricity Maps portal exports.
        "DE": 367.0,
        "GB": 187.5,
        "FR": 56.5,
        "ES": 160.1,
        "NO": 34.1,
        "CA-ON": 72.8,
        "US-TEX-ERCO": 380.5,
        "US-MIDA-PJM": 392.4,
        "US-NY-NYIS": 277.8,
        "US-NE-ISNE": 283.0,
        "US-MIDW-MISO": 496.3,
        "US-CENT-SWPP": 431.6,
        "US-NW-BPAT": 125.1,
        "US-NW-PACW": 207.9,
        "US-SE-SOCO": 431.0,
    }
)


def static_annual_intensity(zone: str) -> float:
    """Return the static annual average intensity of ``zone`` in gCO2e/kWh.

    Zone keys are matched case-insensitively.

    Raises:
        UnknownZoneError: the zone is not in the table.
    """
    for key, value in STATIC_ANNUAL_INTENSITY.items():
        if key.lower() == zone.strip().lower():
            return value
    raise UnknownZoneError(zone, tuple(STATIC_ANNUAL_INTENSITY))
