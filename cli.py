"""presence-sim command line: the verbs users type, and no model logic."""

import logging
import math
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from sim.errors import PresenceSimError, RunAborted

app = typer.Typer(
    help="Simulate and size presence (online-status) sync for instant messaging.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)
CORES = os.cpu_count() or 1

ScenarioFile = Annotated[Path, typer.Argument(help="Scenario YAML file.")]
Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a scenario key, e.g. --set population.users=20000 (repeatable).",
    ),
]

Replications = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Independent runs per scenario (default: the scenario's "
        "`replications`, 1 unless set).",
    ),
]
Jobs = Annotated[
    int,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        help="Local worker processes, or workers of --dask local; a single "
        "run shares its strategies among them (default: the number of cores).",
    ),
]
Dask = Annotated[
    str | None,
    typer.Option(
        help="Run on a Dask cluster: a scheduler address (tcp://HOST:8786) or "
        "'local' for a local Dask cluster of -j workers.",
    ),
]


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Show a user's mistake as one clear message and exit with 2."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PresenceSimError as exc:
            errors.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(2) from None
        except RunAborted as exc:
            errors.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            errors.print("[yellow]interrupted; nothing was written[/]")
            raise typer.Exit(130) from None

    return wrapper


@app.callback()
def configure(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show progress messages.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@app.command()
@user_errors
def validate(scenario_file: ScenarioFile, overrides: Overrides = None) -> None:
    """Check a scenario file without running it."""
    from sim.graph import check_data_files
    from sim.memory import check_memory
    from sim.scenario import load_scenario

    scenario = load_scenario(scenario_file, overrides)
    check_data_files(scenario)
    need = check_memory(scenario)
    console.print(
        f"[green]ok[/] {escape(str(scenario_file))}: scenario "
        f"'{escape(scenario.name)}', about {need.total / 2**30:.1f} GiB to run"
    )


@app.command()
@user_errors
def run(
    scenario_file: ScenarioFile,
    overrides: Overrides = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output folder (default reports/<scenario>/<run-id>, or "
            "reports/<scenario>/replications with several replications)."
        ),
    ] = None,
    replications: Replications = None,
    jobs: Jobs = CORES,
    dask: Dask = None,
) -> None:
    """Run a scenario under every strategy and write its report.

    With several replications the tables give means with 95% intervals, and
    running the same command again skips the replications already made.
    """
    from sim.experiment import run_scenario
    from sim.output import check_out_dir, default_run_dir, write_run
    from sim.scenario import load_scenario

    scenario = load_scenario(scenario_file, overrides)
    if scenario.sweep:
        errors.print(
            "[yellow]note:[/] `run` ignores the scenario's sweep: block; "
            "`presence-sim sweep` runs it"
        )
    if (replications or scenario.replications) > 1:
        from sim.sweep import plan_sweep

        plan = plan_sweep(
            scenario_file, overrides or [], replications=replications, sweep_block=False
        )
        out_dir = out or Path("reports") / scenario.slug / "replications"
        outcome = run_many(plan, out_dir, jobs, dask)
        print_strategies(outcome.tables["strategies"])
        console.print(
            f"wrote [bold]{escape(str(out_dir))}[/] "
            "(report.html, report.md, tables/, figures/, runs/)"
        )
        return

    target = check_out_dir(out) if out is not None else None
    with kill_is_interrupt():
        with _simulated_time_bar() as progress:
            task = progress.add_task(f"running {scenario.name}", total=1.0)
            result = run_scenario(
                scenario,
                progress=lambda done: progress.update(task, completed=done),
                processes=jobs,
            )
        out_dir = write_run(result, target or default_run_dir(result))
    print_strategies(result.tables["strategies"])
    console.print(
        f"wrote [bold]{escape(str(out_dir))}[/] "
        "(report.html, report.md, tables/, figures/)"
    )


@app.command()
@user_errors
def report(
    run_dir: Annotated[
        Path, typer.Argument(help="A run's output folder, as `run` wrote it.")
    ],
) -> None:
    """Draw a run's report again from its tables, without simulating."""
    from sim.output import write_report

    write_report(run_dir)
    console.print(
        f"wrote [bold]{escape(str(run_dir))}[/] (report.html, report.md, figures/)"
    )


