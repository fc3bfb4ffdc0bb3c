"""The ``edgesnn`` command line.

Every user error (``EdgeSnnError``, a bad option) becomes one line on stderr
and exit code 2; nothing is written when a command fails. An interrupted run
exits 130 (SIGINT) or 143 (SIGTERM) after one line saying what was saved. Any
other exception is a bug: one line asking for a report, exit 3, and the
traceback only with ``EDGESNN_DEBUG=1``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import threading
from pathlib import Path

import click

from edgesnn.errors import EdgeSnnError

#: the arguments of this invocation (to print the command that resumes a run)
_ARGS: list[str] = []


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"edgesnn: error: {message}", err=True)
    sys.exit(code)


class _Cli(click.Group):
    """The group, with click's own errors and unexpected exceptions as one line."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        global _ARGS
        _ARGS = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                              standalone_mode=False, **extra)
        except click.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            _fail(exc.format_message() + where)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            _fail("interrupted; no report was written", 130)
        except EdgeSnnError as exc:
            _fail(str(exc), getattr(exc, "exit_code", 2))
        except SystemExit:
            raise
        except Exception as exc:  # a bug: say so in one line, traceback on request
            if os.environ.get("EDGESNN_DEBUG"):
                raise
            _fail(f"internal error ({type(exc).__name__}: {exc}); this is a bug in edgesnn, "
                  "please report it (EDGESNN_DEBUG=1 shows the traceback)", 3)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text, nl=False)
    else:
        from edgesnn.report import write_atomic

        write_atomic(out, text)
        click.echo(f"wrote {out}", err=True)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgesnn")
def main() -> None:
    """Can this spiking network learn on this device?

    edgesnn places a network on a device model (SRAM banks, word widths,
    parallel units, number formats, per-operation energy) and reports what
    on-chip learning with local rules (S-TLLR) costs in memory, operations and
    energy, next to BPTT and float32.

    \b
    Start with:
      edgesnn hw list                             the device presets
      edgesnn profile examples/shd.toml --hw cortex-m7
    """


# --------------------------------------------------------------------------
# hw


@main.group()
def hw() -> None:
    """Device models: list, show and validate device TOML files."""


@hw.command("list")
def hw_list() -> None:
    """List the device presets shipped with edgesnn."""
    from edgesnn.hw import load_device, preset_names
    from edgesnn.report import kib

    for name in preset_names():
        d = load_device(name)
        click.echo(f"{name:16s} {kib(d.sram_bytes):>14s}  {d.clock_mhz:7.1f} MHz  {d.title}")


@hw.command("show")
@click.argument("name")
def hw_show(name: str) -> None:
    """Show a device: banks, units, formats, energy table (NAME: preset or .toml path)."""
    from edgesnn.hw import load_device
    from edgesnn.report import kib, md_table

    d = load_device(name)
    click.echo(f"# {d.name}: {d.title}\n")
    click.echo(f"source {d.source}; clock {d.clock_mhz:g} MHz; decay by {d.decay}; "
               f"accumulators {d.accumulator_bits} bit; phases "
               f"{'may overlap' if d.overlap_phases else 'run in sequence'}\n")
    click.echo(md_table(["bank", "size", "word bits", "read pJ/word", "write pJ/word", "ports",
                         "holds"],
                        [[b.name, kib(b.size_bytes), b.word_bits, b.read_pj, b.write_pj, b.ports,
                          ", ".join(b.holds) or "anything unclaimed"] for b in d.banks]))
    u = d.units
    click.echo("\nunits: " + ", ".join(f"{k.replace('_', ' ')} {v}"
                                       for k, v in vars(u).items()))
    click.echo("\n" + md_table(["tensor kind", "format", "bits"],
                               [[k, str(f), f.bits] for k, f in d.formats.items()]))
    e = d.energy
    click.echo("\n" + md_table(["op (pJ)", *e.add.keys()],
                               [["add", *e.add.values()], ["mul", *e.mul.values()]]))
    click.echo(f"\nLUT read {e.lut_read_pj:g} pJ, LFSR step {e.lfsr_pj:g} pJ; "
               f"psi LUT {d.luts.psi_entries} x {d.luts.psi_bits} bit, "
               f"exp LUT {d.luts.exp_entries} x {d.luts.exp_bits} bit")
    tb = d.tess
    click.echo("TESS basis: " + (f"generated, {tb.phase_bits}-bit phase accumulators x {tb.units}"
                                 if tb.basis == "generated" else "stored, 2 bits per sign"))
    lim = [("no delays" if (k, v) == ("max_delay", 0) else
            f"{k.replace('_', ' ')} {v}{' steps' if k == 'max_delay' else ''}")
           for k, v in vars(d.limits).items() if v is not None]
    if lim:
        click.echo("limits: " + ", ".join(lim))


