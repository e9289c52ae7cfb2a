"""The ``omnichannel`` command line: one entry point for the stack, the contract, the services and the demo."""

from __future__ import annotations

import json
import logging
import os
import sys

import click

from omnichannel import logs
from omnichannel.console import err, friendly_errors, out, progress
from omnichannel.kafka_admin import ensure_topics
from omnichannel.lag.cli import lag
from omnichannel.settings import Settings
from omnichannel.stack import StackInfo, connect, resolve_stack, service_answers, stack_file, stop_service
from omnichannel.stack.maven import kafka_classpath, registry_jar, require_java
from omnichannel.stack.processes import is_alive
from omnichannel.stack.redis_server import require_redis_server
from omnichannel.stack.revive import revive_stack
from schemas.evolution import check_released
from schemas.publish import COMPATIBILITY, check_registered, register_all, require_registered
from schemas.registry import ConfluentSchemaRegistry
from schemas.topics import CATALOGUE, catalogue_for

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging: -v for info, -vv for debug (default: warnings).")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """The omnichannel event-streaming backbone.

    Channel connectors publish Avro events to Kafka; stream processors resolve identities and keep a
    real-time customer record and cart sessions in Redis; downstream services read unified topics.

    Services are found from KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL and REDIS_URL when set,
    else from a stack started by `omnichannel stack up`.
    """
    logs.configure(verbose)
    ctx.obj = Settings.from_env()


@cli.group()
def stack() -> None:
    """Start, inspect and stop the local Kafka + Schema Registry + Redis stack."""


@stack.command("up")
@click.option(
    "--brokers",
    type=click.IntRange(1, 9),
    default=None,
    help="Kafka brokers (default 1): more than one starts a local KRaft cluster (each node broker+controller).",
)
@click.option(
    "--redis-cluster",
    is_flag=True,
    help="A local Redis Cluster (3 masters + 3 replicas) instead of one redis-server; REDIS_URL redis+cluster://...",
)
@click.pass_obj
@friendly_errors
def stack_up(settings: Settings, brokers: int | None, redis_cluster: bool) -> None:
    """Start the stack, or bring back what is missing of a recorded one; safe to run at any time.

    Each service comes from its environment variable if set, else Docker if an engine answers,
    else a local process (Kafka and Apicurio Registry from Maven Central, Debian's redis-server).
    On a recorded stack, a service that answers is never stopped or replaced; a local one that died is
    started again on its previous port (when free) with its data: Kafka's log, Redis's append-only
    file, the registry's schema database.

    --brokers 3: three Kafka nodes, one quorum; `topics create` then replicates each topic on three brokers with
    min.insync.replicas=2. --redis-cluster: six redis-server nodes joined by `redis-cli --cluster create`, each
    with its append-only file; the recorded address is redis+cluster://host:port,... Flags only shape a new
    stack: a recorded one is kept as it is (stack down first).
    """
    saved = StackInfo.load(stack_file(settings))
    if saved is not None:
        # Only a shape asked for and not the recorded one is worth a word (no flag: whatever is recorded).
        if (brokers is not None and brokers != max(1, len(saved.kafka.nodes))) or (
            redis_cluster and not saved.redis.nodes
        ):
            redis_shape = "a Redis Cluster" if saved.redis.nodes else "one Redis"
            shape = f"{max(1, len(saved.kafka.nodes))} Kafka broker(s) and {redis_shape}"
            err.print(
                f"A stack is recorded with {shape}; it is kept as it is. "
                "Run `omnichannel stack down` first to start another shape."
            )
        revival = revive_stack(settings, saved, progress=progress)
        if not revival.restarted:
            out.print("The stack is already up:")
        else:
            revival.info.save(stack_file(settings))
            kept = f"; kept {', '.join(revival.kept)} as they were" if revival.kept else ""
            out.print(f"Restarted {', '.join(revival.restarted)}{kept}. Addresses saved in {stack_file(settings)}:")
        _print_stack(revival.info)
        return
    running = resolve_stack(
        settings, progress=progress, keep=True, use_stack_file=False, brokers=brokers or 1, redis_cluster=redis_cluster
    )
    running.info.save(stack_file(settings))
    out.print(f"Stack up. Addresses saved in {stack_file(settings)}:")
    _print_stack(running.info)


@stack.command("fetch")
@click.pass_obj
@friendly_errors
def stack_fetch(settings: Settings) -> None:
    """Download what the local stack needs, ahead of time (a no-op once cached).

    Kafka and Apicurio Registry come from Maven Central through `mvn` into the cache directory
    (OMNICHANNEL_CACHE_DIR); redis-server is installed from Debian's packages when absent and running as
    root. Services given by environment variable need nothing and are skipped.
    """
    if settings.kafka_bootstrap_servers is None or settings.schema_registry_url is None:
        require_java()
    if settings.kafka_bootstrap_servers is None:
        kafka_classpath(settings.cache_dir, progress)
    if settings.schema_registry_url is None:
        registry_jar(settings.cache_dir, progress)
    if settings.redis_url is None:
        require_redis_server(settings.install_missing, progress)
    out.print(f"Local stack dependencies ready (cache: {settings.cache_dir}).")


@stack.command("status")
@click.pass_obj
@friendly_errors
def stack_status(settings: Settings) -> None:
    """Show each service's address, version, how it was resolved, and whether it answers now."""
    saved = StackInfo.load(stack_file(settings))
    if saved is None:
        out.print(f"No stack is recorded in {stack_file(settings)}. Start one with `omnichannel stack up`.")
        sys.exit(3)
    _print_stack(saved)
    nodes_down = any(n.pid is not None and not is_alive(n.pid) for s in saved.services for n in s.nodes)
    if nodes_down or not all(service_answers(s) for s in saved.services):
        sys.exit(2)


@stack.command("down")
@click.pass_obj
@friendly_errors
def stack_down(settings: Settings) -> None:
    """Stop every service `stack up` started (external services are left alone) and forget the stack."""
    saved = StackInfo.load(stack_file(settings))
    if saved is None:
        out.print("No stack is recorded; nothing to stop.")
        return
    for info in saved.services:
        stop_service(info)
    stack_file(settings).unlink(missing_ok=True)
    out.print("Stack down.")


@cli.group()
def topics() -> None:
    """The topic catalogue: every topic the backbone reads or writes."""


@topics.command("list")
def topics_list() -> None:
    """Print the catalogue: name, cleanup policy, value schema and what the key is."""
    for spec in CATALOGUE:
        out.print(f"{spec.name:26} {spec.cleanup.value:8} {spec.value_schema:38} key: {spec.key}", highlight=False)


@topics.command("create")
@click.pass_obj
@friendly_errors
def topics_create(settings: Settings) -> None:
    """Create every catalogue topic that does not exist yet (safe to run again: existing ones are kept).

    Partition count: OMNICHANNEL_PARTITIONS (default 4). Compacted topics hold state; the rest age out.
    Replication factor: min(3, brokers in the cluster); from 3 brokers up also min.insync.replicas=2, so a
    write the producers acknowledge (acks=all) is on two brokers.
    """
    settings = connect(settings)
    assert settings.kafka_bootstrap_servers is not None
    specs = catalogue_for(settings.namespace)
    security = settings.kafka_security.confluent_config()
    for report in ensure_topics(settings.kafka_bootstrap_servers, specs, settings.partitions, security=security):
        where = f"{report.partitions} partitions, replication factor {report.replicas}"
        out.print(f"{report.outcome:8} {report.name} ({where})", highlight=False)


@cli.group()
def schemas() -> None:
    """The Avro event contract: register it, check that changes keep old data readable."""


@schemas.command("register")
@click.pass_obj
@friendly_errors
def schemas_register(settings: Settings) -> None:
    """Register each topic's value schema under <topic>-value (safe to run again: same id).

    Sets BACKWARD_TRANSITIVE on the registry, globally and on every subject, so the registry itself
    refuses (HTTP 409) a later schema that cannot read every earlier version. Run it before starting
    producers of a new release: the collector, the worker and `omnichannel import` only look schema ids
    up, they never register one.
    """
    settings = connect(settings)
    assert settings.schema_registry_url is not None
    registry = ConfluentSchemaRegistry(settings.schema_registry_url, basic_auth=settings.schema_registry_basic_auth)
    for subject, schema_id in register_all(registry, catalogue_for(settings.namespace)).items():
        out.print(f"{subject:32} id {schema_id}  {COMPATIBILITY}", highlight=False)


@schemas.command("check")
@click.option("--offline", is_flag=True, help="Check the released files only, not the registry's versions.")
@click.pass_obj
@friendly_errors
def schemas_check(settings: Settings, offline: bool) -> None:
    """Fail (exit 1) if a schema change breaks BACKWARD_TRANSITIVE compatibility.

    Every released version kept in schemas/released/<subject>/v<N>.avsc, and every version registered in
    the Schema Registry (SCHEMA_REGISTRY_URL, else the stack of `omnichannel stack up`), must stay
    readable with the current schema: new fields need defaults, enum symbols cannot be removed, types
    only widen. Without a registry address or a running stack, only the released files are checked.
    """
    broken = {subject: found for subject, found in check_released().items() if found}
    registry_url = None if offline else _registry_url(settings)
    if registry_url is not None:
        registry = ConfluentSchemaRegistry(registry_url, basic_auth=settings.schema_registry_basic_auth)
        registered = check_registered(registry, catalogue_for(settings.namespace))
        broken |= {subject: found for subject, found in registered.items() if found}
    else:
        err.print("Registry not checked (no SCHEMA_REGISTRY_URL, no running stack, or --offline).")
    if not broken:
        where = "released version" + (f" and every version registered at {registry_url}" if registry_url else "")
        out.print(f"All subjects can read every {where} (BACKWARD_TRANSITIVE).", highlight=False)
        return
    for subject, found in broken.items():
        for incompatibility in found:
            err.print(f"{subject}: {incompatibility}", highlight=False)
    sys.exit(1)


@cli.command()
@click.option("--app-id", help="Consumer group / Faust app id (default: omnichannel-processor in the namespace).")
@click.option(
    "--metrics-port", type=int, default=None, help="Serve Prometheus metrics (end-to-end latency ...) on this port."
)
@click.option(
    "--supervise",
    is_flag=True,
    help="Restart the worker (back-off 1 s to 30 s) when it stops with 75 because Kafka or Redis were down.",
)
@click.pass_context
@friendly_errors
def worker(ctx: click.Context, app_id: str | None, metrics_port: int | None, supervise: bool) -> None:
    """Run a stream-processor worker: identity resolution, carts and customer state in Redis.

    Consumes every channel topic, writes Redis and the unified topics. Start several to share the
    partitions. Stops with exit status 75 (no offsets committed) if Redis or Kafka stay unreachable;
    with --supervise it is restarted after a back-off instead (any other status still ends it).
    Runs on uvloop (FAUST_LOOP=asyncio to use the standard event loop).
    Configuration (see the README): OMNICHANNEL_CART_MERGE (max|sum|keep_customer|replace),
    OMNICHANNEL_CART_IDLE_MINUTES, OMNICHANNEL_BATCH_MAX, and the journey rules (quiet periods, follow-up
    channels, attribution window and model: docs/journeys.md).
    """
    if supervise:
        from omnichannel.supervise import supervise as run_supervised
        from omnichannel.supervise import worker_argv

        verbose = ctx.find_root().params.get("verbose", 0)
        sys.exit(run_supervised(worker_argv(verbose, app_id, metrics_port)))

    # uvloop unless asked otherwise: Faust reads FAUST_LOOP when it is first imported (just below).
    os.environ.setdefault("FAUST_LOOP", "uvloop")
    from omnichannel.gc_tuning import tune_gc
    from streams.app import build_app
    from streams.config import ProcessorConfig

    settings = connect(ctx.obj)
    assert settings.kafka_bootstrap_servers is not None and settings.schema_registry_url is not None
    specs = catalogue_for(settings.namespace)
    ensure_topics(
        settings.kafka_bootstrap_servers,
        specs,
        settings.partitions,
        security=settings.kafka_security.confluent_config(),
    )
    # Look up, never register: a schema the registry has not accepted through `schemas register` stops us here.
    require_registered(
        ConfluentSchemaRegistry(settings.schema_registry_url, basic_auth=settings.schema_registry_basic_auth), specs
    )
    app = build_app(settings, ProcessorConfig.from_env(), app_id)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)
    level = {logging.DEBUG: "debug", logging.INFO: "info"}.get(logging.getLogger().getEffectiveLevel(), "warn")
    quiet = ["--quiet"] if level == "warn" else []  # the start-up banner only when asked for (-v)
    # --without-web: the worker command overrides the app's web_enabled, and a second worker on the machine
    # would otherwise crash binding the same port.
    sys.argv = ["omnichannel worker", *quiet, "worker", "--loglevel", level, "--without-web"]
    tune_gc()
    app.main()


