"""Writing a run's outputs: tables, summary, figures and report, atomically.

Everything goes into a hidden temporary folder beside the destination, which
is renamed into place only when complete, so an interrupted or failed run
never leaves a half-written output folder.
"""

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from sim.errors import PresenceSimError
from sim.experiment import RunResult
from sim.report import read_run, render_report

log = logging.getLogger(__name__)


def default_run_dir(result: RunResult, root: Path = Path("reports")) -> Path:
    """`reports/<scenario>/<UTC time>-seed<seed>`."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return root / result.scenario.slug / f"{stamp}-seed{result.scenario.seed}"


def write_tables(
    tables: dict[str, pd.DataFrame], folder: Path, csv: bool = True
) -> None:
    """Each table as Parquet (and CSV unless `csv` is false) under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if csv:
            frame.to_csv(folder / f"{name}.csv", index=False)
        frame.to_parquet(folder / f"{name}.parquet", index=False)


def write_json(data: dict, path: Path) -> None:
    """`data` as indented JSON; numpy numbers become plain ones."""
    path.write_text(
        json.dumps(data, indent=2, default=_jsonable) + "\n", encoding="utf-8"
    )


def check_out_dir(out_dir: Path) -> Path:
    """Refuse an output folder that cannot be written or holds other files.

    A folder that holds an earlier run (it has `summary.json`) or the
    finished runs of an interrupted sweep (`runs/`) may be written into; any
    other non-empty folder is left alone. Called before a run
    starts, so that a bad `--out` costs no simulation time.
    """
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise PresenceSimError(f"--out: {out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        ours = (out_dir / "summary.json").is_file() or (out_dir / "runs").is_dir()
        if not ours:
            raise PresenceSimError(
                f"--out: {out_dir} holds files that are not a presence-sim run; "
                "choose a new or empty folder"
            )
    for parent in out_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise PresenceSimError(f"--out: {parent} is a file, not a folder")
            _check_writable(parent)
            break
    return out_dir


def _check_writable(folder: Path) -> None:
    """Make and remove a folder in `folder`, as writing the run will; some
    folders (such as those of /proc) pass an access check and still refuse."""
    try:
        probe = tempfile.mkdtemp(prefix=".presence-sim-check.", dir=folder)
    except OSError as exc:
        raise PresenceSimError(
            f"--out: cannot write in {folder} ({exc.strerror or exc})"
        ) from None
    os.rmdir(probe)


@contextmanager
def staged_folder(out_dir: Path) -> Iterator[Path]:
    """A hidden folder that becomes `out_dir` when the block ends without error.

    An existing `out_dir` is replaced whole; on an error or an interrupt the
    staging folder is removed and `out_dir` is left as it was.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = _readable_temporary_folder(f".{out_dir.name}.", out_dir.parent)
    try:
        yield staging
        _move_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_run(result: RunResult, out_dir: Path) -> Path:
    """Write every output of a run into `out_dir`, replacing an earlier run
    there (see `check_out_dir`)."""
    out_dir = check_out_dir(out_dir)
    with staged_folder(out_dir) as staging:
        _write_outputs(result, staging)
    log.info("wrote %s", out_dir)
    return out_dir


def write_outputs_into(result: RunResult, out_dir: Path, report: bool = True) -> Path:
    """Write a result's outputs into `out_dir`, keeping its other entries.

    For folders that also hold finished runs: each output (the tables folder,
    the summary, and unless `report` is false the report and its figures) is
    staged beside the others and replaces its old copy whole.
    """
    out_dir = check_out_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = _readable_temporary_folder(".outputs.", out_dir)
    try:
        _write_outputs(result, staging, report)
        for entry in sorted(staging.iterdir()):
            _move_into_place(entry, out_dir / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("wrote %s", out_dir)
    return out_dir


def _readable_temporary_folder(prefix: str, parent: Path) -> Path:
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    # mkdtemp makes a private folder; a report folder is as readable as any.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    return staging


def _write_outputs(result: RunResult, folder: Path, report: bool = True) -> None:
    write_tables(result.tables, folder / "tables")
    summary = dict(result.summary, tables=sorted(result.tables))
    write_json(summary, folder / "summary.json")
    if report:
        # The report is drawn from the files just written, exactly as
        # `presence-sim report` would draw it again later.
        render_report(*read_run(folder), folder)


def write_report(run_dir: Path) -> Path:
    """Draw a run's report again from its written tables and summary.

    The new `report.html`, `report.md` and `figures/` are drawn in a temporary
    folder inside the run folder and moved over the old ones only when all are
    complete; the tables and the summary are left as they are.
    """
    run_dir = Path(run_dir)
    summary, tables = read_run(run_dir)
    if summary.get("kind") == "plan":
        raise PresenceSimError(
            f"{run_dir}: a capacity plan, whose report.md `presence-sim plan` "
            "writes; `report` redraws the reports of runs"
        )
    staging = Path(tempfile.mkdtemp(prefix=".report.", dir=run_dir))
    try:
        render_report(summary, tables, staging)
        _move_into_place(staging / "figures", run_dir / "figures")
        for name in ("report.md", "report.html"):
            os.replace(staging / name, run_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("redrew the report of %s", run_dir)
    return run_dir


def write_file(path: Path, text: str) -> Path:
    """Write a text file through a temporary file renamed over it, so that a
    reader never sees half of it."""
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        raise PresenceSimError(f"{path} is a folder; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _move_into_place(staging: Path, out_dir: Path) -> None:
    if out_dir.exists():
        # Swap the old folder out first, so a failure leaves one whole copy.
        retired = Path(
            tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent)
        )
        os.replace(out_dir, retired / "previous")
        os.replace(staging, out_dir)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, out_dir)


def _jsonable(value: object) -> object:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
