"""Command-line entry points of the connectors: ``omnichannel import <channel> FILE``.

The collector is served by ``omnichannel serve`` (with the read API).

Registered on the main ``omnichannel`` group by :mod:`omnichannel.cli`.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from connectors.channels import ADAPTER_MODULES, load_adapter
from connectors.config import event_window_from_env
from connectors.importer import import_file, position_path
from connectors.publisher import publisher_for
from omnichannel.console import err, errors_as_messages, out
from omnichannel.settings import Settings
from omnichannel.stack import connect

__all__ = ["import_files"]


@click.group("import")
def import_files() -> None:
    """Import a channel's batch file into Kafka, resumably (a re-run continues where the last one stopped)."""


def _import_command(adapter_name: str) -> click.Command:
    adapter = load_adapter(adapter_name)
    assert adapter.file_format is not None
    formats = adapter.file_format.formats

    @click.command(adapter_name.replace("_", "-"), help=_import_help(adapter_name, adapter.summary, formats))
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--format", "fmt", type=click.Choice(formats), help="File format (default: from the file name).")
    @click.option("--batch-size", default=500, show_default=True, help="Events per acknowledged batch.")
    @click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for Kafka per batch.")
    @click.option("--restart", is_flag=True, help="Ignore the saved position: import from the first line.")
    @click.option("--skip-invalid", is_flag=True, help="Report invalid lines and go on, instead of stopping.")
    @click.pass_obj
    def command(
        settings: Settings,
        file: Path,
        fmt: str | None,
        batch_size: int,
        timeout: float,
        restart: bool,
        skip_invalid: bool,
    ) -> None:
        with errors_as_messages():
            position = position_path(settings.state_dir, adapter_name, file)
            window = event_window_from_env()
            with publisher_for(connect(settings), timeout) as publisher, _bar() as bar:
                task = bar.add_task(file.name, total=file.stat().st_size, events=0)
                report = import_file(
                    file,
                    adapter=adapter,
                    publish=publisher.publish,
                    position_file=position,
                    fmt=fmt,
                    batch_size=batch_size,
                    restart=restart,
                    skip_invalid=skip_invalid,
                    progress=lambda done, published: bar.update(task, completed=done, events=published),
                    window=window,
                )
            for rejected in report.rejected:
                err.print(f"line {rejected.line} skipped: " + "; ".join(map(str, rejected.problems)), highlight=False)
            out.print(
                f"{report.published} events published from lines {report.first_line}-{report.last_line} of {file} "
                f"({report.published_total} in total; {len(report.rejected)} lines skipped). Position: {position}",
                highlight=False,
            )

    return command


def _import_help(name: str, summary: str, formats: tuple[str, ...]) -> str:
    return (
        f"Import a {name.replace('_', ' ')} file ({' or '.join(formats)}) into Kafka: {summary}\n\n"
        "Lines are published in batches; after Kafka acknowledged a batch its position is saved under the state "
        "directory (.omnichannel/imports/), so running the same command again, after a crash, a Kafka outage "
        "or a fixed invalid line, continues after the last stored line without duplicating it. The file format "
        f"is described in `connectors/channels/{ADAPTER_MODULES[name].rsplit('.', 1)[-1]}.py`."
    )


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[events]} events"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


# One import command per registered adapter that reads files: a new file channel needs no change here.
for _name in ADAPTER_MODULES:
    if load_adapter(_name).file_format is not None:
        import_files.add_command(_import_command(_name))