@cli.group()
def identities() -> None:
    """The identity graph: correct a wrong link."""


@identities.command("unlink")
@click.argument("identifier_type", metavar="TYPE")
@click.argument("value")
@click.pass_obj
@friendly_errors
def identities_unlink(settings: Settings, identifier_type: str, value: str) -> None:
    """Split a wrong link: TYPE VALUE (e.g. email_hash 3f2a...) stops linking anyone.

    Every profile it had joined is recomputed from its own events (carts, records), the changes are
    published on customer.carts / customer.state, and an unmerge record (reason 'unlinked') goes to
    identity.links. Later events carrying it do not link through it either. Safe to run twice.
    """
    import asyncio

    from streams.config import ProcessorConfig
    from streams.unlink import unlink

    settings = connect(settings)
    report = asyncio.run(unlink(settings, ProcessorConfig.from_env(), identifier_type, value))
    where = f"from {report.previous_profile}" if report.previous_profile else "(it was not linked to anyone)"
    out.print(f"unlinked {identifier_type}:{value} {where}; request {report.request_id}", highlight=False)


@cli.command()
@click.argument("customer_id")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the worker carried it out.")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait with --wait.")
@click.pass_obj
@friendly_errors
def erase(settings: Settings, customer_id: str, wait: bool, timeout: float) -> None:
    """Right to erasure: erase CUSTOMER_ID's data from Redis and the unified topics.

    Publishes an erasure request that the stream worker carries out in order with the customer's events:
    events, cart, record, identity links and journey state leave Redis, their keys are tombstoned on the
    compacted topics, their identifiers are deny-listed (by digest) against replays, and an audit record
    without personal data goes to erasure.audit. Prints the request id and, with --wait, the outcome.
    Exit status 1 if the worker did not finish within --timeout (the request stays queued).
    """
    import asyncio
    import time as clock

    from connectors.publisher import publisher_for
    from omnichannel.redis_clients import async_redis
    from streams.erasure import erasure_event, read_status, record_status
    from streams.keys import Keys

    settings = connect(settings)
    assert settings.redis_url is not None
    keys = Keys(settings.namespace, single_slot=settings.redis_cluster)
    event = erasure_event(customer_id)
    request_id = str(event["event_id"])

    async def status() -> dict[str, object] | None:
        redis = async_redis(settings.redis_url or "", decode_responses=True)
        try:
            return await read_status(redis, keys, request_id)
        finally:
            await redis.aclose()

    async def accept() -> None:
        redis = async_redis(settings.redis_url or "", decode_responses=True)
        try:
            await record_status(redis, keys, request_id, {"request_id": request_id, "status": "accepted"})
        finally:
            await redis.aclose()

    asyncio.run(accept())
    with publisher_for(settings, 30.0) as publisher:
        publisher.publish([event])
    out.print(f"erasure {request_id} accepted", highlight=False)
    if not wait:
        return
    deadline = clock.monotonic() + timeout
    while clock.monotonic() < deadline:
        found = asyncio.run(status())
        if found is not None and found.get("status") != "accepted":
            out.print(json.dumps(found), highlight=False)
            return
        clock.sleep(0.5)
    err.print(f"erasure {request_id} not carried out within {timeout:.0f} s: is a worker running? It stays queued.")
    sys.exit(1)