@hw.command("validate")
@click.argument("file", type=click.Path(path_type=Path))
def hw_validate(file: Path) -> None:
    """Check a device TOML file; prints 'ok' or one line saying what is wrong."""
    from edgesnn.hw import load_device
    from edgesnn.report import plural

    d = load_device(str(file) if str(file).endswith(".toml") or "/" in str(file)
                    else f"./{file}")
    click.echo(f"{file}: ok ({d.name}, {plural(len(d.banks), 'bank')}, {d.sram_bytes:,} bytes)")


# --------------------------------------------------------------------------
# profile


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--hw", "hw_name", default="cortex-m7", show_default=True,
              help="Device preset name (see 'edgesnn hw list') or a device .toml path.")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md",
              show_default=True, help="Markdown for people, JSON for scripts.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the report to this file (atomically) instead of stdout.")
@click.option("--input-rate", type=click.FloatRange(0.0, 1.0), default=0.02, show_default=True,
              help="Mean input spikes per channel per step.")
@click.option("--hidden-rate", type=click.FloatRange(0.0, 1.0), default=0.05, show_default=True,
              help="Mean hidden spikes per neuron per step.")
@click.option("--allow-over-budget", is_flag=True,
              help="Write the report (fits: false) instead of failing when it does not fit.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a spec key, e.g. --set learning.update=per-sample.")
def profile(spec: Path, hw_name: str, fmt: str, out: Path | None, input_rate: float,
            hidden_rate: float, allow_over_budget: bool, overrides: tuple[str, ...]) -> None:
    """Memory map, operation counts and energy of learning SPEC on a device.

    SPEC is a network spec TOML (see examples/). The report places every
    tensor of on-chip S-TLLR learning in the device's SRAM banks and gives
    analytic per-sample counts at the given spike rates, each beside what BPTT
    and float32 would need. A network that does not fit exits with code 2 and
    one line naming the bank, bytes needed and available, and the largest
    tensor.
    """
    from edgesnn.errors import BudgetError
    from edgesnn.hw import load_device
    from edgesnn.profile import profile as build, to_markdown
    from edgesnn.report import to_json
    from edgesnn.spec import load_spec

    if out is not None:
        _check_writable_file(out)
    report = build(load_spec(spec, overrides), load_device(hw_name), input_rate, hidden_rate)
    if not report["fits"] and not allow_over_budget:
        raise BudgetError(report["problems"][0])
    _emit(to_json(report) if fmt == "json" else to_markdown(report), out)


def _check_writable_file(out: Path) -> None:
    """OutputError now if ``out`` could not be written later (its folder, or a folder there)."""
    from edgesnn.errors import OutputError
    from edgesnn.outdir import probe_writable

    if out.is_dir():
        raise OutputError(f"{out}: is a folder; --out takes a file name")
    probe_writable(out.parent, named=out)


# --------------------------------------------------------------------------
# simulate


@main.command()
@click.argument("spec", type=click.Path(path_type=Path), default=None, required=False)
@click.option("--hw", "hw_name", default="cortex-m7", show_default=True,
              help="Device preset or .toml path: the plan (memory map) the run is placed on.")
@click.option("--engine", type=click.Choice(["both", "fixed", "float", "paper"]),
              default="both", show_default=True,
              help="fixed: the numba integer core in the device's formats; float: the float64 "
                   "reference in device mode (batch 1, SGD, 2^-k rate; --float-engine); both: "
                   "fixed and float on the same sample stream; paper: the authors' setting (weight "
                   "standardisation, Adam, mini-batches).")
@click.option("--batch", type=click.IntRange(1), default=16, show_default=True,
              help="Mini-batch size of the paper engine.")
@click.option("--float-engine", "float_engine", type=click.Choice(["numba", "numpy"]),
              default="numba", show_default=True,
              help="What runs the float engine: numba, the float64 twin (tens to hundreds "
                   "of times faster; tools/bench.py); numpy, the readable definition the twin "
                   "is tested against. "
                   "The same figures up to the order of float sums; a checkpoint of one resumes "
                   "in the other.")
