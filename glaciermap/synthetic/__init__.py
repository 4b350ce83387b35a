"""The embedded default worlds: synthetic glacier scenes and the synthetic crevasse world.

:mod:`glaciermap.synthetic.crevasses` writes the crevasse world (``glaciermap synth-crevasses``);
:mod:`glaciermap.synthetic.crevasse_textures` holds its per-class texture models.
"""