@cli.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (scripts).")
@click.option("--app-id", help="The worker's consumer group (default: omnichannel-processor in the namespace).")
@click.pass_obj
@friendly_errors
def rebuild(settings: Settings, yes: bool, app_id: str | None) -> None:
    """Rebuild carts, customer records and the identity graph in Redis from Kafka (after Redis lost them).

    Refuses while a worker of the group runs (stop it first). Restores the erasure deny-list and the operator's
    unlinks from erasure.audit and identity.links, deletes this namespace's derived keys (nothing else of the
    Redis database), replays every channel topic from its earliest offset through the worker's own fold,
    and publishes the rebuilt carts, records and links on their compacted topics. Only what the channel topics
    still hold comes back: see their retention in docs/reliability.md. Exit status 1 if a worker runs, 75 if
    Kafka, the registry or Redis do not answer; running it again is safe.
    """
    import asyncio

    from omnichannel.gc_tuning import tune_gc
    from streams.config import ProcessorConfig
    from streams.rebuild import Progress
    from streams.rebuild import rebuild as run_rebuild

    settings = connect(settings)
    if not yes:
        click.confirm(
            f"Delete every derived Redis key of namespace {settings.namespace or '(none)'!r} at {settings.redis_url} "
            "and rebuild them from Kafka?",
            abort=True,
            err=True,
        )

    def show(p: Progress) -> None:
        pending = [f"{q.topic}[{q.partition}] {q.read:,}/{q.total:,}" for q in p.partitions if not q.done]
        share = 100 * p.read / max(p.total, 1)
        rest = f"; in progress: {', '.join(pending)}" if pending else ""
        progress(f"{p.read:,}/{p.total:,} records ({share:.0f}%), {p.rate:,.0f}/s{rest}")

    tune_gc()  # the replay folds as the worker does, with the worker's collector settings
    report = asyncio.run(run_rebuild(settings, ProcessorConfig.from_env(), app_id, progress, show))
    for topic, count in sorted(report.by_topic.items()):
        out.print(f"  {topic}: {count:,} records", highlight=False)
    rate = report.records / max(report.replay_s, 1e-6)
    out.print(
        f"rebuilt: {report.records:,} records replayed in {report.replay_s:.1f} s ({rate:,.0f}/s; "
        f"{report.total_s:.1f} s in all); {report.keys_wiped:,} keys wiped; {report.denied_restored} deny-listed "
        f"identifier(s) from {report.erasures} erasure(s), {report.unlinked_restored} unlink(s) restored; "
        f"{report.republished:,} carts/records/links published again ({report.versions_fenced:,} cart versions "
        f"kept as last published); {report.dead_letters:,} record(s) refused again (already dead-lettered)",
        highlight=False,
    )
    if report.trimmed:
        gone = ", ".join(f"{t} before offset {o:,}" for t, o in sorted(report.trimmed.items()))
        err.print(
            f"warning: the channel topics no longer hold their oldest records ({gone}): retention deleted them, so "
            "the events in them are not in the rebuilt state. Deployments that need whole rebuilds keep the "
            "channel topics longer: docs/reliability.md, 'Redis lost'",
            highlight=False,
        )
    if report.erasures_without_digests:
        err.print(
            f"warning: {report.erasures_without_digests} erasure(s) were recorded before the audit carried their "
            "deny-list (ErasureAudit v1): the replay carried each request out again where it met it, but events "
            "of the subject it read after the request are back. Erase those customers again (`omnichannel erase`)",
            highlight=False,
        )