@click.option("--data", type=click.Choice(["yinyang", "fsdd", "shd", "ssc", "nmnist",
                                          "dvsgesture", "timing"]), default="yinyang",
              show_default=True,
              help="Data set: yinyang and timing (classes differ only in spike timing; "
                   "docs/delays.md) are generated (no files); the others are read from "
                   "--data-dir, never downloaded (fsdd: WAV recordings; shd/ssc: the original "
                   "HDF5 files; nmnist: Train/Test .bin folders; dvsgesture: tonic's .npy "
                   "layout).")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder of a data set's files.")
@click.option("--samples", type=click.IntRange(1), default=5000, show_default=True,
              help="Training samples learned online (passes over the data = samples / train size).")
@click.option("--seed", type=click.IntRange(0, 2 ** 32 - 1), default=0, show_default=True,
              help="Seed of the initial weights, the sample order and the encoders "
                   "(0 to 2^32-1).")
@click.option("--encoding", type=click.Choice(["regular", "rate", "latency", "iaf", "delta",
                                              "events", "spikes"]),
              default=None,
              help="Spike encoder: regular (default), rate or latency for Yin-Yang points; iaf "
                   "(default: integrate-and-fire per mel band) or delta (UP/DOWN delta "
                   "modulation) for audio; events (binned, the only one) for event data; spikes "
                   "(the only one) for the timing task.")
@click.option("--eval-every", type=click.IntRange(1), default=1000, show_default=True,
              help="Evaluate on the validation split every N samples (the learning curve).")
@click.option("--eval-samples", type=click.IntRange(1), default=500, show_default=True,
              help="Validation points per evaluation.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a spec key, e.g. --set learning.alpha_post=-1 --set layers.0.size=128.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("out"),
              show_default=True,
              help="Folder for report.json, report.md, learning_curve.png, energy.png (and "
                   "checkpoint.npz, trace.npz). A run locks it while it runs; a folder that "
                   "holds another run's results is refused unless --overwrite.")
@click.option("--overwrite", is_flag=True,
              help="Delete the files of an earlier run in --out (report.*, *.png, trace.npz, "
                   "checkpoint.npz; nothing else) before starting. Resuming from "
                   "OUT/checkpoint.npz needs no --overwrite: it continues that run.")
@click.option("--checkpoint-every", type=click.IntRange(0), default=0, show_default=True,
              help="Write OUT/checkpoint.npz every N samples (0: never), and on Ctrl-C or "
                   "SIGTERM.")