@app.command()
@user_errors
def sweep(
    scenario_file: ScenarioFile,
    grid: Annotated[
        list[str] | None,
        typer.Option(
            help="Sweep a scenario key over values, e.g. --grid "
            "strategies.poll_interval=10s,30s,60s (repeatable; full grid).",
        ),
    ] = None,
    overrides: Overrides = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder (default reports/<scenario>/sweep)."),
    ] = None,
    replications: Replications = None,
    jobs: Jobs = CORES,
    dask: Dask = None,
) -> None:
    """Run every point of a grid of scenario keys, each with its replications.

    The grid comes from the scenario's `sweep:` block and --grid options.
    Running the same command again skips the runs already in the output
    folder.

    Limitation: a sweep's report has its sweep figures and scenario settings
    only; the comparison, distributions and load over time need one point.
    Limitation: two different sweeps of one scenario share its default output
    folder; their runs are kept apart, but the tables are those of the last
    command, so give --out to keep sweeps apart.
    """
    from sim.errors import PresenceSimError
    from sim.sweep import plan_sweep

    plan = plan_sweep(scenario_file, overrides or [], grid or [], replications)
    if not plan.keys:
        raise PresenceSimError(
            "sweep: nothing to sweep; give --grid KEY=V1,V2,... or a sweep: block "
            "in the scenario"
        )
    out_dir = out or Path("reports") / plan.base.slug / "sweep"
    outcome = run_many(plan, out_dir, jobs, dask)
    print_strategies(outcome.tables["sweep_strategies"], leading=plan.keys)
    console.print(
        f"wrote [bold]{escape(str(out_dir))}[/] (report.html, report.md, "
        "tables/sweep_*: means with 95% intervals and *_replications per run)"
    )


def run_many(plan: Any, out_dir: Path, jobs: int, dask: str | None) -> Any:
    """Make a plan's runs with a progress bar; explain failures and interrupts."""
    from sim.executors import ExecutorChoice
    from sim.runner import RunsFailed, RunsInterrupted, run_plan

    choice = ExecutorChoice(jobs, dask)
    runs = len(plan.distinct_runs)
    console.print(
        f"{len(plan.points)} point(s) x {plan.replications} replication(s): "
        f"{runs} runs on {choice.describe()}"
    )
    try:
        with kill_is_interrupt(), run_progress() as progress:
            outcome = run_plan(plan, out_dir, choice, progress)
    except RunsInterrupted as stop:
        errors.print(
            f"[yellow]interrupted[/]; {stop.kept} finished runs are kept in "
            f"{escape(str(stop.out_dir))}: run the same command again to finish"
        )
        raise typer.Exit(130) from None
    except RunsFailed as failed:
        for line in str(failed).splitlines():
            errors.print(f"[bold red]error:[/] {escape(line)}")
        errors.print(
            f"{failed.kept} finished runs are kept in {escape(str(failed.out_dir))}; "
            "run the same command again to retry the failed ones"
        )
        raise typer.Exit(1) from None
    skipped = f", skipped {outcome.skipped} finished" if outcome.skipped else ""
    console.print(f"ran {outcome.executed} runs{skipped}")
    return outcome


@contextmanager
def run_progress() -> Iterator[Callable[[Any], None]]:
    """One bar over runs: done of total, running, failed, time left."""
    with Progress(
        TextColumn("[bold]runs"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[running]} running, {task.fields[failed]} failed"),
        TextColumn("{task.fields[skipped]}"),
        TimeRemainingColumn(),
        console=errors,
        transient=True,
    ) as progress:
        task = progress.add_task("runs", total=None, running=0, failed=0, skipped="")

        def update(counts: Any) -> None:
            progress.update(
                task,
                total=counts.total,
                completed=counts.done + counts.failed,
                running=counts.running,
                failed=counts.failed,
                skipped=f"({counts.skipped} skipped)" if counts.skipped else "",
            )

        yield update