# The ops lag monitor's commands live with the monitor (omnichannel/lag/cli.py).
cli.add_command(lag)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, help="TCP port.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes serving the port; each has its own Kafka producer and Redis connections.",
)
@click.pass_context
@friendly_errors
def serve(ctx: click.Context, host: str, port: int, workers: int) -> None:
    """Serve the HTTP API: the collector (POST /v1/events, webhooks), the read API and live carts.

    OpenAPI at /docs; GET /healthz (liveness), GET /readyz (Kafka, registry, Redis). Keys:
    OMNICHANNEL_CHANNEL_KEYS (publish), OMNICHANNEL_READ_KEYS (read), OMNICHANNEL_ADMIN_KEYS, and
    OMNICHANNEL_HASH_KEY; or OMNICHANNEL_DEV=1 alone for public development keys and the demo page at /demo/.
    Slow clients: a body must arrive within OMNICHANNEL_BODY_TIMEOUT_S and the answer start within
    OMNICHANNEL_REQUEST_TIMEOUT_S (408), at most OMNICHANNEL_MAX_PENDING_BODIES bodies in flight (503).
    With --workers N, N processes share the port (one is restarted if it dies); the limits apply per process.
    """
    from omnichannel.serve import run_server

    verbosity = int(ctx.find_root().params.get("verbose") or 0)
    run_server(connect(ctx.obj), host, port, workers=workers, verbosity=verbosity)


