"""Training throughput of a recipe (issue 20): is training limited by its data loader or by the network?

Builds the recipe exactly as ``glaciermap fit --config CONFIG`` would (LightningCLI with the project's links;
``--set KEY VALUE`` changes one setting, as ``--KEY VALUE`` would on the command line) and measures, in one
run, patches per second of:

* ``loader``: the training data loader alone (reading, windowing, normalising, collating), for each
  ``--workers`` count, with no network running, over ``--loader-batches`` batches: what the input side can
  deliver;
* ``step``: the training step alone (transfer to the device, augmentation, forward, loss with deep supervision,
  backward, Adam, schedule) on one real batch held in memory and fed again and again: what the network can take;
* ``fit``: both together, ``Trainer.fit`` on the recipe's own loader (its ``num_workers``).

Every phase runs on one device (``--trainer.devices 1``): the rates are per GPU, or per CPU process.

When ``fit`` is clearly below ``step`` (under 90 %), training waits for its input (input-bound); otherwise the
network is the limit. On CUDA it also records the GPU's utilisation during ``fit`` (sampled every 0.2 s
through NVML, when ``pynvml`` is installed) and the peak GPU memory. The first ``--warmup`` batches of each
phase are not timed (worker start, allocations, cuDNN's kernel choice). The time for the recipe's whole
training (its epochs of its patches) is projected from the ``fit`` rate.

On a CPU the task trains inside the retained heap (:class:`glaciermap.callbacks.RetainedHeap`; freed memory
stays in the process); every training row records the heap in use (``GLACIERMAP_CPU_HEAP``) and the main
process's minor page faults per step. ``--heaps retain system --repeats 2`` also times the ``step`` phase in
fresh child processes, one per heap and repetition, in the order A B B A (setting glibc's parameters once
changes the allocator for the rest of a process), and reports the per-repetition ratios.

Prints the machine, CPU flags, load and versions. ``--write-results`` replaces the ``## Training
throughput`` section of ``benchmarks/RESULTS.md``.

Usage::

    python benchmarks/training_benchmark.py --config examples/glavitu_global.yaml --work-dir /tmp/train_bench
    python benchmarks/training_benchmark.py --batches 3 --warmup 1 --workers 0 1 2 --write-results
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heap_runs import interleaved_heap_runs
from map_benchmark import environment, write_results

ROOT = Path(__file__).resolve().parents[1]
INPUT_BOUND = 0.9
"""``fit`` below this share of ``step`` means that training waits for its input."""
PHASES = ("loader", "step", "fit")
HEAPS = ("retain", "system")


def minor_faults() -> int:
    """Minor page faults of this process so far (its threads, not the loader's worker processes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def build(config: Path, work_dir: Path, sets: list[list[str]], trainer: dict[str, Any]) -> Any:
    """The recipe as ``glaciermap fit --config CONFIG`` builds it, not run: a LightningCLI with the same links.

    Args:
        config: The recipe's YAML file.
        work_dir: Folder for the trainer's files and, for the synthetic data module, the generated scenes
            (``data.init_args.root``).
        sets: ``[KEY, VALUE]`` pairs passed on as ``--KEY VALUE`` (they win over the above).
        trainer: Trainer settings set after the recipe's (``max_steps``, ``limit_val_batches``, ...).

    Returns:
        The CLI object, with ``model``, ``datamodule`` and ``trainer`` built.
    """
    import yaml

    from glaciermap.commands.lightning import GlaciermapCLI
    from glaciermap.datamodules.scenes import SceneDataModule
    from glaciermap.tasks.segmentation import SegmentationTask

    argv = ["--config", str(config), "--trainer.default_root_dir", str(work_dir / "trainer")]
    data = (yaml.safe_load(config.read_text()) or {}).get("data") or {}
    if str(data.get("class_path", "")).endswith(
        "SyntheticDataModule"
    ):  # generated once, into the work folder
        argv += ["--data.init_args.root", str(work_dir / "scenes")]
    for key, value in sets:
        argv += [f"--{key}", value]
    for key, value in trainer.items():
        argv += [f"--trainer.{key}", value if isinstance(value, str) else json.dumps(value)]
    shown, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI warns when the process has arguments of its own
    try:
        return GlaciermapCLI(
            SegmentationTask,
            SceneDataModule,
            subclass_mode_data=True,
            seed_everything_default=0,
            save_config_callback=None,
            auto_configure_optimizers=False,
            args=argv,
            run=False,
        )
    finally:
        sys.argv = shown


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_loader(datamodule: Any, workers: int, batches: int, warmup: int) -> dict[str, Any]:
    """Patches per second of the training loader alone with ``workers`` worker processes.

    Args:
        datamodule: The recipe's data module (``prepare_data`` and ``setup("fit")`` already called).
        workers: Worker processes of the loader.
        batches: Batches timed after the warm-up ones.
        warmup: Batches read first and not timed (the first one includes the workers' start); with workers,
            the ``prefetch_factor`` x ``workers`` batches queued meanwhile are not timed either.

    Returns:
        A row: ``phase``, ``workers``, ``patches``, ``seconds``, ``patches_per_s`` and ``first_batch_s``.
    """
    datamodule.num_workers = workers
    loader = datamodule.train_dataloader()
    # the workers fill their prefetch queues while the first batch is awaited: skip those batches too, or
    # the rate would count batches made before the clock started
    warmup += (loader.prefetch_factor or 0) * workers
    start = time.perf_counter()
    first = None
    patches, t0 = 0, start
    done = 0
    while done < warmup + batches:
        if len(loader) == 0:
            raise ValueError("the training loader yields no batch; expected at least one per epoch")
        for batch in loader:
            if first is None:
                first = time.perf_counter() - start
            done += 1
            if done == warmup:
                t0 = time.perf_counter()
            elif done > warmup:
                patches += int(batch["mask"].shape[0])
            if done == warmup + batches:
                break
    seconds = time.perf_counter() - (t0 if warmup else start)
    del loader
    return {
        "phase": "loader",
        "workers": workers,
        "patches": patches,
        "seconds": round(seconds, 3),
        "patches_per_s": round(patches / seconds, 2),
        "first_batch_s": round(first or 0.0, 3),
    }


class GpuUtilisation:
    """Samples the GPU's utilisation (NVML, through ``torch.cuda.utilization``) every 0.2 s in a thread.

    ``mean`` is ``None`` when there is no CUDA device or NVML cannot be read (``pynvml`` missing).
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sampling (a no-op without CUDA or NVML)."""
        import torch

        if not self.device.startswith("cuda"):
            return
        try:
            torch.cuda.utilization(self.device)
        except Exception:  # pynvml missing or NVML not readable: no figure rather than a wrong one
            return
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import torch

        while not self._stop.wait(0.2):
            self.samples.append(float(torch.cuda.utilization(self.device)))

    def stop(self) -> float | None:
        """Stop sampling; the mean utilisation in per cent, or ``None``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return round(sum(self.samples) / len(self.samples), 1) if self.samples else None


def batch_clock(warmup: int, device: str) -> Any:
    """A callback that records the end of every training batch (after a device synchronisation).

    Args:
        warmup: Batches before the timed ones; GPU sampling starts at the end of the last of them.
        device: The trainer's device type (``"cpu"``, ``"cuda"``, ...).

    Returns:
        The callback; ``ends`` holds ``(time, patches, minor page faults)`` per batch, ``retained`` whether the
        task's :class:`~glaciermap.callbacks.RetainedHeap` kept freed memory at the last one, and ``gpu`` its
        :class:`GpuUtilisation`.
    """
    from lightning.pytorch.callbacks import Callback

    from glaciermap.callbacks import RetainedHeap

    class BatchClock(Callback):
        def __init__(self) -> None:
            self.ends: list[tuple[float, int, int]] = []
            self.retained = False
            self.gpu = GpuUtilisation(device)

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, i: int) -> None:
            _sync(device)
            patches = int(batch["mask"].shape[0]) * trainer.world_size
            self.ends.append((time.perf_counter(), patches, minor_faults()))
            self.retained = any(c.active for c in trainer.callbacks if isinstance(c, RetainedHeap))
            if len(self.ends) == max(warmup, 1):
                self.gpu.start()

    return BatchClock()


def time_training(cli: Any, phase: str, warmup: int, loader: Any = None) -> dict[str, Any]:
    """Patches per second of ``Trainer.fit`` over the recipe's loader, or over ``loader`` when given.

    Of the task's own callbacks, checkpointing and the progress-bar rates are left out (they write and log
    nothing a training step needs); the others, such as the retained heap on a CPU, stay. The trainer stops
    after its ``max_steps``.

    Args:
        cli: A CLI from :func:`build` with ``max_steps`` set.
        phase: The row's name (``"step"`` or ``"fit"``).
        warmup: Batches not timed.
        loader: Training batches to use instead of the data module's.

    Returns:
        A row: ``phase``, ``workers``, ``patches``, ``seconds``, ``patches_per_s``, ``seconds_per_step``,
        ``gpu_utilisation`` (per cent or ``None``), ``peak_gpu_mb`` (or ``None``), ``heap`` (``"retain"`` when
        the task's retained heap was in effect, else ``"system"``) and ``faults_per_step`` (minor page faults of
        this process per timed step).
    """
    import torch

    trainer, model = cli.trainer, cli.model
    device = trainer.strategy.root_device.type
    clock = batch_clock(warmup, device)
    trainer.callbacks.append(clock)
    from lightning.pytorch.callbacks import ModelCheckpoint

    from glaciermap.callbacks import Throughput

    own = model.configure_callbacks()  # the task's, less checkpoint files and progress-bar rates
    model.configure_callbacks = lambda: [c for c in own if not isinstance(c, (ModelCheckpoint, Throughput))]
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if loader is None:
        trainer.fit(model, datamodule=cli.datamodule)
    else:
        trainer.fit(model, train_dataloaders=loader)
    gpu = clock.gpu.stop()
    start = max(warmup, 1) - 1
    t0, _, faults0 = clock.ends[start]
    seconds = clock.ends[-1][0] - t0
    patches = sum(n for _, n, _ in clock.ends[start + 1 :])
    steps = len(clock.ends) - start - 1
    return {
        "phase": phase,
        "workers": cli.datamodule.num_workers if loader is None else 0,
        "patches": patches,
        "seconds": round(seconds, 3),
        "patches_per_s": round(patches / seconds, 2) if seconds > 0 else None,
        "seconds_per_step": round(seconds / steps, 3) if steps else None,
        "gpu_utilisation": gpu,
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if device == "cuda" else None,
        "heap": "retain" if clock.retained else "system",
        "faults_per_step": round((clock.ends[-1][2] - faults0) / steps) if steps else None,
    }


def cached_batches(batch: dict[str, Any], count: int) -> Any:
    """A loader that yields the same collated ``batch`` ``count`` times (no reading, no collation)."""
    from torch.utils.data import DataLoader

    return DataLoader([batch] * count, batch_size=None, shuffle=False)


def verdict(step: dict[str, Any], fit: dict[str, Any]) -> str:
    """Whether ``fit`` waits for its input (``fit`` under 90 % of ``step``) or the network is the limit."""
    share = fit["patches_per_s"] / step["patches_per_s"]
    if share < INPUT_BOUND:
        return (
            f"input-bound: training runs at {share:.0%} of what the training step alone takes "
            f"({fit['patches_per_s']} against {step['patches_per_s']} patches/s)"
        )
    return (
        f"not input-bound: training runs at {share:.0%} of the training step alone "
        f"({fit['patches_per_s']} against {step['patches_per_s']} patches/s); the network is the limit"
    )


def trainer_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Trainer settings of every phase: one device, no logger, bar, summary or checkpoint files."""
    base: dict[str, Any] = {
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "devices": 1,
    }
    if args.accelerator is not None:
        base["accelerator"] = args.accelerator
    if args.precision is not None:
        base["precision"] = args.precision
    return base


