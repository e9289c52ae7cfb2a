"""``omnichannel lag``: the table (once, or ``--watch``) and ``omnichannel lag serve``.

Registered on the main command line by ``omnichannel/cli.py`` (``cli.add_command(lag)``). This module does
not import ``omnichannel.cli`` (that module imports this one), so it carries its own small error wrapper.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import click
import httpx
from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from omnichannel import exit_codes
from omnichannel.console import err, friendly_errors, out
from omnichannel.errors import OmnichannelError, ServiceUnavailableError
from omnichannel.kafka_admin import check_login
from omnichannel.lag.broker import KafkaLagSource
from omnichannel.lag.config import LagConfig
from omnichannel.lag.model import notfound_group_json, report_to_json
from omnichannel.lag.monitor import LagMonitor
from omnichannel.lag.notify import LogNotifier, Notifier, WebhookNotifier
from omnichannel.lag.table import exit_code, render_report
from omnichannel.settings import Settings
from omnichannel.stack import StackInfo, stack_file

__all__ = ["build_monitor", "kafka_address", "lag"]


def kafka_address(settings: Settings) -> str:
    """``KAFKA_BOOTSTRAP_SERVERS``, else the Kafka of a running ``omnichannel stack up``; starts nothing."""
    if settings.kafka_bootstrap_servers:
        return settings.kafka_bootstrap_servers
    saved = StackInfo.load(stack_file(settings))
    if saved is None:
        raise ServiceUnavailableError(
            "no Kafka address: set KAFKA_BOOTSTRAP_SERVERS (e.g. localhost:9092) or run `omnichannel stack up`"
        )
    return saved.kafka.address


def build_monitor(
    bootstrap: str,
    config: LagConfig,
    notifier: Notifier | None = None,
    *,
    log_outages: bool = True,
    security: Mapping[str, str] | None = None,
) -> LagMonitor:
    """A monitor on the real broker with the configured window, groups and notifier; ``security`` as
    :meth:`KafkaSecurity.confluent_config` gives it (see :func:`monitor_for`)."""
    if notifier is None:
        notifier = WebhookNotifier(config.webhook_url) if config.webhook_url else LogNotifier()
    selector = config.selector
    return LagMonitor(
        KafkaLagSource(
            bootstrap,
            timeout=config.timeout_seconds,
            select=None if selector.selects_all else selector,
            security=security,
        ),
        interval_seconds=config.interval_seconds,
        window_seconds=config.window_seconds,
        history_seconds=config.history_seconds,
        groups=config.groups,
        notifier=notifier,
        log_outages=log_outages,
        cluster_name=config.cluster_name,
    )


def monitor_for(settings: Settings, config: LagConfig, *, log_outages: bool = True) -> LagMonitor:
    """The monitor of ``settings``' Kafka, with its credentials. Credentials the broker refuses end the command
    here with :class:`KafkaAuthenticationError` (one line, exit 1) instead of polling an "outage" for ever."""
    bootstrap = kafka_address(settings)
    security = settings.kafka_security.confluent_config()
    if settings.kafka_security.protocol.startswith("SASL"):
        check_login(bootstrap, security, timeout=config.timeout_seconds)
    return build_monitor(bootstrap, config, log_outages=log_outages, security=security)


def _config(
    groups: tuple[str, ...],
    interval: float | None,
    window: float | None,
    selection: tuple[str | None, tuple[str, ...], tuple[str, ...]],
    **more: Any,
) -> LagConfig:
    base = LagConfig.from_env()
    window = window if window is not None else (None if interval is None else max(base.window_seconds, 2 * interval))
    cluster_name, allow, deny = selection
    return base.override(
        groups=groups or None,
        interval_seconds=interval,
        window_seconds=window,
        cluster_name=cluster_name,
        group_allow=allow,
        group_deny=deny,
        **more,
    )


def _selection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--cluster-name, --group-allow, --group-deny (shared by `lag` and `lag serve`)."""
    func = click.option(
        "--group-deny",
        "group_deny",
        multiple=True,
        metavar="REGEX",
        help="Never watch groups whose whole name matches (repeatable) [env OMNICHANNEL_LAG_GROUP_DENY].",
    )(func)
    func = click.option(
        "--group-allow",
        "group_allow",
        multiple=True,
        metavar="REGEX",
        help="Watch only groups whose whole name matches one of these (repeatable) [env OMNICHANNEL_LAG_GROUP_ALLOW].",
    )(func)
    return click.option(
        "--cluster-name",
        default=None,
        help="Cluster name in metrics (cluster_name) and the Burrow API [env OMNICHANNEL_LAG_CLUSTER_NAME; local].",
    )(func)


#: Wide enough for any topic name: piped output is for grep and scripts, which must see whole names.
_PIPE_WIDTH = 4096


def _results_console() -> Console:
    """``out`` on a terminal; off a terminal (``| cat``, ``| grep``) a console that never cuts a line."""
    if out.is_terminal:
        return out
    return Console(width=_PIPE_WIDTH, soft_wrap=True)


_group_option = click.option(
    "-g", "--group", "groups", multiple=True, help="A consumer group to show (repeatable; default: every group)."
)
_interval_option = click.option(
    "--interval", type=float, default=None, help="Seconds between readings [env OMNICHANNEL_LAG_INTERVAL; 10]."
)
_window_option = click.option(
    "--window", type=float, default=None, help="Status window in seconds [env OMNICHANNEL_LAG_WINDOW; 120]."
)