@click.option("--resume", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Continue a run from a checkpoint (same spec, device, data, seed and "
                   "options; the first difference is named).")
@click.option("--trace-sample", type=click.IntRange(0), default=None, metavar="K",
              help="Write the per-step states of training sample K, per engine, to "
                   "OUT/trace.npz: synaptic current, membrane before and after reset, spikes, "
                   "psi, traces, learning signals, readout error, and the weights before and "
                   "after it "
                   "(to see where fixed and float diverge).")
@click.option("--quiet", is_flag=True, help="No progress bar or progress lines.")
def simulate(spec: Path | None, hw_name: str, engine: str, batch: int, float_engine: str,
             data: str,
             data_dir: Path | None, samples: int, seed: int, encoding: str | None,
             eval_every: int, eval_samples: int, overrides: tuple[str, ...], out: Path,
             overwrite: bool, checkpoint_every: int, resume: Path | None,
             trace_sample: int | None, quiet: bool) -> None:
    """Learn SPEC online, one sample at a time, and report accuracy and cost.

    SPEC defaults to the built-in Yin-Yang network (examples/yinyang.toml).
    Every engine learns on the same sample stream; the report gives the test
    accuracy, the validation accuracy over samples, the counted operations
    per sample and the memory map on the device. A resumed run ends
    bit-identical to an uninterrupted one.

    Everything that can be checked before the first sample is (spec against
    data and device, output folder, checkpoint, learning-rate schedule).
    Ctrl-C or SIGTERM stops between two samples, writes the checkpoint when
    --checkpoint-every is set, and prints the command that resumes it. When
    stderr is not a terminal, progress comes as a line every 30 s.
    """
    from edgesnn.hw import load_device
    from edgesnn.datasets import ENCODINGS
    from edgesnn.errors import DataError
    from edgesnn.outdir import RunFolder
    from edgesnn.progress import Progress, SlowNotice
    from edgesnn.simulate import (ENGINE_CHOICES, SimulateOptions, prepare, simulate as run,
                                  write_outputs)
    from edgesnn.spec import load_spec
    from edgesnn.train import TrainConfig

    net = load_spec(spec if spec is not None else _default_spec(), overrides)
    device = load_device(hw_name)
    cfg = TrainConfig(samples=samples, eval_every=eval_every, eval_samples=eval_samples,
                      seed=seed, encoding=encoding or ENCODINGS[data][0], checkpoint_every=checkpoint_every,
                      checkpoint_path=str(out / "checkpoint.npz") if checkpoint_every else None)
    opts = SimulateOptions(engines=ENGINE_CHOICES[engine], data=data, config=cfg, batch=batch,
                           resume=str(resume) if resume else None,
                           data_dir=str(data_dir) if data_dir else None,
                           float_engine=float_engine)
    with RunFolder(out, overwrite=overwrite, resume=resume), _signals() as stop:
        trainer = prepare(net, device, opts)
        if trace_sample is not None:
            if not trainer.k <= trace_sample < samples:
                raise DataError(f"--trace-sample {trace_sample} is not among the samples this "
                                f"run learns ({trainer.k} to {samples - 1})")
            trainer.trace_at = trace_sample
        bar = Progress(samples - trainer.k, f"learning {net.name} ({engine}) on {device.name}",
                       hidden=quiet)
        compiled = "fixed" in opts.engines or ("float" in opts.engines
                                               and float_engine == "numba")
        with SlowNotice(bar, "compiling the numba kernels (the first run on a machine; "
                             "about a minute, once)" if compiled else "warming up"):
            compile_seconds = trainer.warm_up()
        stop.trainer = trainer
        try:
            bar.start()
            report = run(net, device, opts, progress=bar, trainer=trainer,
                         compile_seconds=compile_seconds)
        except EdgeSnnError as exc:
            from edgesnn.errors import Interrupted

            stop.trainer = None
            bar.close()                  # the error is the last line
            if isinstance(exc, Interrupted) and exc.checkpoint:
                _fail(f"{exc}; resume with: {_resume_command(exc.checkpoint)}", exc.exit_code)
            raise
        stop.trainer = None
        bar.close()
        for path in write_outputs(report, out, trainer.traced):
            click.echo(f"wrote {path}", err=True)
    click.echo(f"{net.name}: " + ", ".join(
        f"{name} test accuracy {100 * report[name]['test_accuracy']:.2f}%"
        for name in opts.engines)
        + (f"; gap {report['gap_points']:+.2f} points" if "gap_points" in report else ""))


def _resume_command(checkpoint: str) -> str:
    """This invocation with ``--resume CHECKPOINT`` (replacing any earlier --resume)."""
    args, skip = [], False
    for a in _ARGS:
        if skip:
            skip = False
        elif a == "--resume":
            skip = True
        elif not a.startswith("--resume="):
            args.append(a)
    return shlex.join(["edgesnn", *args, "--resume", checkpoint])


class _SignalHandlers:
    """SIGINT and SIGTERM handled by ``self._handle`` inside the ``with`` block (from the main
    thread only: elsewhere signals cannot be caught), the old handlers back after it."""

    def _handle(self, signum, frame) -> None:
        raise NotImplementedError

    def __enter__(self):
        import signal

        self._old = {}
        if threading_is_main():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)


class _signals(_SignalHandlers):
    """SIGINT and SIGTERM during a run: stop between two samples (``Trainer.stop``).

    While no trainer runs (loading data, writing reports) a signal stops at once
    (nothing is half-written: every file is written atomically). A second
    SIGINT during a run stops at once too.
    """

    def __init__(self) -> None:
        self.trainer = None

    def _handle(self, signum, frame) -> None:
        import signal

        from edgesnn.errors import Interrupted

        name = signal.Signals(signum).name
        t = self.trainer
        if t is None:
            raise Interrupted(name, 0, None, before=True)
        if t.stop():
            raise KeyboardInterrupt
        t.stop.signal_name = name



def threading_is_main() -> bool:
    """Signal handlers can only be installed from the main thread."""
    import threading

    return threading.current_thread() is threading.main_thread()


def _default_spec() -> Path:
    """The built-in Yin-Yang spec, shipped in the package (examples/yinyang.toml)."""
    from importlib import resources

    return Path(str(resources.files("edgesnn").joinpath("data/yinyang.toml")))


# --------------------------------------------------------------------------
# sweep and report