def recipe_facts(args: argparse.Namespace, cli: Any, epoch_batches: int) -> dict[str, Any]:
    """What the report says about the recipe: model, batches, patches per epoch, precision, device."""
    dm = cli.datamodule
    config = args.config.resolve()
    return {
        "config": str(config.relative_to(ROOT)) if config.is_relative_to(ROOT) else str(args.config),
        "model": cli.model.hparams["model"],
        "batch_size": dm.batch_size,
        "patch_size": dm.patch_size,
        "channels": dm.in_channels,
        "patches_per_epoch": epoch_batches * dm.batch_size * cli.trainer.world_size,
        "max_epochs": cli.trainer.max_epochs,
        "num_workers": dm.num_workers,
        "precision": str(cli.trainer.precision),
        "device": cli.trainer.strategy.root_device.type,
    }


def measure(args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The phases of ``--phases`` in this process; returns the recipe's facts and the rows (printed as they come)."""
    import torch

    base = trainer_settings(args)
    cli = build(args.config, args.work_dir, args.set, base)
    dm = cli.datamodule
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    recipe = recipe_facts(args, cli, len(loader))
    print(json.dumps(recipe), flush=True)
    batch = next(iter(loader))
    if recipe["device"] == "cuda":
        batch = {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    del loader
    rows = []
    for workers in (args.workers or [recipe["num_workers"]]) if "loader" in args.phases else []:
        rows.append(time_loader(dm, workers, args.loader_batches, args.warmup))
        print(json.dumps(rows[-1]), flush=True)
    dm.num_workers = recipe["num_workers"]
    steps = args.warmup + args.batches
    timed = {**base, "max_steps": steps, "max_epochs": -1, "limit_val_batches": 0, "num_sanity_val_steps": 0}
    if "step" in args.phases:
        step_cli = build(args.config, args.work_dir, args.set, timed)
        rows.append(time_training(step_cli, "step", args.warmup, cached_batches(batch, steps)))
        print(json.dumps(rows[-1]), flush=True)
    if "fit" in args.phases:
        fit_cli = build(args.config, args.work_dir, args.set, timed)
        rows.append(time_training(fit_cli, "fit", args.warmup))
        print(json.dumps(rows[-1]), flush=True)
    return recipe, rows


def child_argv(args: argparse.Namespace) -> list[str]:
    """The options a child process needs to time the ``step`` phase as this one would."""
    argv = ["--config", str(args.config), "--work-dir", str(args.work_dir)]
    argv += ["--batches", str(args.batches), "--warmup", str(args.warmup), "--phases", "step"]
    argv += ["--loader-batches", str(args.loader_batches)]
    for key, value in args.set:
        argv += ["--set", key, value]
    for option, value in (("--accelerator", args.accelerator), ("--precision", args.precision)):
        if value is not None:
            argv += [option, value]
    return argv


def compare_heaps(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The ``step`` phase per ``--repeats`` x ``--heaps``, each in a child process, in the order A B B A ..."""
    return interleaved_heap_runs(__file__, child_argv(args), args.heaps, args.repeats, "the step phase")


def heap_lines(compared: list[dict[str, Any]], heaps: list[str]) -> list[str]:
    """The report's paragraph on the heap comparison (empty without one)."""
    if len(heaps) < 2 or not compared:
        return []
    reps = sorted({r["rep"] for r in compared})
    per = {(r["rep"], r["heap"]): r for r in compared}
    first, second = heaps[0], heaps[1]
    ratios = [per[rep, second]["seconds_per_step"] / per[rep, first]["seconds_per_step"] for rep in reps]
    runs = "; ".join(
        f"{heap}: " + ", ".join(f"{per[rep, heap]['seconds_per_step']} s" for rep in reps)
        for heap in heaps[:2]
    )
    faults = "; ".join(
        f"{heap}: " + ", ".join(f"{per[rep, heap]['faults_per_step']:,}" for rep in reps)
        for heap in heaps[:2]
    )
    return [
        f"The `step` phase with each heap, every run a fresh process, in the order A B B A: seconds per step "
        f"({runs}); minor page faults per step ({faults}); `{first}` is "
        + ", ".join(f"{r:.2f}x" for r in ratios)
        + f" as fast as `{second}` (per repetition).",
        "",
    ]


def markdown(
    env: dict[str, str],
    load: list[float],
    recipe: dict[str, Any],
    rows: list[dict[str, Any]],
    command: str,
    heap_paragraph: list[str] = (),  # type: ignore[assignment]
) -> str:
    """The ``## Training throughput`` section of RESULTS.md."""
    step = next(r for r in rows if r["phase"] == "step")
    fit = next(r for r in rows if r["phase"] == "fit")
    hours = recipe["patches_per_epoch"] * recipe["max_epochs"] / fit["patches_per_s"] / 3600
    lines = [
        "## Training throughput",
        "",
        f"`{command}` ({datetime.date.today().isoformat()}). Machine: {env['machine']}; CPU flags: {env['flags']}; "
        f"{env['memory']}; Python {env['python']}; {env['versions']}. Load average before the run: "
        f"{', '.join(f'{v:.2f}' for v in load)}.",
        "",
        f"Recipe: `{recipe['config']}` ({recipe['model']}, batch {recipe['batch_size']} of "
        f"{recipe['patch_size']} px patches with {recipe['channels']} channels, {recipe['num_workers']} loader "
        f"workers, precision {recipe['precision']}, one {recipe['device']} device). "
        "`loader`: the training data loader alone; `step`: the training step alone on one batch held in memory; "
        "`fit`: `Trainer.fit` with the recipe's loader. Rates after the warm-up batches.",
        "",
        "| phase | loader workers | patches | s | patches/s | s per step | heap | page faults per step "
        "| GPU utilisation (%) | peak GPU memory (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        faults = r.get("faults_per_step")
        phase = f"{r['phase']} (heap comparison, run {r['rep'] + 1})" if "rep" in r else r["phase"]
        lines.append(
            f"| {phase} | {r['workers']} | "
            f"{r['patches']} | {r['seconds']} | {r['patches_per_s']} | "
            f"{r.get('seconds_per_step') or '-'} | {r.get('heap') or '-'} | "
            f"{'-' if faults is None else f'{faults:,}'} | {r.get('gpu_utilisation') or '-'} | "
            f"{r.get('peak_gpu_mb') or '-'} |"
        )
    lines += [
        "",
        f"Verdict: {verdict(step, fit)}.",
        "",
        *heap_paragraph,
        f"The recipe's whole training ({recipe['max_epochs']} epochs of {recipe['patches_per_epoch']:,} patches) "
        f"at the `fit` rate: about {hours:,.1f} h on this machine.",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "glavitu_global.yaml")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/glaciermap_training_benchmark"))
    parser.add_argument("--set", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"))
    parser.add_argument("--batches", type=int, default=10, help="timed batches per phase")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches before them")
    parser.add_argument(
        "--workers", type=int, nargs="+", help="loader workers to time (default: the recipe's)"
    )
    parser.add_argument(
        "--loader-batches",
        type=int,
        default=50,
        help="timed batches of the loader phase (many: workers deliver their batches in bursts)",
    )
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES))
    parser.add_argument("--heaps", nargs="+", choices=HEAPS, default=[], help="also compare these heaps")
    parser.add_argument("--repeats", type=int, default=1, help="repetitions of the heap comparison")
    parser.add_argument("--accelerator", help="trainer accelerator (default: the recipe's)")
    parser.add_argument("--precision", help="trainer precision (default: the recipe's)")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--rows-json", type=Path, help=argparse.SUPPRESS)  # a child of compare_heaps
    args = parser.parse_args(argv)
    if min(args.batches, args.loader_batches, args.repeats) < 1 or args.warmup < 0:
        parser.error(
            f"--batches is {args.batches}, --loader-batches {args.loader_batches}, --warmup {args.warmup} and "
            f"--repeats {args.repeats}; expected at least 1, 1, 0 and 1"
        )
    if args.write_results and not {"step", "fit"} <= set(args.phases):
        parser.error("--write-results needs the step and fit phases (the verdict compares them)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the phases, print the rows and the verdict, optionally write RESULTS.md."""
    args = parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if args.rows_json is not None:  # a child of compare_heaps(): measure, hand the rows back
        args.rows_json.write_text(json.dumps(measure(args)[1]))
        return 0
    env = environment()
    load = list(os.getloadavg())
    print(json.dumps({**env, "load_average": [round(v, 2) for v in load]}), flush=True)
    compared = compare_heaps(args) if len(args.heaps) > 1 or args.repeats > 1 else []
    recipe, rows = measure(args)
    paragraph = heap_lines(compared, args.heaps)
    print("\n".join(paragraph))
    if {"step", "fit"} <= set(args.phases):
        print(
            verdict(
                next(r for r in rows if r["phase"] == "step"), next(r for r in rows if r["phase"] == "fit")
            )
        )
    if args.write_results:
        shown = " ".join(sys.argv[1:] if argv is None else argv)
        command = f"python benchmarks/training_benchmark.py {shown}"
        write_results(markdown(env, load, recipe, rows + compared, command, paragraph), args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