@click.group("lag", invoke_without_command=True)
@_group_option
@click.option("-w", "--watch", is_flag=True, help="Redraw every interval until Ctrl-C (statuses need a window).")
@_interval_option
@_window_option
@_selection_options
@click.option("--server", metavar="URL", help="Ask a running `omnichannel lag serve` (e.g. http://localhost:8090).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON of GET /v1/ops/lag instead of a table.")
@click.pass_context
@friendly_errors
def lag(
    ctx: click.Context,
    groups: tuple[str, ...],
    watch: bool,
    interval: float | None,
    window: float | None,
    cluster_name: str | None,
    group_allow: tuple[str, ...],
    group_deny: tuple[str, ...],
    server: str | None,
    as_json: bool,
) -> None:
    """Consumer lag per group, topic and partition, read from the broker: offsets behind, seconds behind,
    and a Burrow-style status (OK, WARN, STALL, STOP, REWIND; groups OK, WARN, ERR, NOTFOUND).

    \b
    Exit status without --watch:
      0   every group OK or WARN
      1   an error (e.g. a malformed setting)
      2   usage error (unknown option, bad value)
      3   a group is ERR
      4   a group asked for does not exist (NOTFOUND; wins over 3)
      75  Kafka (or the --server monitor) did not answer

    Piped output is never cut to the terminal's width. `omnichannel lag serve` runs the monitor as a
    service (metrics, JSON API, Burrow API, live page).
    """
    if ctx.invoked_subcommand is not None:
        return
    settings: Settings = ctx.obj if isinstance(ctx.obj, Settings) else Settings.from_env()
    config = _config(groups, interval, window, (cluster_name, group_allow, group_deny))
    if server is not None:
        fetch: Callable[[], dict[str, Any]] = lambda: _from_server(server, groups)  # noqa: E731
    else:
        # One reading prints its outage in the table itself; a log line would only repeat it.
        monitor = monitor_for(settings, config, log_outages=watch)
        fetch = lambda: report_to_json(monitor.poll())  # noqa: E731
    if not watch:
        report = fetch()
        if as_json:
            click.echo(json.dumps(report, indent=2))
        else:
            _results_console().print(render_report(report), highlight=False)
        sys.exit(exit_code(report))
    if as_json:  # one JSON document per line and interval, for `| jq` and log shippers
        try:
            while True:
                click.echo(json.dumps(fetch()))
                time.sleep(config.interval_seconds)
        except KeyboardInterrupt:
            sys.exit(exit_codes.OK)
    try:
        with Live(_drawn(fetch), console=out, auto_refresh=False) as live:
            while True:
                time.sleep(config.interval_seconds)
                live.update(_drawn(fetch), refresh=True)
    except KeyboardInterrupt:
        pass


def _drawn(fetch: Callable[[], dict[str, Any]]) -> RenderableType:
    """One frame of --watch; a failed fetch (e.g. `lag serve` restarting) is shown, and watching goes on."""
    try:
        return render_report(fetch(), watching=True)
    except OmnichannelError as exc:
        return Text(f"error: {exc} (retrying)", style="bold red")


def _from_server(server: str, groups: tuple[str, ...]) -> dict[str, Any]:
    url = server.rstrip("/") + "/v1/ops/lag"
    try:
        response = httpx.get(url, timeout=10.0)
        body: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ServiceUnavailableError(
            f"the lag monitor at {server} did not answer ({exc}); is `omnichannel lag serve` running there?"
        ) from exc
    if response.status_code not in (200, 503) or "groups" not in body:
        raise ServiceUnavailableError(f"the lag monitor at {url} answered HTTP {response.status_code}: {body}")
    if groups:
        present = {g["group"]: g for g in body["groups"]}
        bootstrap = (body.get("broker") or {}).get("bootstrap", server)
        body["groups"] = [present.get(g) or notfound_group_json(g, bootstrap) for g in dict.fromkeys(groups)]
    return body


@lag.command("serve")
@_group_option
@_interval_option
@_window_option
@_selection_options
@click.option("--host", default=None, help="Address to bind [env OMNICHANNEL_LAG_HOST; 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [env OMNICHANNEL_LAG_PORT; 8090].")
@click.pass_obj
@friendly_errors
def serve_command(
    settings: Settings | None,
    groups: tuple[str, ...],
    interval: float | None,
    window: float | None,
    cluster_name: str | None,
    group_allow: tuple[str, ...],
    group_deny: tuple[str, ...],
    host: str | None,
    port: int | None,
) -> None:
    """Run the lag monitor as its own process: /metrics (also under kafka-lag-exporter's and burrow_exporter's
    names), GET /v1/ops/lag, Burrow's /v3/kafka API, and the page at /ops/lag.

    It polls Kafka every interval, keeps the last hour in memory, and sends a webhook
    (OMNICHANNEL_LAG_WEBHOOK_URL) or writes a log line when a group leaves OK and when it returns.
    A broker outage is shown on every output; the monitor keeps running and recovers by itself.
    """
    from omnichannel.lag.web import serve

    settings = settings if isinstance(settings, Settings) else Settings.from_env()
    config = _config(groups, interval, window, (cluster_name, group_allow, group_deny), host=host, port=port)
    monitor = monitor_for(settings, config)
    err.print(
        f"[dim]...[/] lag monitor for {monitor.source.bootstrap} on http://{config.host}:{config.port}/ops/lag "
        f"(every {config.interval_seconds:g}s, window {config.window_seconds:g}s)",
        markup=True,
        highlight=False,
    )
    serve(monitor, config.host, config.port)