def _sweep_progress(total: int, label: str, hidden: bool):
    """A ``Progress`` that counts runs (points and float baselines), its rate per minute."""
    from edgesnn.progress import Progress, duration

    class RunsProgress(Progress):
        def status(self) -> str:
            pct = 100 * self.done / self.total if self.total else 100.0
            text = f"{self.done:,}/{self.total:,} runs ({pct:.0f}%)"
            r = self.rate()
            if r:
                text += f", {60 * r:,.1f} runs/min"
                if self.done < self.total:
                    text += f", about {duration((self.total - self.done) / r)} left"
            return text

    return RunsProgress(total, label, hidden=hidden)


class _stop_on_signal(_SignalHandlers):
    """SIGINT / SIGTERM during a sweep: finish nothing new, stop the workers, keep every
    written result (``execute.run_tasks`` polls ``self()``). A second signal stops at once."""

    def __init__(self) -> None:
        self.name: str | None = None

    def __call__(self) -> str | None:
        return self.name

    def _handle(self, signum, frame) -> None:
        import signal

        if self.name is not None:
            raise KeyboardInterrupt
        self.name = signal.Signals(signum).name



def _run_inputs(spec, data, data_dir, encoding, samples, seeds, eval_every, eval_samples,
                overrides, workers, cluster, scheduler):
    """The checked inputs of a sweep-driven command: ``(spec path, spec TOML with the
    overrides applied, sweep.jobs.RunOptions)``; one-line errors for bad options."""
    from edgesnn.datasets import ENCODINGS
    from edgesnn.errors import DataError, SpecError
    from edgesnn.spec import apply_override, parse_spec
    from edgesnn.sweep.jobs import RunOptions
    from edgesnn.tomlcheck import load_toml

    if sum(x is not None for x in (cluster, scheduler)) > 1:
        raise click.UsageError("--cluster and --scheduler exclude each other: give one")
    if scheduler is not None and workers is not None:
        raise click.UsageError("--workers is for the local pool or --cluster local; a "
                               "--scheduler's cluster has the workers it was started with")
    encoding = encoding or ENCODINGS[data][0]
    if encoding not in ENCODINGS[data]:
        raise DataError(f"data set '{data}' takes --encoding {' or '.join(ENCODINGS[data])}, "
                        f"not '{encoding}'")
    spec_path = spec if spec is not None else _default_spec()
    spec_data = load_toml(spec_path, SpecError)
    for item in overrides:
        apply_override(spec_data, item, str(spec_path))
    parse_spec(spec_data, source=str(spec_path))       # the base spec's own errors first
    run_opts = RunOptions(data=data, data_dir=str(data_dir) if data_dir else None,
                          encoding=encoding, samples=samples,
                          eval_every=eval_every or samples, eval_samples=eval_samples,
                          seeds=tuple(range(seeds)))
    return spec_path, spec_data, run_opts


def _backend(workers, cluster, scheduler):
    """The sweep backend the options name: a Dask scheduler, a local Dask cluster or a pool."""
    from edgesnn.sweep.execute import DaskBackend, PoolBackend

    return (DaskBackend(scheduler) if scheduler else
            DaskBackend(None, workers) if cluster == "local" else PoolBackend(workers))


def _run_options(f):
    """The options the sweep-driven commands share (``sweep``, ``fit``): the data, the
    length of a run, seeds, spec overrides, where the runs go, progress."""
    for option in reversed([
        click.option("--data", type=click.Choice(["yinyang", "fsdd", "shd", "ssc", "nmnist",
                                        "dvsgesture", "timing"]), default="yinyang",
            show_default=True,
            help="Data set (as in 'edgesnn simulate')."),
        click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
            help="Folder of a data set's files (every worker must see it at this path)."),
        click.option("--encoding", default=None,
            help="Spike encoder (as in 'edgesnn simulate'; default: the data set's first)."),
        click.option("--samples", type=click.IntRange(1), default=3000, show_default=True,
            help="Training samples learned online by every run."),
        click.option("--seeds", type=click.IntRange(1), default=1, show_default=True,
            help="Run every point with seeds 0..K-1 (the summary shows means)."),
        click.option("--eval-samples", type=click.IntRange(1), default=500, show_default=True,
            help="Validation points per evaluation (the validation accuracy and gap)."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
            help="Override a key of the base spec, e.g. --set layers.0.size=32."),
        click.option("--workers", type=click.IntRange(1), default=None,
            help="Local worker processes (default: the number of cores); with --cluster "
                 "local, the number of Dask workers."),
        click.option("--cluster", type=click.Choice(["local"]), default=None,
            help="local: run on a dask.distributed LocalCluster on this machine "
                 "(processes, one thread each; needs the 'cluster' extra)."),
        click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
            help="Run on a running Dask cluster: the address 'dask scheduler' prints. "
                 "Workers need edgesnn installed (same version) and the data at --data-dir."),
        click.option("--quiet", is_flag=True, help="No progress bar or progress lines."),
    ]):
        f = option(f)
    return f


