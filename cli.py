"""presence-sim command line: the verbs users type, and no model logic."""

import logging
import math
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sim.errors import PresenceSimError

app = typer.Typer(
    help="Simulate and size presence (online-status) sync for instant messaging.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)

ScenarioFile = Annotated[Path, typer.Argument(help="Scenario YAML file.")]
Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a scenario key, e.g. --set population.users=20000 (repeatable).",
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
        typer.Option(help="Output folder (default reports/<scenario>/<run-id>)."),
    ] = None,
) -> None:
    """Run a scenario under every strategy and write its report."""
    from sim.experiment import run_scenario
    from sim.output import check_out_dir, default_run_dir, write_run
    from sim.scenario import load_scenario

    scenario = load_scenario(scenario_file, overrides)
    target = check_out_dir(out) if out is not None else None
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}% simulated time"),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
    ) as progress:
        task = progress.add_task(f"running {scenario.name}", total=1.0)
        result = run_scenario(
            scenario, progress=lambda done: progress.update(task, completed=done)
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


def print_strategies(frame: Any) -> None:
    """The comparison table, narrow enough for an 80-column terminal."""
    columns = {
        "audience": ("audience", str),
        "strategy": ("strategy", str),
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
    for row in frame.itertuples(index=False):
        table.add_row(
            *(shape(getattr(row, key)) for key, (_, shape) in columns.items())
        )
    console.print(table)


def _count(value: float) -> str:
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
