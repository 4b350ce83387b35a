"""How a scene is mapped: :class:`MapOptions`, the one declaration of every mapping option.

:func:`glaciermap.inference.map_scene`, the ``glaciermap map`` command (its arguments are generated from the
fields below, :func:`add_arguments` / :func:`from_arguments`) and the Lightning mapping task
(:class:`glaciermap.tasks.mapping.SceneMappingTask`) all take a :class:`MapOptions`.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from glaciermap.errors import ConfigError
from glaciermap.inference.windows import BlendWindow, GridLayout

__all__ = [
    "Backend",
    "Convolution",
    "MapOptions",
    "Precision",
    "add_arguments",
    "from_arguments",
    "with_overrides",
]

Precision = Literal["auto", "32", "bf16"]
"""Arithmetic of the model: ``"auto"`` (bf16 autocast on CUDA and on CPUs with native bf16 (AMX / AVX-512
BF16), float32 elsewhere), ``"32"`` or ``"bf16"``."""

Convolution = Literal["auto", "direct", "winograd"]
"""How the 3x3 convolutions of the torch backend are computed on a CPU in float32: ``"direct"`` (oneDNN's
kernels), ``"winograd"`` (NNPACK's Winograd kernels, :mod:`glaciermap.models.winograd`; contiguous tensors) or
``"auto"`` (Winograd on x86 CPUs with AVX2 but no AVX-512, :func:`glaciermap.models.winograd.cpu_prefers_winograd`;
direct elsewhere, on a GPU and in bf16)."""

Backend = Literal["torch", "onnxruntime", "openvino"]
"""Runtime of the model's windows (:mod:`glaciermap.inference.backends`): ``"torch"`` (default, any device),
``"onnxruntime"`` or ``"openvino"`` (CPU, float32; the ``onnx`` / ``openvino`` extras)."""


def _cli(
    help: str, *, flag: str | None = None, metavar: str | None = None, aliases: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Field metadata: the command-line help, ``flag`` and ``aliases``.

    Args:
        help: The argument's help text.
        flag: The ``--no-...`` form of a switch that defaults to True.
        metavar: The value's name in the help.
        aliases: Other spellings of the argument (``--blend`` for ``--window``).

    Returns:
        The metadata of a :class:`MapOptions` field.
    """
    meta: dict[str, Any] = {"help": help}
    if flag is not None:
        meta["flag"] = flag
    if aliases:
        meta["aliases"] = aliases
    if metavar is not None:
        meta["metavar"] = metavar
    return meta


@dataclass(frozen=True)
class MapOptions:
    """How a scene is mapped (every field is also a ``glaciermap map`` argument).

    Attributes:
        window_size: Window side S in pixels (default: the model's ``img_size`` hyper-parameter, else 384);
            a multiple of the model's ``size_multiple``.
        overlap: Fraction of a window shared with its neighbour, in ``[0, 1)`` (default 1/8: about 1.31
            window evaluations per pixel against 4 at the GlaViTU code's 0.5; chosen by
            ``benchmarks/overlap_study.py``, see ``docs/mapping.md``).
        window: Blending weight, ``"cosine"`` (Hann, default), ``"gaussian"`` (the GlaViTU code's) or
            ``"crop"`` (each window contributes only its central part; no blending). Command line:
            ``--window`` or ``--blend``. ``overlap=0.5, window="gaussian"`` is the GlaViTU code's setting.
        layout: Padded grid, ``"compact"`` (fewest windows) or ``"reference"`` (the GlaViTU code's).
        batch_size: Windows per forward pass (default ``None``: 1 on a CPU, where batch 1 measured 1.06-1.09x
            faster than batch 8 on idle 2-core machines and needs 1.2 GB less memory, 8 on a GPU; see
            :func:`glaciermap.inference.predictor.default_batch_size` and ``docs/mapping.md``).
        tta: Average the eight dihedral transforms of every window (GlaViTU paper, Methods).
        mc_passes: Monte-Carlo dropout passes per window (0 or 1: a single deterministic pass).
        seed: Seed of the global torch random generator for Monte-Carlo dropout (``None``: not seeded), and
            of the window sample of bias optimisation (``None``: 0).
        device: ``"auto"`` (CUDA if available, else CPU) or a torch device string.
        precision: See :data:`Precision`.
        channels_last: Use channels-last tensors (default; measured faster on CPU and the usual choice on GPU).
            Winograd convolutions (``convolution``) run on contiguous tensors instead.
        convolution: See :data:`Convolution` (``"auto"`` by default).
        backend: See :data:`Backend` (``"torch"`` by default).
        region: Region code for region-encoding models (default: the scene's ``region`` if the model knows
            it, else ``"unseen"``).
        region_vector: Soft region vector (length = number of region codes + 1) for region-encoding models,
            e.g. from bias optimisation; overrides ``region``.
        bias_optimisation: Optimise the region vector of every scene before mapping it (region-encoding
            models; GlaViTU paper "Strategies", Eqs. 1-2): the fast procedure of
            :func:`glaciermap.inference.bias_optimisation.optimise_region` with ``bo_windows``, ``bo_steps``,
            ``seed`` and the map's window size; writes ``region_vector.json`` and ``summary["bias_optimisation"]``.
            Not with ``region`` or ``region_vector``.
        bo_windows: Bias optimisation: valid windows sampled from the scene.
        bo_steps: Bias optimisation: most Adam updates.
        bo_lr_floor: Bias optimisation: stop when rejected steps (undone, learning rate halved) have brought the
            learning rate below this (``FAST_LR_FLOOR`` of :mod:`glaciermap.inference.bias_optimisation`,
            1e-3; 0: never).
        region_vector_record: Where ``region_vector`` came from (e.g. a reused ``region_vector.json``), copied
            into ``summary["bias_optimisation"]``; not a command-line argument.
        check_ranges: Stop with a clear error when a band's values are not in the expected units
            (:func:`glaciermap.datasets.scene_folder.check_value_ranges`); ``False`` maps unusual data anyway.
        prefetch: Row chunks read ahead by the reader thread.
        uncertain_below: Also write ``uncertain.tif``, 1 where the calibrated confidence (the raw confidence of
            a model without calibrator) is below this value, e.g. 0.95 for the GlaViTU paper's 95 % bands
            (``None``: not written).
    """

    window_size: int | None = field(
        default=None, metadata=_cli("window side (default: the model's, else 384)", metavar="PX")
    )
    overlap: float = field(
        default=0.125,
        metadata=_cli(
            "fraction of a window shared with its neighbour (default 0.125; the GlaViTU code's: 0.5)"
        ),
    )
    window: BlendWindow = field(
        default="cosine",
        metadata=_cli(
            "blending weight: gaussian (the GlaViTU code's), cosine (Hann, default) or crop (each window's "
            "centre only)",
            aliases=("--blend",),
        ),
    )
    layout: GridLayout = field(
        default="compact",
        metadata=_cli("padding: fewest windows (compact) or the GlaViTU code's (reference)"),
    )
    batch_size: int | None = field(
        default=None, metadata=_cli("windows per forward pass (default: 1 on a CPU, 8 on a GPU)", metavar="N")
    )
    tta: bool = field(default=False, metadata=_cli("test-time augmentation: 8 flips/rotations, averaged"))
    mc_passes: int = field(
        default=0, metadata=_cli("Monte-Carlo dropout passes (0: off); writes mc_std.tif", metavar="N")
    )
    seed: int | None = field(
        default=0, metadata=_cli("seed of Monte-Carlo dropout and bias optimisation (default 0)")
    )
    device: str = field(default="auto", metadata=_cli("auto (CUDA if available), cpu, cuda, cuda:N"))
    precision: Precision = field(
        default="auto",
        metadata=_cli("auto: bf16 autocast on CUDA and on CPUs with native bf16, float32 elsewhere"),
    )
    channels_last: bool = field(
        default=True, metadata=_cli("contiguous instead of channels-last tensors", flag="--no-channels-last")
    )
    convolution: Convolution = field(
        default="auto",
        metadata=_cli(
            "3x3 convolutions on a CPU in float32: auto (Winograd on AVX2 CPUs without AVX-512), direct or winograd"
        ),
    )
    backend: Backend = field(
        default="torch",
        metadata=_cli("runtime of the windows: torch (default), or on the CPU onnxruntime or openvino"),
    )
    region: str | None = field(
        default=None,
        metadata=_cli(
            "region of a region-encoding model (default: the scene's region if the model knows it, else unseen)",
            metavar="CODE",
        ),
    )
    region_vector: Sequence[float] | None = field(default=None, metadata={"cli": False})
    bias_optimisation: bool = field(
        default=False,
        metadata=_cli(
            "optimise the region vector of each scene first (GlaViTU Eqs. 1-2); region models only"
        ),
    )
    bo_windows: int = field(
        default=32, metadata=_cli("bias optimisation: valid windows sampled (default 32)", metavar="N")
    )
    bo_steps: int = field(
        default=50, metadata=_cli("bias optimisation: most Adam steps (default 50)", metavar="N")
    )
    bo_lr_floor: float = field(
        default=1e-3,
        metadata=_cli(
            "bias optimisation: stop when rejected steps halve the learning rate below LR (default 1e-3; 0: never)",
            metavar="LR",
        ),
    )
    region_vector_record: dict[str, Any] | None = field(default=None, metadata={"cli": False})
    check_ranges: bool = field(
        default=True,
        metadata=_cli(
            "map data whose values are outside the expected units and ranges", flag="--no-range-check"
        ),
    )
    prefetch: int = field(default=2, metadata=_cli("row chunks read ahead of the model (default 2)"))
    uncertain_below: float | None = field(
        default=None,
        metadata=_cli(
            "write uncertain.tif: 1 where calibrated (else raw) confidence < CONF, e.g. 0.95 (95 %% bands)",
            metavar="CONF",
        ),
    )

    def validate(self) -> None:
        """Check every option.

        Raises:
            ConfigError: Naming the first invalid option and what was expected.
        """
        for name, kind in (
            ("window", BlendWindow),
            ("layout", GridLayout),
            ("precision", Precision),
            ("convolution", Convolution),
            ("backend", Backend),
        ):
            value = getattr(self, name)
            if value not in get_args(kind):
                raise ConfigError(f"{name} is {value!r}; expected one of {', '.join(get_args(kind))}")
        for name in ("batch_size", "prefetch", "bo_windows"):
            value = getattr(self, name)
            if name == "batch_size" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} is {value!r}; expected a positive integer")
        if isinstance(self.mc_passes, bool) or not isinstance(self.mc_passes, int) or self.mc_passes < 0:
            raise ConfigError(f"mc_passes is {self.mc_passes!r}; expected 0 (off) or a number of passes")
        if isinstance(self.bo_steps, bool) or not isinstance(self.bo_steps, int) or self.bo_steps < 0:
            raise ConfigError(f"bo_steps is {self.bo_steps!r}; expected a number of steps >= 0")
        f = self.bo_lr_floor
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0.0 <= f < float("inf"):
            raise ConfigError(f"bo_lr_floor is {f!r}; expected a learning rate >= 0 (0: no floor)")
        if self.bias_optimisation and (self.region is not None or self.region_vector is not None):
            given = "region" if self.region is not None else "region vector"
            raise ConfigError(
                f"bias optimisation chooses the region vector itself; do not also give a {given} "
                "(--bias-optimisation with --region or --region-vector)"
            )
        if self.window_size is not None and (
            isinstance(self.window_size, bool)
            or not isinstance(self.window_size, int)
            or self.window_size < 1
        ):
            raise ConfigError(f"window_size is {self.window_size!r}; expected a positive number of pixels")
        if not (isinstance(self.overlap, int | float) and 0.0 <= self.overlap < 1.0):
            raise ConfigError(f"overlap is {self.overlap!r}; expected a fraction in [0, 1) (0.5 = 50 %)")
        u = self.uncertain_below
        if u is not None and not (isinstance(u, int | float) and not isinstance(u, bool) and 0.0 < u <= 1.0):
            raise ConfigError(f"uncertain_below is {u!r}; expected a confidence in (0, 1], e.g. 0.95")

    def summary(self) -> dict[str, Any]:
        """The options that shape the result, for ``summary.json``."""
        return {
            "overlap": self.overlap,
            "window": self.window,
            "layout": self.layout,
            "batch_size": self.batch_size,
            "backend": self.backend,
            "tta": self.tta,
            "mc_passes": self.mc_passes,
            "uncertain_below": self.uncertain_below,
        }