@contextlib.contextmanager
def _closing_meanwhile(backend):
    """Stop the backend's workers (a third of a second for a pool, more for Dask) in a
    thread while this process writes the reports: nothing runs on them any more."""
    closing = threading.Thread(target=backend.close, daemon=True)
    closing.start()
    try:
        yield
    finally:
        closing.join()


def _import_figures_meanwhile() -> None:
    """Import matplotlib (about 0.7 s) in a thread while the last runs finish, on a core
    that is idle by then; the summary's import later waits for it."""
    threading.Thread(target=lambda: __import__("edgesnn.sweep.figures"), daemon=True).start()


@main.command()
@click.argument("spec", type=click.Path(path_type=Path), default=None, required=False)
@click.option("--hw", "hw_name", default="cortex-m7", show_default=True,
              help="Base device (preset or .toml path); a grid's 'hw' list replaces it.")
@click.option("--grid", "grid_file", type=click.Path(path_type=Path, dir_okay=False),
              required=True,
              help="GRID.toml: [device] and [spec] dotted keys with lists of values "
                   "(e.g. formats.weight.bits = [4, 6, 8, 16]), 'hw = [...]' devices, "
                   "[[zip]] groups of keys moving together, explicit [[points]]. "
                   "See examples/grid_yinyang.toml.")
@_run_options
@click.option("--eval-every", type=click.IntRange(1), default=None,
              help="Validation evaluations every N samples (default: at the end only).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Sweep folder: manifest.json, points/*.json, float/*.json, summary.md, "
                   "summary.json, *.png. Rerunning the same command resumes it.")
def sweep(spec: Path | None, hw_name: str, grid_file: Path, data: str, data_dir: Path | None,
          encoding: str | None, samples: int, seeds: int, eval_every: int | None,
          eval_samples: int, overrides: tuple[str, ...], workers: int | None,
          cluster: str | None, scheduler: str | None, out: Path, quiet: bool) -> None:
    """Run SPEC on every point of a grid of device and spec keys, and summarise.

    Every point and seed is one fixed-point run ('edgesnn simulate --engine
    fixed' of that configuration); the float baseline runs once per seed and
    per spec variant (device keys do not change it) and every point is compared
    with it. Each run is one file, OUT/points/ID.json (OUT/float/ID.json),
    written atomically when it finishes: its configuration, test and
    validation accuracy, gap to float, saturations per tensor, memory per bank,
    energy and cycles per learned sample and per inference, counts, the
    package version, and (under 'timing') wall time and host.

    \b
    Resume: rerun the same command with the same --out; only missing runs are
    computed. A folder started with another grid, spec, device or options is
    refused, naming what changed. Ctrl-C stops the workers (finished runs are
    kept) and prints the command that resumes.

    \b
    Where it runs: a local process pool (--workers N, default all cores), a
    local Dask cluster (--cluster local) or a Dask scheduler (--scheduler
    tcp://HOST:PORT). Results are the same bits on every backend.

    At the end OUT/summary.md, OUT/summary.json and the figures are written
    ('edgesnn report OUT' rebuilds them).

    \b
    A grid, for example (4 x 2 x 3 = 24 points; 'bits' is a format's total
    width with its sign and integer bits kept):
      [device]
      formats.weight.bits = [4, 6, 8, 16]
      formats.trace.bits = [8, 16]
      formats.weight.rounding = ["floor", "nearest-even", "stochastic"]
    """
    from edgesnn.outdir import RunFolder
    from edgesnn.progress import SlowNotice
    from edgesnn.sweep import prepare as prepare_sweep, run as run_sweep
    from edgesnn.sweep.execute import SweepInterrupted
    from edgesnn.sweep.summary import write_summary
    from edgesnn.sweep.task import warm_caches

    spec_path, spec_data, run_opts = _run_inputs(spec, data, data_dir, encoding, samples, seeds,
                                                 eval_every, eval_samples, overrides, workers,
                                                 cluster, scheduler)
    plan = prepare_sweep(spec_path, spec_data, hw_name, grid_file, run_opts)
    backend = _backend(workers, cluster, scheduler)
    tasks = plan.work.all()
    try:
        backend.start()
        with RunFolder(out), _stop_on_signal() as stop:
            from edgesnn.sweep import store

            store.open_folder(out, plan.manifest)
            todo = [t for t in tasks
                    if not store.result_path(out, t["kind"], t["id"]).exists()]
            missing = len(todo)
            name = plan.manifest["info"]["spec_name"]
            click.echo(f"{name}: {len(plan.work.fixed)} point runs "
                       f"({len(plan.grid.points())} points x {seeds} "
                       f"seed{'s' if seeds != 1 else ''}) and "
                       f"{len(plan.work.floats)} float baselines; {len(tasks) - missing} done "
                       f"before, {missing} to run on {backend.describe()}", err=True)
            bar = _sweep_progress(missing, f"sweep {name}", hidden=quiet)
            try:
                if missing:
                    with SlowNotice(bar, "compiling the kernels once before starting the "
                                         "workers (the first run on a machine; about a "
                                         "minute)"):
                        warm_caches(todo)
                    bar.start()
                run_sweep(plan, out, backend, progress=bar, stop=stop, warm=False,
                          note=lambda text: click.echo(f"sweep {name}: {text}", err=True),
                          drained=_import_figures_meanwhile)
            except SweepInterrupted as exc:
                bar.close()
                _fail(f"{exc}; resume with: {shlex.join(['edgesnn', *_ARGS])}",
                      exc.exit_code)
            except BaseException:
                bar.close()
                raise
            if missing:
                bar.close()
            with _closing_meanwhile(backend):
                written = write_summary(out)
    finally:
        backend.close()
    for p in written:
        click.echo(f"wrote {p}", err=True)
    from edgesnn.sweep.summary import build

    s = build(out)
    c = s["culprit"]
    click.echo(f"{name}: {s['tasks']['points_done']} point runs in {out}; "
               + (f"saturations of {c['tensor']} track the gap (Spearman "
                  f"{c['spearman']:+.2f})" if c["tensor"] else "no tensor's saturations "
                  "track the gap"))


