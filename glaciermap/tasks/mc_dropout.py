"""Monte-Carlo dropout as the GlaViTU paper defines it: dropout active in training as well as at inference.

The models' dropout layers are :class:`~glaciermap.models.blocks.MCDropout`: off in training unless
``train_active`` (the reference's behaviour, as the authors' reference implementation does), forced on at inference by
``SegmentationModel.set_mc_dropout``. :func:`enable_training_dropout` sets ``train_active`` on every one of them,
so the network is trained with the same dropout that MC inference samples, and MC-dropout confidence can be
calibrated and compared with softmax confidence on the same scenes.
"""

from __future__ import annotations

from torch import nn

from glaciermap.errors import ConfigError
from glaciermap.models.blocks import MCDropout


def enable_training_dropout(model: nn.Module, name: str = "model") -> int:
    """Make every :class:`MCDropout` layer of ``model`` drop units in ``train()`` mode.

    Args:
        model: The network.
        name: Its name, for messages.

    Returns:
        The number of dropout layers switched on.

    Raises:
        ConfigError: If the model has no dropout layer with a positive rate.
    """
    layers = [m for m in model.modules() if isinstance(m, MCDropout) and m.p > 0]
    if not layers:
        raise ConfigError(
            f"mc_dropout_training is set but model {name!r} has no dropout layer with a positive rate; "
            "expected a model with dropout (e.g. glavitu with model_kwargs dropout: 0.1)"
        )
    for layer in layers:
        layer.train_active = True
    return len(layers)