@contextmanager
def kill_is_interrupt() -> Iterator[None]:
    """Treat `kill` (SIGTERM) like Ctrl-C, so worker processes are stopped too."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@app.command()
@user_errors
def estimate(scenario_file: ScenarioFile, overrides: Overrides = None) -> None:
    """Predict N, request rates and tier load by formula, without simulating."""
    from sim.analytic import estimate_scenario
    from sim.scenario import load_scenario

    scenario = load_scenario(scenario_file, overrides)
    result = estimate_scenario(scenario)
    profile = result.profile
    console.print(
        f"[bold]{escape(scenario.name)}[/]: {profile.users:,} users, "
        f"{result.online_users:,.0f} online ({result.online_fraction:.3g}), "
        f"{_count(result.changes_per_second)} status changes/s; "
        f"{escape(profile.basis)}"
    )

    strategies = Table(title="Strategies, predicted (N: observers per change)")
    strategies.add_column("strategy", justify="right", no_wrap=True)
    for title in ("N mean", "N p99", "msgs/s", "req/s", "msgs/chg"):
        strategies.add_column(title, justify="right")
    strategies.add_column("latency", justify="right")
    for row in result.strategies:
        n = row.n
        strategies.add_row(
            f"{row.audience} {row.strategy.replace('_', ' ')}",
            _count(n.mean()) if n else "-",
            _count(n.quantile(0.99)) if n else "-",
            _count(row.messages_per_second),
            _count(row.requests_per_second),
            _count(row.amplification),
            _seconds(row.latency_mean),
        )
    console.print(strategies)

    tiers = Table(title="Server tiers, predicted (utilisation over 1: saturated)")
    for title in ("strategy", "tier", "servers", "req/s", "utilisation"):
        tiers.add_column(title, justify="right")
    tiers.add_column("wait mean", justify="right")
    for row in result.strategies:
        for tier in row.tiers:
            tiers.add_row(
                f"{row.audience} {row.strategy.replace('_', ' ')}",
                tier.tier,
                f"{tier.servers} x {tier.workers}",
                _count(tier.jobs_per_second),
                f"{tier.utilisation:.3g}",
                _seconds(tier.wait_mean),
            )
    console.print(tiers)
    for row in result.strategies:
        if not math.isnan(row.n_distinct_mean):
            console.print(
                f"{row.audience} {row.strategy} deduplicated per recipient: "
                f"N mean {_count(row.n_distinct_mean)}"
            )


def print_strategies(frame: Any, leading: list[str] | None = None) -> None:
    """The comparison table, narrow enough for an 80-column terminal.

    `leading` columns (swept keys, titled by their last part) come first. The
    means of several replications are shown with their 95% half-width, for
    fewer metrics so that the table still fits.
    """
    columns = {key: (key.rsplit(".", 1)[-1], _count) for key in leading or []}
    columns |= {"audience": ("audience", str), "strategy": ("strategy", str)}
    if "replications" in frame.columns:
        columns |= {
            "n_mean": ("N mean", _count),
            "amplification": ("msgs/chg", _count),
            "latency_mean_s": ("latency mean", _seconds),
        }
    else:
        columns |= {
            "n_mean": ("N mean", _count),
            "n_p99": ("N p99", _count),
            "n_max": ("N max", _count),
            "amplification": ("msgs/chg", _count),
            "latency_p50_s": ("latency p50", _seconds),
            "latency_p99_s": ("latency p99", _seconds),
        }
    table = Table(title="Strategies (N: observers reached per status change)")
    for title, _ in columns.values():
        table.add_column(title, justify="right")
    for row in frame.to_dict("records"):
        table.add_row(*(_cell(row, key, shape) for key, (_, shape) in columns.items()))
    console.print(table)


def _cell(row: dict[str, Any], key: str, shape: Callable[[Any], str]) -> str:
    """A value, followed by `± half-width` when the row has a 95% interval."""
    from sim.stats import HIGH

    # Values such as a swept list ("[push]") are text, not rich markup.
    text = escape(shape(row[key]))
    high = row.get(key + HIGH)
    if high is None or math.isnan(high) or math.isnan(row[key]):
        return text
    return f"{text}±{escape(shape(high - row[key]))}"


def _wide() -> Console:
    """Where wide tables go: a log is no terminal, so they get the room their
    names need there instead of the 80 columns assumed for one."""
    return console if console.is_terminal else Console(width=120)


def _count(value: float) -> str:
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _seconds(value: float) -> str:
    from sim.units import format_duration

    if math.isinf(value):
        return "saturated"
    if 0 < value < 1e-6:
        return "<1us"
    return "-" if math.isnan(value) else format_duration(float(f"{value:.3g}"))


TargetUsers = Annotated[
    int | None,
    typer.Option(
        "--target-users",
        help="Population to plan for (default: capacity.target_users).",
    ),
]
SimulatedUsers = Annotated[
    int | None,
    typer.Option(
        "--simulated-users",
        help="Users to simulate (default: capacity.simulated_users, else the "
        "population, at most 100,000).",
    ),
]


@app.command()
@user_errors
def plan(
    scenario_file: ScenarioFile,
    target_users: TargetUsers = None,
    simulated_users: SimulatedUsers = None,
    overrides: Overrides = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder (default reports/<scenario>/plan-<time>)."),
    ] = None,
) -> None:
    """Plan the fewest servers per tier meeting the scenario's SLOs at a
    target size, by formula and simulation."""
    from datetime import UTC, datetime

    from sim.capacity import make_plan, plan_settings
    from sim.capacity_report import (
        SERVER_COLUMNS,
        STRATEGY_HEADER,
        advise,
        scaling_notes,
        strategy_rows,
        write_plan,
    )
    from sim.output import check_out_dir
    from sim.scenario import load_scenario

    scenario = load_scenario(scenario_file, overrides)
    settings = plan_settings(scenario, target_users, simulated_users)
    if out is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        out = Path("reports") / scenario.slug / f"plan-{stamp}"
    out = check_out_dir(out)
    with _run_progress() as progress:
        result = make_plan(scenario, settings, progress)
    out_dir = write_plan(result, out)

    # Servers, then the figures at the target size: two tables that each
    # fit a narrow terminal.
    rows = strategy_rows(result)
    titles = (
        f"Servers for {settings.target_users:,} users (simulated "
        f"{settings.simulated_users:,}, scale factor {settings.scale:.6g})",
        "At the target size",
    )
    parts = (
        list(range(SERVER_COLUMNS)),
        [0, *range(SERVER_COLUMNS, len(STRATEGY_HEADER))],
    )
    for title, columns in zip(titles, parts, strict=True):
        table = Table(title=title, box=box.SIMPLE_HEAD)
        for index in columns:
            name = STRATEGY_HEADER[index]
            table.add_column(
                name,
                justify="left" if name == "SLO" else "right",
                no_wrap=name != "SLO",
            )
        for row in rows:
            table.add_row(*(escape(row[index]) for index in columns))
        _wide().print(table)
    for item in advise(result):
        console.print(
            f"[bold]{item.audience.capitalize()}:[/] {escape(item.text)}",
            highlight=False,
        )
    console.print()
    for note in scaling_notes(result):
        console.print(f"- {escape(note)}", highlight=False)
    console.print(
        f"{result.runs} run{'s' if result.runs != 1 else ''} in "
        f"{result.wall_seconds:.0f} s; wrote [bold]{escape(str(out_dir))}[/] "
        "(report.md, tables/plan.csv, tables/plan.parquet)"
    )


@contextmanager
def _run_progress() -> Iterator[Callable[[int, float], None]]:
    """A progress bar per simulation run of a plan or check."""
    with _simulated_time_bar() as progress:
        tasks: dict[int, Any] = {}

        def update(run: int, done: float) -> None:
            if run not in tasks:
                tasks[run] = progress.add_task(f"run {run}", total=1.0)
            progress.update(tasks[run], completed=done)

        yield update


@app.command()
@user_errors
def baseline(
    scenario_file: ScenarioFile,
    out: Annotated[
        Path, typer.Option(help="Baseline file to write, e.g. baselines/NAME.json.")
    ],
    target_users: TargetUsers = None,
    simulated_users: SimulatedUsers = None,
    overrides: Overrides = None,
) -> None:
    """Run a scenario (and plan it) and write the figures a CI gate watches."""
    import json

    from sim.baseline import make_baseline, measure
    from sim.output import write_file
    from sim.scenario import load_scenario

    scenario = load_scenario(scenario_file, overrides)
    target = target_users or scenario.capacity.target_users
    if out.is_dir():
        raise PresenceSimError(f"--out: {out} is a folder; give a file name")
    with _run_progress() as progress:
        result, plan = measure(
            scenario, target, simulated_users, lambda done: progress(0, done)
        )
    data = make_baseline(result, plan, str(scenario_file), overrides or [])
    write_file(out, json.dumps(data, indent=2) + "\n")
    if plan is None:
        console.print(
            "no target size (--target-users or capacity.target_users): planned "
            "servers are not watched"
        )
    console.print(
        f"wrote [bold]{escape(str(out))}[/]: {len(data['metrics'])} metrics of "
        f"'{escape(scenario.name)}', seed {scenario.seed}"
    )


@app.command()
@user_errors
def check(
    scenario_file: ScenarioFile,
    baseline_file: Annotated[
        Path, typer.Option("--baseline", help="Baseline file to compare with.")
    ],
    tolerance: Annotated[
        list[str] | None,
        typer.Option(
            help="METRIC=TOLERANCE overriding the baseline's, e.g. "
            "'friends.push.n_mean=2%' or '*.latency_p99_s=5%,1ms' (repeatable; "
            "METRIC may use * and ?).",
        ),
    ] = None,
    junit: Annotated[
        Path | None, typer.Option(help="Write a JUnit XML report here.")
    ] = None,
    overrides: Overrides = None,
) -> None:
    """Re-run a scenario and compare it with a baseline: exit 0 when every
    metric holds, 1 when any moved beyond its tolerance."""
    from sim.baseline import (
        compare,
        junit_xml,
        measure,
        read_baseline,
        setting_changes,
        tolerance_options,
        versions,
        watched_figures,
    )
    from sim.output import write_file
    from sim.scenario import load_scenario

    data = read_baseline(baseline_file)
    chosen = tolerance_options(tolerance or [])
    scenario = load_scenario(scenario_file, overrides)
    if junit is not None and junit.is_dir():
        raise PresenceSimError(f"--junit: {junit} is a folder; give a file name")
    compare(data, {}, chosen)
    planned = data.get("plan") or {}
    with _run_progress() as progress:
        result, plan = measure(
            scenario,
            planned.get("target_users"),
            planned.get("simulated_users"),
            lambda done: progress(0, done),
        )
    rows = compare(data, watched_figures(result, plan), chosen)

    for change in setting_changes(
        data.get("settings", {}), scenario.model_dump(mode="json")
    ):
        console.print(f"scenario differs from the baseline's: {escape(change)}")
    now = versions()
    for name, was in data.get("versions", {}).items():
        if now.get(name) != was:
            console.print(
                f"{name} {now.get(name)} differs from the baseline's {was}; "
                "numbers may move slightly"
            )
    table = Table(title=f"Check against {baseline_file}", box=box.SIMPLE_HEAD)
    table.add_column("metric", no_wrap=True)
    for title in ("baseline", "now", "change", "tolerance", "verdict"):
        table.add_column(title, justify="right", no_wrap=True)
    for row in rows:
        verdict = "ok" if row.holds else f"[bold red]{row.verdict}[/]"
        table.add_row(
            row.metric,
            f"{row.baseline:.6g}",
            "-" if row.now is None else f"{row.now:.6g}",
            row.change,
            row.describe_tolerance(),
            verdict,
        )
    _wide().print(table)
    if junit is not None:
        properties = {
            "baseline": str(baseline_file),
            "scenario": scenario.name,
            "seed": str(scenario.seed),
        }
        suite = f"presence-sim check {scenario.name}"
        write_file(junit, junit_xml(rows, suite, properties))
        console.print(f"wrote [bold]{escape(str(junit))}[/]")
    moved = [row.metric for row in rows if not row.holds]
    if moved:
        console.print(
            f"[bold red]{len(moved)} of {len(rows)} metrics moved beyond their "
            f"tolerance:[/] {escape(', '.join(moved))}"
        )
        raise typer.Exit(1)
    console.print(f"[green]all {len(rows)} metrics hold[/]")


def _simulated_time_bar() -> Progress:
    """A transient bar over simulated time, on the error stream."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}% simulated time"),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
