"""Region presets, map projection and sun geometry of the synthetic glacier world.

A :class:`RegionPreset` fixes everything that gives a region its character: where it is (region code of the
GlaViTU benchmark, centre latitude/longitude, hence UTM zone and sun position), its hypsometry (valley floor
and summit elevations), its climate (equilibrium-line altitude, mass-balance gradient, air temperature) and
how much debris, seasonal snow, lakes, vegetation and sea it has. See ``docs/synthetic_world.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from glaciermap.errors import ConfigError

REGION_CODES: Final[tuple[str, ...]] = ("ALP", "AN", "AWA", "CA", "GR", "HMA", "LL", "NZ", "SA", "SC", "SVAL")
"""The 11 region codes of the GlaViTU benchmark in sorted order (GlaViTU reference 1.4 and 4.1); the index of
a code is its slot in the 12-way region one-hot (slot 11 = unknown)."""


@dataclass(frozen=True)
class RegionPreset:
    """Character of one synthetic region.

    Attributes:
        name: Preset name (``"karakoram"``).
        region_code: GlaViTU region code (one of :data:`REGION_CODES`).
        description: One line for docs and ``glaciermap synth`` output.
        center_lat: Scene centre latitude (degrees, north positive).
        center_lon: Scene centre longitude (degrees, east positive).
        year: Acquisition year written to ``scene.json``.
        sensor: Optical sensor the spectra imitate.
        day_of_year: Acquisition day (late ablation season), used for the sun position.
        z_floor: Nominal lowest elevation (m a.s.l.); with ``z_summit`` it sets the relief the terrain is
            scaled towards (non-maritime presets) and the down-glacier darkening of bare ice.
        z_summit: Nominal highest elevation (m a.s.l.).
        valley_gradient: Slope of the main valley floors (degrees).
        tributary_gradient: Slope of tributary valley floors (degrees).
        valley_width: Width of the main valley floors (m); tributaries a tenth as wide.
        hillslope: Typical slope of valley walls (degrees).
        accumulation_area: Share of the scene above the ELA (the terrain is shifted, or for maritime
            presets scaled, vertically to it).
        ela: Equilibrium-line altitude (m a.s.l.).
        mb_gradient: Mass-balance gradient db/dz below the ELA (m w.e. per m per year).
        mb_max: Maximum (accumulation) mass balance above the ELA (m w.e. per year).
        debris_supply: Rock-wall debris supply factor (0 = clean-ice region).
        snow_patches: Amount of seasonal snow outside glaciers (0..1).
        lake_density: Mean number of lakes per km2 (proglacial lakes and tarns).
        treeline: Upper limit of vegetation (m a.s.l.), or None where there is none.
        sea: Whether the low end of the terrain is open sea (maritime region with calving fronts).
        sea_fraction: Share of the scene below sea level in maritime presets (drowned valley mouths).
        melange: Density of ice melange and icebergs in front of calving fronts (0..1).
        t_air_sea_level: Air temperature reduced to sea level at acquisition time (K).
        relief_wavelength: Largest terrain wavelength (m); controls valley spacing.
    """

    name: str
    region_code: str
    description: str
    center_lat: float
    center_lon: float
    year: int
    sensor: str
    day_of_year: int
    z_floor: float
    z_summit: float
    valley_gradient: float
    tributary_gradient: float
    valley_width: float
    hillslope: float
    accumulation_area: float
    ela: float
    mb_gradient: float
    mb_max: float
    debris_supply: float
    snow_patches: float
    lake_density: float
    treeline: float | None
    sea: bool
    sea_fraction: float
    melange: float
    t_air_sea_level: float
    relief_wavelength: float


PRESETS: Final[dict[str, RegionPreset]] = {
    "karakoram": RegionPreset(
        name="karakoram",
        region_code="HMA",
        description="debris-rich high mountains (central Karakoram): long debris-covered valley tongues",
        center_lat=35.75,
        center_lon=76.40,
        year=2021,
        sensor="Sentinel-2 MSI",
        day_of_year=237,
        z_floor=3400.0,
        z_summit=7200.0,
        valley_gradient=3.0,
        tributary_gradient=12.0,
        valley_width=800.0,
        hillslope=38.0,
        accumulation_area=0.35,
        ela=5350.0,
        mb_gradient=0.0055,
        mb_max=1.0,
        debris_supply=1.0,
        snow_patches=0.15,
        lake_density=0.05,
        treeline=None,
        sea=False,
        sea_fraction=0.0,
        melange=0.0,
        t_air_sea_level=306.0,
        relief_wavelength=24000.0,
    ),
    "svalbard": RegionPreset(
        name="svalbard",
        region_code="SVAL",
        description="clean-ice polar (Spitsbergen): ice caps and clean valley glaciers, low sun",
        center_lat=78.85,
        center_lon=16.20,
        year=2020,
        sensor="Landsat 8 OLI",
        day_of_year=230,
        z_floor=20.0,
        z_summit=1250.0,
        valley_gradient=1.5,
        tributary_gradient=6.0,
        valley_width=900.0,
        hillslope=26.0,
        accumulation_area=0.2,
        ela=420.0,
        mb_gradient=0.0045,
        mb_max=0.6,
        debris_supply=0.08,
        snow_patches=0.1,
        lake_density=0.06,
        treeline=None,
        sea=False,
        sea_fraction=0.0,
        melange=0.0,
        t_air_sea_level=279.0,
        relief_wavelength=18000.0,
    ),
    "alaska": RegionPreset(
        name="alaska",
        region_code="AWA",
        description="maritime (Gulf of Alaska): tidewater glaciers with calving fronts and ice melange",
        center_lat=60.05,
        center_lon=-141.10,
        year=2009,
        sensor="Landsat 5 TM",
        day_of_year=235,
        z_floor=-300.0,
        z_summit=2400.0,
        valley_gradient=2.5,
        tributary_gradient=8.0,
        valley_width=900.0,
        hillslope=32.0,
        accumulation_area=0.5,
        ela=900.0,
        mb_gradient=0.0065,
        mb_max=3.0,
        debris_supply=0.45,
        snow_patches=0.1,
        lake_density=0.08,
        treeline=550.0,
        sea=True,
        sea_fraction=0.12,
        melange=0.8,
        t_air_sea_level=287.0,
        relief_wavelength=24000.0,
    ),
    "alps": RegionPreset(
        name="alps",
        region_code="ALP",
        description="temperate mid-latitude (Swiss Alps): valley glaciers, some debris, vegetated valleys",
        center_lat=46.50,
        center_lon=8.05,
        year=2019,
        sensor="Sentinel-2 MSI",
        day_of_year=240,
        z_floor=1500.0,
        z_summit=4100.0,
        valley_gradient=3.0,
        tributary_gradient=12.0,
        valley_width=700.0,
        hillslope=33.0,
        accumulation_area=0.3,
        ela=2950.0,
        mb_gradient=0.0075,
        mb_max=1.5,
        debris_supply=0.5,
        snow_patches=0.15,
        lake_density=0.1,
        treeline=2200.0,
        sea=False,
        sea_fraction=0.0,
        melange=0.0,
        t_air_sea_level=300.0,
        relief_wavelength=20000.0,
    ),
}
"""Region presets by name; ``"karakoram"`` is the default."""

DEFAULT_PRESET: Final[str] = "karakoram"


def get_preset(name: str) -> RegionPreset:
    """Look up a region preset by name.

    Args:
        name: Preset name, case-insensitive (``karakoram``, ``svalbard``, ``alaska``, ``alps``).

    Returns:
        The preset.

    Raises:
        ConfigError: If there is no preset of that name (the message lists the valid ones).
    """
    preset = PRESETS.get(str(name).lower())
    if preset is None:
        raise ConfigError(f"unknown region preset {name!r}; expected one of: {', '.join(sorted(PRESETS))}")
    return preset


def utm_epsg(lat: float, lon: float) -> int:
    """EPSG code of the WGS 84 / UTM zone containing a point, with the Norway and Svalbard exceptions.

    Args:
        lat: Latitude (degrees, -80..84).
        lon: Longitude (degrees, -180..180).

    Returns:
        326zz for the northern hemisphere, 327zz for the southern (zz = zone 1..60).

    Raises:
        ConfigError: If the point lies outside the UTM latitude band or the valid longitude range.
    """
    if not -80.0 <= lat <= 84.0 or not -180.0 <= lon <= 180.0:
        raise ConfigError(f"latitude/longitude ({lat}, {lon}) outside the UTM domain (-80..84, -180..180)")
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    if 56.0 <= lat < 64.0 and 3.0 <= lon < 12.0:
        zone = 32
    if 72.0 <= lat <= 84.0 and 0.0 <= lon < 42.0:
        zone = 31 if lon < 9.0 else 33 if lon < 21.0 else 35 if lon < 33.0 else 37
    return (32600 if lat >= 0.0 else 32700) + zone


def sun_position(lat: float, day_of_year: int, solar_hour: float = 10.5) -> tuple[float, float]:
    """Sun azimuth and elevation from the standard declination / hour-angle formulas.

    Declination by Cooper's approximation, delta = 23.44 deg * sin(360/365 * (284 + n)); elevation from
    sin(e) = sin(lat) sin(delta) + cos(lat) cos(delta) cos(h), h = 15 deg * (t - 12) (Iqbal, *An Introduction
    to Solar Radiation*, 1983, eqs. 1.3.1 and 1.5.1). ``solar_hour`` 10.5 is the morning overpass of
    sun-synchronous optical satellites.

    Args:
        lat: Latitude (degrees).
        day_of_year: Day of the year (1..366).
        solar_hour: Local solar time (hours).

    Returns:
        (azimuth, elevation) in degrees; azimuth clockwise from north.
    """
    decl = math.radians(23.44) * math.sin(math.radians(360.0 / 365.0 * (284 + day_of_year)))
    phi = math.radians(lat)
    h = math.radians(15.0 * (solar_hour - 12.0))
    sin_e = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(h)
    elev = math.asin(max(-1.0, min(1.0, sin_e)))
    cos_az = (math.sin(decl) - math.sin(elev) * math.sin(phi)) / max(1e-9, math.cos(elev) * math.cos(phi))
    az = math.degrees(math.acos(max(-1.0, min(1.0, cos_az))))
    if h > 0:  # afternoon: sun in the west
        az = 360.0 - az
    return az, math.degrees(elev)
