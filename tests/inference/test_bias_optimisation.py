"""Bias optimisation (GlaViTU paper Eqs. 1-2): objective, frozen network, seeds, caching, errors, JSON."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from glaciermap.commands.map import read_region_vector
from glaciermap.errors import ConfigError, InputError
from glaciermap.inference.bias_optimisation import (
    FAST_LR_FLOOR,
    RegionVector,
    SceneWindows,
    load_region_vector,
    mean_entropy,
    normalised_entropy,
    optimise_region,
    sample_windows,
    scene_entropy,
    split_forward,
)
from glaciermap.models.glavitu import GlaViTU
from glaciermap.models.light_region import LightRegionResUNet
from glaciermap.models.pretrained import PretrainedModel
from tests.data.checkpoints import PointwiseModel, scene_stats
from tests.data.heap import RESTORE_CALLS, RETAIN_CALLS, recording_libc
from tests.data.scenes import write_scene

CODES = ("ALP", "SVAL")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: one thread is several times faster than two on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(seed: int = 0) -> LightRegionResUNet:
    """A tiny region-encoding model whose location block visibly shifts the predictions."""
    torch.manual_seed(seed)
    model = LightRegionResUNet(region_codes=CODES, filters=8, depth=1, dropout=0.1)
    with torch.no_grad():
        for p in model.location_encoder.parameters():
            p.mul_(3.0)
        for bn in (model.location_encoder.bn1, model.location_encoder.bn2):
            bn.running_mean.uniform_(-0.5, 0.5)  # BN statistics must be used (inference mode), not batch ones
    return model.eval()


def tiny_windows(n: int = 6, size: int = 32, seed: int = 0) -> SceneWindows:
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(n, 8, size, size, generator=g)
    invalid = torch.zeros(n, size, size, dtype=torch.bool)
    invalid[0, : size // 2] = True
    image[0, :, : size // 2] = 0.0
    return SceneWindows(image, invalid, name="tiny")


CPU = {"device": "cpu"}


def test_objective_is_the_papers_mean_normalised_entropy() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, 5, generator=g) * 3
    invalid = torch.zeros(2, 4, 5, dtype=torch.bool)
    invalid[1, 2:] = True
    p = torch.softmax(logits.double(), 1).numpy()
    by_hand = -(p * np.log(p) / np.log(3)).sum(axis=1)  # -sum_c p log_C p, GlaViTU paper Eq. 1
    expected = by_hand[~invalid.numpy()].mean()
    assert float(mean_entropy(logits, invalid)) == pytest.approx(expected, rel=1e-6)
    assert np.allclose(normalised_entropy(logits).numpy(), by_hand, atol=1e-6)
    # extremes: uniform -> 1, certain -> 0 (no NaN from 0 log 0)
    assert float(mean_entropy(torch.zeros(1, 2, 2, 2))) == pytest.approx(1.0)
    assert float(mean_entropy(torch.tensor([[[[80.0]], [[-80.0]]]]))) == pytest.approx(0.0, abs=1e-12)


def test_optimised_trace_starts_at_the_uniform_vectors_entropy_and_reaches_the_returned_one() -> None:
    model, windows = tiny_model(), tiny_windows()
    vector = optimise_region(model, windows, steps=20, **CPU)
    uniform = [1.0 / 3] * 3
    assert vector.entropy_trace[0] == pytest.approx(scene_entropy(model, windows, uniform, **CPU), rel=1e-5)
    assert vector.entropy == pytest.approx(
        scene_entropy(model, windows, vector.probabilities, **CPU), rel=1e-5
    )
    assert vector.entropy < vector.entropy_trace[0] - 0.01
    assert vector.region_codes == ("ALP", "SVAL", "unseen")
    assert sum(vector.probabilities) == pytest.approx(1.0)
    assert vector.steps <= 20 and len(vector.entropy_trace) == vector.steps + 1
    assert vector.windows == 6 and vector.procedure == "fast" and vector.lr == 1.0


def test_network_is_frozen_bit_for_bit_and_its_state_restored() -> None:
    model = tiny_model()
    model.train()
    model.set_mc_dropout(True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimise_region(model, tiny_windows(), steps=5, **CPU)
    optimise_region(model, tiny_windows(), procedure="authors", window_size=32, max_epochs=2, **CPU)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics included
    assert model.training and model.mc_dropout
    assert all(p.requires_grad for p in model.parameters()) and all(
        p.grad is None for p in model.parameters()
    )


def test_same_seed_same_vector_other_seed_other_sample(tmp_path: Path) -> None:
    scene = write_scene(
        tmp_path / "s", size=(96, 96), modalities=("optical", "dem"), nodata_box=(0, 40, 0, 96)
    )
    mapping = PretrainedModel.from_model(tiny_model(), scene_stats(scene))
    a = optimise_region(mapping, scene, windows=2, window_size=16, steps=4, seed=3, **CPU)
    b = optimise_region(mapping, scene, windows=2, window_size=16, steps=4, seed=3, **CPU)
    c = optimise_region(mapping, scene, windows=2, window_size=16, steps=4, seed=4, **CPU)
    assert a.logits == b.logits and a.entropy_trace == b.entropy_trace
    assert (
        a.rejected_steps == b.rejected_steps and a.lr_trace == b.lr_trace and a.stop_reason == b.stop_reason
    )
    assert a.entropy_trace != c.entropy_trace  # another seed draws other windows
    # rows 0..39 are nodata: windows starting at rows 0 and 16 never qualify, the row-32 ones are half valid
    w = sample_windows(mapping, scene, windows=50, window_size=16, seed=0)
    assert w.count == w.candidates == 4 * 6
    assert float((~w.invalid).float().mean(dim=(1, 2)).min()) == 0.5
    full = sample_windows(mapping, scene, windows=50, window_size=16, seed=0, min_valid=1.0)
    assert full.count == 3 * 6 and not bool(full.invalid.any())


def test_authors_procedure_is_seeded_and_stops_on_small_logit_changes() -> None:
    model, windows = tiny_model(), tiny_windows(n=2)
    a = optimise_region(model, windows, procedure="authors", window_size=32, max_epochs=3, **CPU)
    b = optimise_region(model, windows, procedure="authors", window_size=32, max_epochs=3, **CPU)
    assert a.logits == b.logits and a.lr == 1e-4 and len(a.entropy_trace) == 3
    # 2 windows of 32 px = 2048 px -> round(2048 / 32**2 / 8) = 0 -> 1 batch of 8 crops per epoch
    assert a.steps == 3 and a.windows == 24
    # Adam moves each logit by at most lr per step: 3 steps of 1e-4 from the initial ones
    assert max(abs(v - 1.0) for v in a.logits) <= 3e-4 * 1.001
    # the stopping rule: with a tiny learning rate the logits move < 1e-8 per epoch -> 5 calm epochs
    c = optimise_region(model, windows, procedure="authors", window_size=32, lr=1e-12, **CPU)
    assert len(c.entropy_trace) == 5


def test_fast_reaches_lower_entropy_than_the_authors_procedure() -> None:
    model, windows = tiny_model(), tiny_windows(n=4, size=16)
    fast = optimise_region(model, windows, steps=30, **CPU)
    authors = optimise_region(model, windows, procedure="authors", window_size=16, **CPU)
    assert len(authors.entropy_trace) == 100  # lr 1e-4 moves the logits by more than 1e-8 every epoch
    ours = scene_entropy(model, windows, fast.probabilities, **CPU)
    theirs = scene_entropy(model, windows, authors.probabilities, **CPU)
    assert ours <= theirs - 0.01


def test_cached_split_forward_equals_the_plain_forward() -> None:
    torch.manual_seed(0)
    glavitu = GlaViTU(location_encoding="region", region_codes=CODES, img_size=32).eval()
    x = torch.randn(2, 8, 32, 32)
    loc = torch.softmax(torch.randn(2, 3), 1)
    for model in (glavitu, tiny_model()):
        features, head, cached = split_forward(model)
        with torch.no_grad():
            plain = model(x, loc)["out"]
            split = head(features(x), loc)
        assert cached and split.shape == plain.shape
        assert torch.allclose(split, plain, atol=1e-6, rtol=0)


def test_clear_errors_for_no_region_encoding_and_too_few_windows(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"needs a region-encoding model.*'none'"):
        optimise_region(PointwiseModel(), tiny_windows(), **CPU)
    scene = write_scene(
        tmp_path / "s", size=(64, 32), modalities=("optical", "dem"), nodata_box=(0, 32, 0, 32)
    )
    mapping = PretrainedModel.from_model(tiny_model(), scene_stats(scene))
    with pytest.raises(InputError, match=r"1 window\(s\) of 32 px.*needs at least 2"):
        optimise_region(mapping, scene, window_size=32, **CPU)
    with pytest.raises(ConfigError, match="windows is 0"):
        optimise_region(mapping, scene, windows=0, **CPU)
    with pytest.raises(ConfigError, match="needs a PretrainedModel"):
        optimise_region(tiny_model(), scene, **CPU)


def test_region_vector_json_round_trip_and_bad_files(tmp_path: Path) -> None:
    vector = optimise_region(tiny_model(), tiny_windows(), steps=3, **CPU)
    path = vector.save(tmp_path / "region_vector.json")
    data = json.loads(path.read_text())
    assert data["format"] == "glaciermap.region_vector/1" and len(data["probabilities"]) == 3
    assert read_region_vector(path) == pytest.approx(vector.probabilities)  # `glaciermap map --region-vector`
    again = load_region_vector(path, CODES)
    assert again.logits == vector.logits and again.probabilities == vector.probabilities
    assert again.entropy_trace == vector.entropy_trace and again.steps == vector.steps
    assert again.rejected_steps == vector.rejected_steps and again.lr_trace == vector.lr_trace
    assert again.stop_reason == vector.stop_reason and again.lr_floor == vector.lr_floor

    with pytest.raises(ConfigError, match="do not match the model's ALP, HMA, unseen"):
        load_region_vector(path, ("ALP", "HMA"))
    bad = tmp_path / "bad.json"
    for text, message in (
        ("{not json", "not valid JSON"),
        ('{"logits": [NaN, 1], "region_codes": ["A", "unseen"]}', "not valid JSON"),
        ('{"logits": [1], "region_codes": ["unseen"]}', "at least 2 finite"),
        ('{"logits": [1, 2], "region_codes": ["A", "B"]}', "ending with 'unseen'"),
        ("[1, 2]", "expected a JSON object"),
    ):
        bad.write_text(text)
        with pytest.raises(InputError, match=message):
            load_region_vector(bad)
    with pytest.raises(InputError, match="cannot be read"):
        load_region_vector(tmp_path / "missing.json")
    nan = RegionVector((math.nan, 0.0), ("A", "unseen"), (), 0, 0.0)
    with pytest.raises(ValueError):
        nan.to_json()


def test_unseen_init_starts_at_the_unseen_one_hot_and_never_ends_above_it() -> None:
    model, windows = tiny_model(), tiny_windows()
    vector = optimise_region(model, windows, steps=10, init="unseen", **CPU)
    unseen = scene_entropy(model, windows, [0.0, 0.0, 1.0], **CPU)
    assert vector.entropy_trace[0] == pytest.approx(unseen, abs=2e-3)
    assert vector.entropy <= vector.entropy_trace[0]
    with pytest.raises(ConfigError, match="init is 'onehot'"):
        optimise_region(model, windows, init="onehot", **CPU)  # type: ignore[arg-type]


class BowlModel(torch.nn.Module):
    """A region model whose Eq. 1 has one interior minimum: two classes with logits (s, -s) everywhere,
    s = 1 - 20 (p_0 - 0.3)^2, p_0 the first slot of the region vector; the entropy is lowest at p_0 = 0.3.

    From the uniform start (p_0 = 1/3) Adam's first step, -lr * sign(gradient) = (-lr, +lr, +lr), gives
    p_0 = 0.063 (lr 1), 0.155 (0.5), 0.233 (0.25): each raises the entropy; at lr 0.125, p_0 = 0.280 lowers it.
    """

    location_encoding = "region"
    region_codes = ("ALP", "SVAL")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward_head(self, f: torch.Tensor, loc: torch.Tensor) -> dict[str, torch.Tensor]:
        s = 1.0 - 20.0 * (loc[:, 0] - 0.3) ** 2
        ones = torch.ones_like(f[:, :1])
        return {"out": torch.cat([s.view(-1, 1, 1, 1) * ones, -s.view(-1, 1, 1, 1) * ones], dim=1)}

    def forward(self, x: torch.Tensor, loc: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_head(self.forward_features(x), loc)


def test_a_step_that_raises_the_entropy_is_rejected_and_the_learning_rate_halves() -> None:
    model, windows = BowlModel(), tiny_windows(n=2, size=8)
    vector = optimise_region(model, windows, steps=30, **CPU)
    trace = vector.entropy_trace
    assert vector.rejected_steps[:3] == (1, 2, 3)  # lr 1, 0.5 and 0.25 overshoot the bowl
    assert vector.lr_trace[:4] == (1.0, 0.5, 0.25, 0.125)
    assert all(trace[k] > trace[0] for k in (1, 2, 3)) and trace[4] < trace[0]
    # each retry starts from the best point (the start) with fresh moments: update 4 is -0.125 * sign(g)
    assert trace[4] == pytest.approx(scene_entropy(model, windows, [0.2803, 0.3599, 0.3599], **CPU), abs=1e-4)
    # the accepted trace never rises; every rejected entry is above the best before it
    accepted = [v for k, v in enumerate(trace) if k not in vector.rejected_steps]
    assert all(b <= a for a, b in itertools.pairwise(accepted))
    assert all(trace[k] > min(trace[:k]) for k in vector.rejected_steps)
    # the returned vector's entropy is the minimum of the accepted trace, and really is its entropy
    assert vector.entropy == min(accepted) == min(trace)
    assert vector.entropy == pytest.approx(
        scene_entropy(model, windows, vector.probabilities, **CPU), rel=1e-5
    )
    assert abs(vector.probabilities[0] - 0.3) < 0.01 and vector.entropy < trace[0]
    assert len(vector.lr_trace) == vector.steps == len(trace) - 1
    summary = vector.summary()
    assert summary["rejected_steps"] == list(vector.rejected_steps) and summary["lr_trace"][:2] == [1.0, 0.5]
    assert summary["stop_reason"] == vector.stop_reason and summary["lr_floor"] == 1e-3


def test_rejected_steps_never_count_as_converged_but_the_lr_floor_stops() -> None:
    model, windows = BowlModel(), tiny_windows(n=2, size=8)
    # patience 1 and a huge tolerance: the old rule (over the raw trace) stopped at the first rising step
    loose = optimise_region(model, windows, steps=30, tolerance=1.0, patience=1, **CPU)
    assert loose.stop_reason == "tolerance" and loose.rejected_steps == (1, 2, 3) and loose.steps == 4
    assert loose.entropy == loose.entropy_trace[4] < loose.entropy_trace[0]
    # a floor of 0.3: lr 1 and 0.5 rejected, 0.25 < 0.3 -> stop, returning the start
    floored = optimise_region(model, windows, steps=30, lr_floor=0.3, **CPU)
    assert floored.stop_reason == "lr_floor" and floored.rejected_steps == (1, 2) and floored.steps == 2
    assert floored.entropy == floored.entropy_trace[0] and floored.probabilities == pytest.approx([1 / 3] * 3)
    with pytest.raises(ConfigError, match="lr_floor is -1"):
        optimise_region(model, windows, lr_floor=-1.0, **CPU)
    # floor 0 and a negative tolerance (the benchmark's fixed work): all 12 updates run
    fixed = optimise_region(model, windows, steps=12, tolerance=-1.0, lr_floor=0.0, **CPU)
    assert fixed.steps == 12 and fixed.stop_reason == "steps" and len(fixed.entropy_trace) == 13
    # the mapping options (--bo-lr-floor) default to the same floor; the options module does not import torch
    from glaciermap.inference.options import MapOptions

    assert MapOptions().bo_lr_floor == FAST_LR_FLOOR


def test_auto_precision_follows_the_cpu_probe_in_the_layout_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """``precision="auto"``: bf16 (channels-last by default) where the CPU probe finds bf16 faster."""
    from glaciermap.inference import predictor

    monkeypatch.setenv(predictor.CPU_BF16_ENV, "auto")  # the suite keeps it off (tests/conftest.py)
    layouts: list[bool] = []

    def faster_in_channels_last(channels_last: bool = True, min_speedup: float = 2.0) -> bool:
        layouts.append(channels_last)
        return channels_last

    monkeypatch.setattr(predictor, "cpu_bf16_is_faster", faster_in_channels_last)
    model, windows = tiny_model(), tiny_windows()
    auto = optimise_region(model, windows, steps=3, **CPU)
    contiguous = optimise_region(model, windows, steps=3, channels_last=False, **CPU)
    asked = optimise_region(model, windows, steps=3, precision="32", **CPU)
    assert (auto.precision, contiguous.precision, asked.precision) == ("bf16", "32", "32")
    assert layouts == [True, False]
    assert auto.entropy == pytest.approx(asked.entropy, abs=0.02)  # bf16 rounding only
    monkeypatch.setenv(predictor.CPU_BF16_ENV, "off")
    assert optimise_region(model, windows, steps=3, **CPU).precision == "32" and layouts == [True, False]


def test_the_optimisation_runs_inside_the_retained_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = recording_libc(monkeypatch)
    model, windows = tiny_model(), tiny_windows()
    seen: list[int] = []
    for module in model.modules():  # the optimisation calls the network's parts, not its forward
        module.register_forward_pre_hook(lambda module, args: seen.append(len(libc.calls)))
    optimise_region(model, windows, steps=2, **CPU)
    assert seen and set(seen) == {len(RETAIN_CALLS)}
    assert libc.calls == RETAIN_CALLS + RESTORE_CALLS