def with_overrides(options: MapOptions | None, overrides: Mapping[str, Any]) -> MapOptions:
    """``options`` (default :class:`MapOptions`) with some fields replaced, validated.

    Args:
        options: The base options.
        overrides: Field name -> value.

    Returns:
        The new options.

    Raises:
        ConfigError: If a name is not a :class:`MapOptions` field or a value is invalid.
    """
    names = {f.name for f in dataclasses.fields(MapOptions)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(
            f"unknown mapping option {unknown[0]!r}; expected one of {', '.join(sorted(names))}"
        )
    result = dataclasses.replace(options or MapOptions(), **overrides)
    result.validate()
    return result


def _cli_fields() -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(MapOptions) if f.metadata.get("cli", True)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one argument per :class:`MapOptions` field (``--window-size``, ``--overlap``, ...).

    Booleans that default to False are switches (``--tta``); those that default to True get a ``--no-...``
    switch (``--no-channels-last``); ``Literal`` fields get their choices.

    Args:
        parser: The parser to extend.
    """
    hints = _field_types()
    for f in _cli_fields():
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        kind = hints[f.name]
        if kind is bool:
            parser.add_argument(
                flag,
                dest=f.name,
                action="store_false" if f.default else "store_true",
                help=f.metadata["help"],
            )
            continue
        kwargs: dict[str, Any] = {"dest": f.name, "default": f.default, "help": f.metadata["help"]}
        if get_args(kind) and all(isinstance(a, str) for a in get_args(kind)):
            kwargs["choices"] = list(get_args(kind))
        else:
            base = next((a for a in (get_args(kind) or (kind,)) if a is not type(None)), str)
            kwargs["type"] = base
            if "metavar" in f.metadata:
                kwargs["metavar"] = f.metadata["metavar"]
        parser.add_argument(flag, *f.metadata.get("aliases", ()), **kwargs)


def from_arguments(args: argparse.Namespace, **extra: Any) -> MapOptions:
    """The :class:`MapOptions` of parsed arguments (:func:`add_arguments`), plus ``extra`` fields.

    Raises:
        ConfigError: If a value is invalid.
    """
    values = {f.name: getattr(args, f.name) for f in _cli_fields()}
    return with_overrides(None, {**values, **extra})


def _field_types() -> dict[str, Any]:
    """The resolved type of every field (the module uses postponed annotations)."""
    import typing

    return typing.get_type_hints(MapOptions)