@main.command()
@click.argument("spec", type=click.Path(path_type=Path), default=None, required=False)
@click.option("--hw", "hw_name", default="cortex-m7", show_default=True,
              help="The device whose formats are fitted (preset or .toml path).")
@click.option("--max-gap", type=click.FloatRange(0), required=True, metavar="POINTS",
              help="Largest loss of validation accuracy (percentage points, float minus "
                   "fixed) allowed on every seed.")
@click.option("--objective", type=click.Choice(["memory", "energy"]), default="memory",
              show_default=True,
              help="What a step saves: the plan's bytes, or the analytic energy of a learned "
                   "sample; steps are tried largest saving first.")
@click.option("--formats", "kinds", default=",".join(("weight", "bias", "membrane", "current",
                                                      "trace", "signal", "update")),
              show_default=True, metavar="KIND,...",
              help="The formats to narrow (the others keep the device's).")
@_run_options
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Fit folder: NAME-fit.toml (the fitted device), fit.md, fit.json, and "
                   "runs/ (one result file per run). Rerunning the same command resumes it.")
def fit(spec: Path | None, hw_name: str, max_gap: float, objective: str, kinds: str, data: str,
        data_dir: Path | None, encoding: str | None, samples: int, seeds: int,
        eval_samples: int, overrides: tuple[str, ...], workers: int | None,
        cluster: str | None, scheduler: str | None, quiet: bool, out: Path) -> None:
    """Find the narrowest formats of a device that keep SPEC within --max-gap of float.

    Starts from the device's formats (widened first if they already lose more than
    the gap) and narrows one field of one format at a time: each step goes to the
    first width that saves memory (or energy), steps are tried largest saving
    first, and a step is kept when every seed's validation gap holds. It stops
    when no step holds. Every trial is a sweep run ('edgesnn sweep' machinery:
    the local pool, --cluster local or --scheduler; as many steps are tried at
    once as there are workers).

    \b
    Writes OUT/NAME-fit.toml, a device file that 'edgesnn hw validate' accepts
    and 'edgesnn simulate --hw OUT/NAME-fit.toml' runs, and OUT/fit.md with the
    path taken and what the fitted device saves. Ctrl-C stops; rerunning the
    same command reuses every finished run.
    """
    from edgesnn.fit import search
    from edgesnn.fit.report import write as write_fit
    from edgesnn.fit.trials import RUNS, point_of, sweep_evaluator
    from edgesnn.outdir import RunFolder
    from edgesnn.spec import parse_spec
    from edgesnn.sweep.execute import SweepInterrupted
    from edgesnn.sweep.grid import points_grid
    from edgesnn.sweep.jobs import make_work
    from edgesnn.sweep.points import device_toml
    from edgesnn.sweep.task import warm_caches

    spec_path, spec_data, run_opts = _run_inputs(spec, data, data_dir, encoding, samples, seeds,
                                                 None, eval_samples, overrides, workers,
                                                 cluster, scheduler)
    base_spec = parse_spec(spec_data, source=str(spec_path))
    fit_kinds = tuple(k.strip() for k in kinds.split(",") if k.strip())
    if not fit_kinds or any(k not in search.KINDS for k in fit_kinds):
        raise click.UsageError(f"--formats takes some of {','.join(search.KINDS)}, got "
                               f"{kinds!r}")
    dev_data, _ = device_toml(hw_name)
    start = search.explicit_formats(dev_data)         # float devices refused here
    backend = _backend(workers, cluster, scheduler)
    say = (lambda text: None) if quiet else (lambda text: click.echo(f"fit: {text}", err=True))
    batch = getattr(backend, "workers", None) or getattr(backend, "local_workers", 1)
    try:
        backend.start()
        with RunFolder(out), _stop_on_signal() as stop:
            runs = out / RUNS
            runs.mkdir(exist_ok=True)
            say(f"{base_spec.name} on {hw_name}: max gap {max_gap:g} points on {seeds} "
                f"seed{'s' if seeds != 1 else ''}, {samples:,} samples a run, steps by "
                f"{objective}, {batch} at a time on {backend.describe()}")
            evaluate = sweep_evaluator(spec_data, str(spec_path), hw_name, run_opts, runs,
                                       backend, stop=stop, note=say)
            try:
                warm_caches(make_work(points_grid([point_of(start)]), hw_name, spec_data,
                                      str(spec_path), run_opts).all())
                result = search.fit(base_spec, start, max_gap, evaluate, objective=objective,
                                    batch=batch, kinds=fit_kinds, log=say)
            except SweepInterrupted as exc:
                _fail(f"{exc}; resume with: {shlex.join(['edgesnn', *_ARGS])}", exc.exit_code)
            context = {"spec": base_spec.name, "device": start["device"]["name"],
                       "max_gap": max_gap, "seeds": seeds, "samples": samples,
                       "eval_samples": eval_samples, "objective": objective, "data": data}
            with _closing_meanwhile(backend):
                written = write_fit(out, result, context)
    finally:
        backend.close()
    for p in written:
        click.echo(f"wrote {p}", err=True)
    t = result.trial
    test = (f" (test split, not used to choose: {max(t.test_gaps):.2f})" if t.test_gaps
            else "")
    click.echo(f"{base_spec.name}: fitted {written[0]}: {len(result.kept)} steps kept, worst "
               f"seed's gap {max(t.gaps):.2f} points{test}, memory {t.memory_bytes:,} B "
               f"(from {result.start_trial.memory_bytes:,} B)")


