"""On-site energy of the regions: PV, batteries, other load (``[regions.site]``).

- :mod:`.model`: a region's :class:`Site` from its settings (pvlib PV or a measured CSV).
- :mod:`.view`: :class:`SiteView`, the effective intensity planners see for a site's zone.

The pure model (dispatch, job shares, effective intensity) is
:mod:`policies.footprint.site`; replay accounting uses it in :mod:`daemon.replay.sites`.
"""

from daemon.sites.model import Site, SiteConfigError, build_site, build_sites, sites_of
from daemon.sites.view import SiteIntensity, SiteView

__all__ = [
    "Site",
    "SiteConfigError",
    "SiteIntensity",
    "SiteView",
    "build_site",
    "build_sites",
    "sites_of",
]
