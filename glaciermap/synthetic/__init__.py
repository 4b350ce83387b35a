"""The synthetic glacier world: seeded, physically plausible scene folders (``docs/synthetic_world.md``).

Modules:

* :mod:`~glaciermap.synthetic.generate`: :func:`generate_scene` writes a scene folder window by window;
* :mod:`~glaciermap.synthetic.terrain`: the coarse stage (relief, glaciers, debris, sea, shadows, clouds);
* :mod:`~glaciermap.synthetic.hydrology`: depression filling, flat draining, D8 flow routing and lakes;
* :mod:`~glaciermap.synthetic.render`: the fine stage (every modality of one window of pixels);
* :mod:`~glaciermap.synthetic.noise`: seeded noise and B-spline interpolation evaluated at any pixel;
* :mod:`~glaciermap.synthetic.presets`: the region presets (:data:`PRESETS`, :func:`get_preset`);
* :mod:`~glaciermap.synthetic.crevasses`: the synthetic crevasse world (``glaciermap synth-crevasses``), with
  the per-class texture models of :mod:`~glaciermap.synthetic.crevasse_textures`.
"""

from glaciermap.synthetic.crevasses import generate_crevasse_world
from glaciermap.synthetic.generate import GENERATOR_VERSION, GLACIER_FILE, STATS_FILE, generate_scene
from glaciermap.synthetic.presets import DEFAULT_PRESET, PRESETS, REGION_CODES, RegionPreset, get_preset

__all__ = [
    "DEFAULT_PRESET",
    "GENERATOR_VERSION",
    "GLACIER_FILE",
    "PRESETS",
    "REGION_CODES",
    "STATS_FILE",
    "RegionPreset",
    "generate_crevasse_world",
    "generate_scene",
    "get_preset",
]