@main.command()
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
def report(folder: Path) -> None:
    """Rebuild FOLDER/summary.md, summary.json and the figures of a sweep from its
    stored results (no simulation runs; an unfinished sweep is summarised as far as it
    got)."""
    from edgesnn.errors import OutputError
    from edgesnn.sweep.store import MANIFEST
    from edgesnn.sweep.summary import write_summary

    if not (folder / MANIFEST).is_file():
        raise OutputError(f"{folder}: not a sweep folder (no {MANIFEST}); give the --out of "
                          "an 'edgesnn sweep'")
    for p in write_summary(folder):
        click.echo(f"wrote {p}", err=True)


# --------------------------------------------------------------------------
# golden


@main.command()
@click.argument("folder", type=click.Path(path_type=Path))
def golden(folder: Path) -> None:
    """Run the float engine on every golden case in FOLDER and compare.

    Prints, per case and per array, the largest absolute difference with
    PASS/FAIL. Exits 1 if any case fails or is unsupported.
    """
    from edgesnn.golden import run_golden

    if not run_golden(folder, echo=click.echo):
        sys.exit(1)


def run() -> None:
    """The ``edgesnn`` console command: ``main``, then an exit without the interpreter's
    teardown. Clearing the thousand modules a run loads (numba, llvmlite, matplotlib)
    costs about 0.45 s of one core after the last output (a 24-point sweep: 2 %); every
    command has closed its files, workers and clusters by then, and nothing of edgesnn
    runs at exit. ``main`` itself (``CliRunner`` in the tests) exits normally."""
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass                        # a closed pipe: nothing more can reach it
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
