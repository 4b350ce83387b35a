"""Parametric surface textures of the 11 GEOCLASS glacier surface classes (synthetic crevasse world).

Each class is drawn from a small texture model whose parameters have a physical meaning (the class
descriptions of the GEOCLASS-image v2.0 paper, Sec. 2.3 and 5.1, and Fig. 5):

* a *crevasse set* is a family of linear fractures with orientation ``theta`` (degrees from the x axis,
  i.e. from east), spacing ``s`` (m), width ``w`` (m) and depth ``h`` (m); a crevasse is a dark trough whose
  shadow contrast grows with ``h / (w tan e)`` for sun elevation ``e`` and with how squarely the sun's
  azimuth hits the crevasse walls; its sunlit lip is slightly brighter. ``waviness`` bends the set (shear),
  ``rotation`` turns it across the region (parallel crevasses dragged by shear), ``segment`` (m) cuts it into
  finite crevasses;
* undisturbed snow: sastrugi ripples and low-amplitude roughness; slow-moving ice: bumpy, speckled ice;
* melt streams and ponds: meandering dark channels and dark ponds on smooth ice;
* sea ice: bright floes of a given size on dark open water.

Every texture is returned with zero mean over its region: the region's brightness (albedo times
illumination) is drawn independently of its class by the world generator, so classes cannot be told apart
by mean brightness (:mod:`glaciermap.synthetic.crevasses`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from glaciermap.datasets.crevasse_classes import CrevasseClassV2

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Sun:
    """Illumination of the scene.

    Attributes:
        elevation: Sun elevation above the horizon (degrees).
        azimuth: Direction the light comes from, degrees counter-clockwise from east (x axis).
    """

    elevation: float
    azimuth: float


@dataclass(frozen=True)
class Grid:
    """Local coordinates of a region: ``x`` east and ``y`` north, in metres (float32), shape (rows, cols)."""

    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.float32]

    @classmethod
    def make(cls, rows: int, cols: int, pixel_size: float) -> Grid:
        """A north-up grid of ``rows x cols`` pixels of ``pixel_size`` m."""
        y, x = np.mgrid[0:rows, 0:cols].astype(np.float32) * np.float32(pixel_size)
        return cls(x=x, y=-y)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> Array:
    """Gaussian random field with correlation length about ``scale_px`` pixels, unit std.

    Args:
        rng: Random generator.
        shape: Output (rows, cols).
        scale_px: Correlation length in pixels (coarse noise interpolated bilinearly).

    Returns:
        Field of the given shape, mean 0 and std 1.
    """
    coarse = (
        max(2, math.ceil(shape[0] / scale_px) + 3),
        max(2, math.ceil(shape[1] / scale_px) + 3),
    )
    field = ndimage.zoom(
        rng.standard_normal(coarse), (shape[0] / coarse[0] * 1.0001, shape[1] / coarse[1] * 1.0001), order=1
    )
    field = field[: shape[0], : shape[1]]
    field = np.pad(field, ((0, shape[0] - field.shape[0]), (0, shape[1] - field.shape[1])), mode="edge")
    return (field - field.mean()) / (field.std() + 1e-12)


def crevasse_set(
    grid: Grid,
    sun: Sun,
    rng: np.random.Generator,
    theta: float,
    spacing: float,
    width: float,
    depth: float,
    waviness: float = 0.0,
    rotation: float = 0.0,
    segment: float | None = None,
) -> Array:
    """Reflectance change of one set of crevasses (module docstring for the parameters).

    Args:
        grid: Local coordinates (m).
        sun: Illumination.
        rng: Random generator (phase, bends, segments).
        theta: Crevasse strike, degrees from east.
        spacing: Distance between neighbouring crevasses (m).
        width: Crevasse width at the surface (m).
        depth: Crevasse depth (m).
        waviness: Amplitude of the bends (m).
        rotation: Change of strike across the region (degrees, linear across x).
        segment: Typical crevasse length (m); ``None`` for continuous crevasses.

    Returns:
        Reflectance change (negative in the troughs), shape of the grid.
    """
    if rotation:
        extent = float(grid.x.max() - grid.x.min()) + 1e-9
        t = np.deg2rad(theta + rotation * ((grid.x - grid.x.min()) / extent - 0.5))
        cos_t, sin_t = np.cos(t), np.sin(t)
    else:
        cos_t, sin_t = math.cos(math.radians(theta)), math.sin(math.radians(theta))
    along = grid.x * cos_t + grid.y * sin_t
    across = -grid.x * sin_t + grid.y * cos_t
    if waviness:
        wavelength = spacing * rng.uniform(6.0, 12.0)
        across = across + waviness * np.sin(2 * np.pi * along / wavelength + rng.uniform(0, 2 * np.pi))
    phase = rng.uniform(0, spacing)
    dist = np.mod(across + phase, spacing) - spacing / 2.0  # signed distance to the crevasse axis (m)
    half = width / 2.0
    scaled = np.square(dist / half)
    trough = np.exp(-np.square(scaled))
    # shadow contrast: depth over width, low sun, walls facing across the sun's direction
    facing = abs(math.sin(math.radians(theta - sun.azimuth))) ** 0.5
    contrast = min(0.45, 0.08 * depth / (width * math.tan(math.radians(sun.elevation)))) * (
        0.4 + 0.6 * facing
    )
    lip = 0.25 * contrast * np.exp(-(((dist - 1.4 * half) / half) ** 2))
    effect = -contrast * trough + lip
    if segment is not None:
        crev_id = np.floor((across + phase) / spacing)
        offsets = rng.uniform(0, segment * 2, size=1024)
        shift = offsets[np.mod(crev_id, 1024).astype(np.int64)]
        on = np.mod(along + shift, 2.0 * segment) < segment
        effect = np.where(on, effect, 0.0)
    return effect


def _sastrugi(grid: Grid, rng: np.random.Generator, shape: tuple[int, int], pixel_size: float) -> Array:
    theta = math.radians(rng.uniform(0, 180))
    wavelength = rng.uniform(3.0, 8.0)
    u = grid.x * math.cos(theta) + grid.y * math.sin(theta)
    ripples = 0.006 * np.sin(2 * np.pi * u / wavelength + 2.0 * smooth_noise(rng, shape, 20.0 / pixel_size))
    return ripples + 0.008 * smooth_noise(rng, shape, 6.0 / pixel_size)


def texture(
    cls: CrevasseClassV2, shape: tuple[int, int], pixel_size: float, sun: Sun, rng: np.random.Generator
) -> Array:
    """Zero-mean reflectance texture of one class over a region.

    Args:
        cls: The surface class.
        shape: Region (rows, cols).
        pixel_size: Pixel size (m).
        sun: Illumination.
        rng: Random generator (draws the class's physical parameters).

    Returns:
        Reflectance change, mean 0 over the region.
    """
    grid = Grid.make(shape[0], shape[1], pixel_size)
    u = rng.uniform
    base = _sastrugi(grid, rng, shape, pixel_size)
    flow = u(-15, 15)  # ice flow roughly along x (east); strikes are relative to it

    def cset(**kw: float | None) -> Array:
        return crevasse_set(grid, sun, rng, **kw)  # type: ignore[arg-type]

    builders: dict[CrevasseClassV2, Callable[[], Array]] = {
        CrevasseClassV2.UNDISTURBED_SNOW: lambda: 0.5 * base,
        CrevasseClassV2.SLOW_MOVING_ICE: lambda: (
            0.035 * smooth_noise(rng, shape, u(15, 30) / pixel_size)
            + 0.02 * smooth_noise(rng, shape, 1.5 / pixel_size)
        ),
        CrevasseClassV2.SHEAR: lambda: cset(
            theta=flow + u(35, 55) * rng.choice([-1, 1]),
            spacing=u(12, 25),
            width=u(1.5, 3),
            depth=u(8, 20),
            waviness=u(2, 5),
        ),
        CrevasseClassV2.PARALLEL: lambda: cset(
            theta=flow + 90 + u(-8, 8), spacing=u(8, 16), width=u(0.8, 1.8), depth=u(5, 12)
        ),
        CrevasseClassV2.PARALLEL_SHEAR: lambda: cset(
            theta=flow + 90 + u(-10, 10),
            spacing=u(8, 16),
            width=u(1, 2),
            depth=u(5, 12),
            rotation=u(30, 55) * rng.choice([-1, 1]),
            waviness=u(1, 3),
        ),
        CrevasseClassV2.SUBORDINATE_SHEAR: lambda: (
            0.5 * base
            + cset(
                theta=flow + u(35, 55) * rng.choice([-1, 1]),
                spacing=u(10, 20),
                width=u(0.8, 1.5),
                depth=u(4, 8),
                segment=u(8, 20),
            )
        ),
        CrevasseClassV2.MULTIDIRECTIONAL: lambda: _two_sets(cset, flow, u, equal=True),
        CrevasseClassV2.MULTIGENERATIONAL: lambda: _two_sets(cset, flow, u, equal=False),
        CrevasseClassV2.CHAOS: lambda: _chaos(grid, sun, rng, shape, pixel_size),
        CrevasseClassV2.MELT: lambda: _melt(grid, rng, shape, pixel_size),
        CrevasseClassV2.SEA_ICE: lambda: _sea_ice(rng, shape, pixel_size),
    }
    out = builders[cls]()
    if cls not in (CrevasseClassV2.UNDISTURBED_SNOW, CrevasseClassV2.SUBORDINATE_SHEAR):
        out = out + 0.3 * base
    return out - out.mean()


def _two_sets(
    cset: Callable[..., Array], flow: float, u: Callable[[float, float], float], equal: bool
) -> Array:
    angle = u(50, 90)
    first = cset(theta=flow + 90 + u(-10, 10), spacing=u(10, 20), width=u(1, 2.5), depth=u(6, 14))
    if equal:  # two sets of similar age and strength crossing
        second = cset(theta=flow + 90 + angle, spacing=u(10, 20), width=u(1, 2.5), depth=u(6, 14))
        return first + second
    # an old, wide, partly closed set overprinted by a young, sharp one
    old = cset(theta=flow + 90 + angle, spacing=u(20, 35), width=u(4, 7), depth=u(3, 6), waviness=u(2, 6))
    return 0.6 * old + first


def _chaos(
    grid: Grid, sun: Sun, rng: np.random.Generator, shape: tuple[int, int], pixel_size: float
) -> Array:
    # blocks of broken ice (seracs), each with its own crevasse orientation
    labels = np.floor(smooth_noise(rng, shape, rng.uniform(20, 40) / pixel_size) * 2.5).astype(np.int64)
    out = np.zeros(shape)
    for value in np.unique(labels):
        sel = labels == value
        theta = rng.uniform(0, 180)
        out[sel] = crevasse_set(
            Grid(x=grid.x[sel], y=grid.y[sel]),
            sun,
            rng,
            theta=theta,
            spacing=rng.uniform(5, 10),
            width=rng.uniform(1, 2.5),
            depth=rng.uniform(6, 15),
            segment=rng.uniform(4, 10),
        )
    return out + 0.04 * smooth_noise(rng, shape, 2.0 / pixel_size)


def _melt(grid: Grid, rng: np.random.Generator, shape: tuple[int, int], pixel_size: float) -> Array:
    out = 0.02 * smooth_noise(rng, shape, 25.0 / pixel_size)
    n_streams = int(rng.integers(1, 4))
    for _ in range(n_streams):
        theta = math.radians(rng.uniform(0, 180))
        along = grid.x * math.cos(theta) + grid.y * math.sin(theta)
        across = -grid.x * math.sin(theta) + grid.y * math.cos(theta)
        centre = rng.uniform(across.min(), across.max())
        meander = rng.uniform(5, 15) * np.sin(2 * np.pi * along / rng.uniform(40, 90) + rng.uniform(0, 6.3))
        half = rng.uniform(1.0, 3.0)
        out -= 0.25 * np.exp(-(((across - centre - meander) / half) ** 2))
    ponds = smooth_noise(rng, shape, rng.uniform(15, 30) / pixel_size) > rng.uniform(1.6, 2.2)
    out -= 0.3 * ndimage.gaussian_filter(ponds.astype(np.float64), 1.0)
    return out


def _sea_ice(rng: np.random.Generator, shape: tuple[int, int], pixel_size: float) -> Array:
    field = smooth_noise(rng, shape, rng.uniform(8, 25) / pixel_size)
    floes = field > rng.uniform(-0.6, 0.4)
    edges = ndimage.binary_erosion(floes, iterations=1) ^ floes
    return 0.35 * floes.astype(np.float64) + 0.05 * edges + 0.01 * smooth_noise(rng, shape, 1.5 / pixel_size)