@cli.command()
@click.option("--scripted", is_flag=True, help="Play the journey, print the timeline and exit (no page).")
@click.option("--port", type=int, default=None, help="Port of the demo's HTTP API (default: a free one).")
@click.pass_obj
@friendly_errors
def demo(settings: Settings, scripted: bool, port: int | None) -> None:
    """The mobile-to-tablet basket, end to end on this machine.

    Starts (or reuses) Kafka, the Schema Registry and Redis, a stream-processor worker and the HTTP API
    with development keys; a shopper fills a basket on the phone anonymously, logs in on the tablet and
    carries on. Prints each step's latency; then serves the page at /demo/ until Ctrl-C.
    """
    from omnichannel.demo import run_demo

    run_demo(settings, progress, scripted, port)


def _registry_url(settings: Settings) -> str | None:
    """SCHEMA_REGISTRY_URL, else the registry of a running `stack up` stack; never starts a service."""
    if settings.schema_registry_url:
        return settings.schema_registry_url
    saved = StackInfo.load(stack_file(settings))
    if saved is not None and service_answers(saved.registry):
        return saved.registry.address
    return None


def _print_stack(info: StackInfo) -> None:
    for service in info.services:
        state = "answers" if service_answers(service) else "DOES NOT ANSWER"
        out.print(f"  {service.describe()} [{state}]", highlight=False, soft_wrap=True)
        for node in service.nodes:
            running = "running" if node.pid is None or is_alive(node.pid) else "NOT RUNNING"
            role = f" {node.role}" if node.role else ""
            out.print(f"    node {node.address}{role} pid={node.pid}: {running}", highlight=False, soft_wrap=True)


def _register_connectors() -> None:
    # Imported here, after this module's commands exist: connectors' commands are added to the same group.
    from connectors.cli import import_files

    cli.add_command(import_files)


_register_connectors()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="omnichannel")


if __name__ == "__main__":
    main()
