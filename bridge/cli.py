"""The `bridge` command: a thin shell over the library. Each command parses its options,
calls one library function and reports; nothing else lives here."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from bridge import __version__, install, logfmt, topology
from bridge import config as config_mod
from bridge.broker import Endpoints
from bridge.errors import BridgeError, ConfigError, DatabaseError, one_line
from bridge.redaction import redact

if TYPE_CHECKING:
    from bridge.health import BrokerState

pass_config = click.make_pass_decorator(dict, ensure=True)
log = logging.getLogger(__name__)


def _load(ctx: click.Context, require_tables: bool = True) -> config_mod.Config:
    """The configuration; `require_tables=False` for commands that do not sync (they name
    their tables with --table, or need none), so they work before 'tables' is written."""
    cfg: config_mod.Config = config_mod.load(
        ctx.obj.get("config_path"), require_tables=require_tables
    )
    return cfg


def _table_names(cfg: config_mod.Config, tables: tuple[str, ...]) -> list[str]:
    names = list(tables) or [t.name for t in cfg.tables]
    if not names:
        raise ConfigError(
            "no table given: name one with --table (repeatable), or list the synced tables "
            "in 'tables'"
        )
    return names


def _peers(cfg: config_mod.Config, peers: tuple[str, ...]) -> dict[str, str]:
    """The other sites' database URLs: 'peers' in the config, then each --peer."""
    others = dict(cfg.peers)
    for p in peers:
        name, sep, url = p.partition("=")
        if not sep:
            raise click.BadParameter(f"expected SITE=DATABASE_URL, got {p!r}")
        others[name.strip().upper()] = url.strip()
    return others


def _peer_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--peer",
        "peers",
        multiple=True,
        metavar="SITE=DATABASE_URL",
        help="Another site's database (repeatable); adds to 'peers' in the config.",
    )(f)


def _run(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except BridgeError as exc:
        # a database error quotes psycopg, whose messages span lines; other messages may
        # end with an example on purpose (a missing configuration key)
        text = one_line(exc) if isinstance(exc, DatabaseError) else str(exc)
        raise click.ClickException(f"{type(exc).__name__}: {text}") from None


def _json_logs(ctx: click.Context | None = None) -> bool:
    ctx = ctx or click.get_current_context(silent=True)
    return ctx is not None and (ctx.find_root().obj or {}).get("log_format") == "json"


def _say(line: str) -> None:
    """A note for the operator on stderr (stdout is the command's result): a log record in
    the JSON log format, so that every line of stderr is one JSON object there."""
    if _json_logs():
        log.info("%s", line)
    else:
        click.echo(line, err=True)


class _Bridge(click.Group):
    """The command group: an error is shown with its passwords masked and, in the JSON log
    format, as one log record; an unexpected exception is logged (traceback masked too)
    instead of printed raw."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except click.ClickException as exc:
            text = redact(exc.format_message())
            if not _json_logs(ctx):
                if text == exc.format_message():
                    raise
                raise click.ClickException(text) from None
            log.error("%s", text)
            raise click.exceptions.Exit(exc.exit_code) from None
        except Exception as exc:
            log.exception("bridge stopped on an unexpected error: %s", one_line(exc))
            raise click.exceptions.Exit(1) from None


@click.group(cls=_Bridge, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    envvar="BRIDGE_CONFIG",
    type=click.Path(),
    help="Site configuration file (default: bridge.toml). Every key can also be "
    "set as BRIDGE_<KEY> in the environment or in .env.",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option(
    "--log-format",
    envvar="BRIDGE_LOG_FORMAT",
    default="text",
    show_default=True,
    type=click.Choice(logfmt.FORMATS, case_sensitive=False),
    help="Log lines on stderr as text, or as one JSON object per line for a log shipper "
    "(fields in docs/operations.md, Logs). Env: BRIDGE_LOG_FORMAT.",
)
@click.version_option(__version__, prog_name="bridge")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, log_level: str, log_format: str) -> None:
    """Keep the business tables of independent sites in sync through RabbitMQ.

    \b
    Typical setup of one site:
      bridge init                          create the bridge_* tables
      bridge install-triggers -t orders    capture changes of `orders` (add --sql to review)
      bridge topology apply                declare exchanges and queues (once, as admin)
      bridge run                           publish local changes, apply remote ones
      bridge verify                        compare the synced tables of all sites
      bridge uninit --remove-triggers      remove bridge from the database again
    """
    logfmt.setup(log_level, log_format.lower())
    ctx.obj = {"config_path": config_path, "log_format": log_format.lower()}


def _sql_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--sql",
        "print_sql",
        is_flag=True,
        help="Print the SQL that would run, for review; change nothing.",
    )(f)


def _tables_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--table",
        "-t",
        "tables",
        multiple=True,
        help="Business table (repeatable), as in 'tables': table or schema.table. "
        "Default: every table in 'tables'.",
    )(f)


def _sink(cfg: config_mod.Config, print_sql: bool) -> tuple[Any, Any, install.Sink]:
    from bridge.dialects import for_url

    dialect = for_url(cfg.database_url)
    conn = dialect.connect(cfg.database_url)
    sink: install.Sink = (
        install.PrintSink(dialect, sys.stdout) if print_sql else install.ConnectionSink(conn)
    )
    return dialect, conn, sink


@main.command()
@_sql_option
@click.pass_context
def init(ctx: click.Context, print_sql: bool) -> None:
    """Create bridge's tables (bridge_outbox, bridge_inbox, ...) in the site database."""

    def go() -> None:
        cfg = _load(ctx, require_tables=False)
        dialect, conn, sink = _sink(cfg, print_sql)
        with conn:
            n = install.init(dialect, conn, cfg.site, sink, execute=not print_sql)
        if not print_sql:
            _say(f"site {cfg.site}: bridge tables ready ({n} statements)")

    _run(go)


@main.command("install-triggers")
@_tables_option
@_sql_option
@click.option(
    "--ddl",
    "ddl_path",
    type=click.Path(dir_okay=False),
    help="With --sql: describe the tables from this file of CREATE TABLE statements "
    "instead of the database, and connect to nothing (a DBA's review before bridge "
    "ever reaches the server).",
)
@click.option(
    "--dialect",
    "dialect_name",
    help="With --ddl: the database's dialect (postgresql, mariadb, mssql, oracle); "
    "default: that of database_url.",
)
@click.option(
    "--where",
    "where",
    metavar="CONDITION",
    help="Capture only the rows of the --table (one) for which this condition holds, "
    "written in plain SQL over the table's columns, e.g. \"status <> 'draft'\"; a row "
    "that stops passing it is deleted at the other sites. Without --where the table keeps "
    "the filter it was installed with; --where '' removes it. PostgreSQL and MariaDB; "
    'see "Row filters" in docs/dba.md.',
)
@click.pass_context
def install_triggers(
    ctx: click.Context,
    tables: tuple[str, ...],
    print_sql: bool,
    ddl_path: str | None,
    dialect_name: str | None,
    where: str | None,
) -> None:
    """Create the capture triggers of business tables, all in one transaction (where the
    database's DDL is transactional).

    Re-running is safe: triggers are replaced with ones generated for the current columns
    (and the row filter they were installed with, unless --where gives another).
    --table works before the table is in 'tables'; `bridge run` syncs only the tables there.
    """

    def offline() -> None:
        from bridge import offline as offline_mod
        from bridge.dialects import by_name, for_url

        if not print_sql:
            raise ConfigError("--ddl renders the script without a database: add --sql")
        if not tables:
            raise ConfigError("--ddl needs the tables to render: name them with --table")
        if dialect_name:
            dialect = by_name(dialect_name)
        else:
            dialect = for_url(_load(ctx, require_tables=False).database_url)
        install.offline_triggers(
            dialect,
            offline_mod.read_ddl(ddl_path or ""),
            list(tables),
            install.PrintSink(dialect, sys.stdout),
            where=where,
        )

    def refuse() -> None:
        raise ConfigError("--dialect names the dialect of a --ddl file: give --ddl too")

    if ddl_path is not None or dialect_name is not None:
        _run(offline if ddl_path is not None else refuse)
        return

    def go() -> None:
        cfg = _load(ctx, require_tables=False)
        names = _table_names(cfg, tables)
        dialect, conn, sink = _sink(cfg, print_sql)
        with conn:
            infos = install.install_triggers(
                dialect,
                conn,
                names,
                sink,
                not print_sql,
                warn=lambda why: _say(f"site {cfg.site}: {why}"),
                where=where,
            )
            filters = (
                {i.table.name: install.installed_filter(dialect, conn, i.table.name) for i in infos}
                if not print_sql
                else {}
            )
        if not print_sql:
            for info in infos:
                kept = filters.get(info.table.name)
                _say(
                    f"site {cfg.site}: capturing {info.table.name} "
                    f"({len(info.columns)} columns, key {[c.name for c in info.pk]}"
                    + (f", rows where {kept}" if kept else "")
                    + ")"
                )
        for name in names if not print_sql else ():
            if cfg.table(name) is None:
                _say(
                    f"site {cfg.site}: {name} is not in 'tables': its changes are captured "
                    "and published, but a site applies changes only to the tables in its "
                    "'tables' (it dead-letters the others). Add it at every site, e.g. in "
                    f'bridge.toml: [tables] {name} = "lww" (or BRIDGE_TABLES), then restart '
                    "bridge run."
                )

    _run(go)


@main.command("uninstall-triggers")
@_tables_option
@_sql_option
@click.pass_context
def uninstall_triggers(ctx: click.Context, tables: tuple[str, ...], print_sql: bool) -> None:
    """Remove the capture triggers of business tables (the outbox keeps what it holds)."""

    def go() -> None:
        cfg = _load(ctx, require_tables=False)
        names = _table_names(cfg, tables)
        dialect, conn, sink = _sink(cfg, print_sql)
        with conn:
            install.uninstall_triggers(dialect, conn, names, sink, not print_sql)
        if not print_sql:
            _say(f"site {cfg.site}: capture removed from {', '.join(names)}")

    _run(go)


@main.command()
@_sql_option
@click.option(
    "--remove-triggers",
    is_flag=True,
    help="Also remove the capture triggers still installed on business tables, in the "
    "same transaction. Without it, uninit refuses while any are installed.",
)
@click.option(
    "--discard-unpublished",
    is_flag=True,
    help="Remove bridge even though bridge_outbox holds changes not yet published: the "
    "other sites never get them. Without it, uninit refuses then.",
)
@click.pass_context
def uninit(
    ctx: click.Context, print_sql: bool, remove_triggers: bool, discard_unpublished: bool
) -> None:
    """Remove bridge's tables (bridge_outbox, bridge_inbox, ...) and capture functions from
    the site database, in one transaction: the inverse of init. Business tables and their
    rows stay. Refuses while capture triggers are installed, changes are unpublished or
    `bridge run` is running, saying what to do."""
    from bridge import uninit as uninit_mod

    def go() -> None:
        cfg = _load(ctx, require_tables=False)
        dialect, conn, sink = _sink(cfg, print_sql)
        with conn:
            report = uninit_mod.uninit(
                dialect,
                conn,
                cfg.site,
                sink,
                execute=not print_sql,
                remove_triggers=remove_triggers,
                discard_unpublished=discard_unpublished,
            )
        would = "would be " if print_sql else ""
        if report.unpublished_discarded:
            _say(
                f"warning: site {cfg.site}: {report.unpublished_discarded} unpublished "
                f"change(s) {would}discarded: the other sites never get them"
            )
        if report.triggers_removed:
            _say(
                f"site {cfg.site}: capture {would}removed from {', '.join(report.triggers_removed)}"
            )
        if not print_sql:
            _say(
                f"site {cfg.site}: bridge removed from the database ({report.statements} "
                "statements); `bridge init` installs it again"
            )

    _run(go)


@main.group("topology")
def topology_group() -> None:
    """The RabbitMQ exchanges and queues bridge uses."""


@topology_group.command("apply")
@click.option(
    "--amqp-url",
    help="Broker URL with the right to declare (an administrator). "
    "Default: amqp_url from the configuration.",
)
@click.pass_context
def topology_apply(ctx: click.Context, amqp_url: str | None) -> None:
    """Declare bridge.events, one quorum queue per site, the archive queue and the
    dead-letter queues. Idempotent."""

    def go() -> None:
        cfg = _load(ctx, require_tables=False)
        urls = [u for u in (amqp_url or cfg.amqp_url).split(",") if u.strip()]
        endpoints = Endpoints.of(cfg, urls)
        conn = endpoints.blocking()
        try:
            declared = topology.apply(conn.channel(), cfg.sites, cfg.archive_site)
        finally:
            conn.close()
        _say(f"topology ready on {redact(urls[0])}: {', '.join(declared)}")

    _run(go)


@main.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run beside the application: publish local changes, apply the other sites' changes,
    archive everything (at the archive site). SIGTERM or Ctrl-C finishes the batch in hand
    and exits 0."""
    from bridge.run import Bridge

    def go() -> int:
        bridge = Bridge(_load(ctx))
        bridge.run_forever()
        return 1 if bridge.failed else 0

    sys.exit(_run(go))


@main.command()
@click.option(
    "--event",
    "event_id",
    metavar="ID",
    help="What became of this event (emitted here) at each site, from their acks: "
    "applied, duplicate, superseded, conflict, failed (with the reason), waiting, pending.",
)
@click.option(
    "--max-backlog-age",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Unhealthy when the oldest unpublished outbox row is older than this "
    "(default: status_max_backlog_age, 300).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (stable keys).")
@click.pass_context
def status(
    ctx: click.Context, event_id: str | None, max_backlog_age: float | None, as_json: bool
) -> None:
    """Outbox backlog and the age of its oldest rows, applied and archived counts,
    conflicts, how much was published again, failures acked lately, trigger drift, the
    broker's view. Exits 0 when healthy, 1 when not (the reasons, each with what to do,
    at the end: UNHEALTHY lines) or when the status cannot be read at all."""
    from bridge import health as health_mod
    from bridge import status as status_mod
    from bridge import status_report
    from bridge.dialects import for_url

    site: list[str] = []  # known once the configuration is read

    def go() -> bool:
        cfg = _load(ctx, require_tables=False)
        site.append(cfg.site)
        dialect = for_url(cfg.database_url)
        with dialect.connect(cfg.database_url) as conn:
            install.require_initialised(dialect, conn, cfg.site)
            if event_id is not None:
                acks = status_mod.event_acks(cfg, dialect, conn, event_id)
                if as_json:
                    click.echo(json.dumps(status_report.event_report(event_id, acks), indent=2))
                    return True
                click.echo(f"event {event_id}")
                for d in acks:
                    when = f" at {d.acked_at:%Y-%m-%d %H:%M:%S}" if d.acked_at else ""
                    why = f": {d.reason}" if d.reason else ""
                    click.echo(f"  {d.site:12} {d.status}{when}{why}")
                return True
            state = status_mod.read(dialect, conn)
            problems = status_mod.problems(dialect, conn)
            health = health_mod.assess(cfg, dialect, conn, max_backlog_age, state)
            tables = [
                status_report.TableState(
                    t.name,
                    t.policy,
                    health.drift.get(t.name, status_report.UP_TO_DATE),
                    install.installed_filter(dialect, conn, t.name),
                )
                for t in cfg.tables
            ]
        if as_json:
            out = status_report.report(cfg.site, state, problems, tables, health)
            click.echo(json.dumps(out, indent=2))
            return health.healthy
        click.echo(f"site {cfg.site}")
        for name, value in state.lines():
            click.echo(f"  {name:18} {value}")
        click.echo(f"  {'acked_failures':18} {problems.line()}")
        for warning in state.warnings():
            click.echo(f"  WARNING: {warning}")
        for t in tables:
            click.echo(
                f"  table {t.name:10} policy={t.policy} {t.trigger}"
                + (f"; captures rows where {t.filter}" if t.filter else "")
            )
        click.echo(f"  {'broker':18} {_broker_line(health.broker)}")
        for reason in health.reasons:
            click.echo(f"UNHEALTHY: {reason}")
        return health.healthy

    try:
        healthy = _run(go)
    except click.ClickException as exc:
        if as_json:  # scripts always get JSON; the error line goes to stderr as usual
            report = status_report.error_report(site[0] if site else None, exc.format_message())
            click.echo(json.dumps(report, indent=2))
        raise
    sys.exit(0 if healthy else 1)


def _broker_line(broker: BrokerState) -> str:
    if not broker.reachable:
        return "unreachable"
    queues = [(broker.queue, broker.queue_messages), *broker.dead_letter_queues.items()]
    return ", ".join(f"{q} {'?' if n is None else n} message(s)" for q, n in queues)


@main.command()
@_peer_option
@_tables_option
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.option(
    "--chunk-rows",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows per chunk compared at once (cut from this site's primary key).",
)
@click.pass_context
def verify(
    ctx: click.Context,
    peers: tuple[str, ...],
    tables: tuple[str, ...],
    as_json: bool,
    chunk_rows: int,
) -> None:
    """Compare the synced tables of this site and its peers, chunk by chunk in the
    databases, down to the keys whose rows differ. Exits 1 when any row differs."""
    import json

    from bridge import verify as verify_mod
    from bridge import verify_report

    def go() -> None:
        cfg = _load(ctx)
        others = _peers(cfg, peers)
        if not others:
            raise click.UsageError("no peers to compare with: give --peer SITE=URL or 'peers'")
        progress = verify_report.Throttled(_say)
        result = verify_mod.compare(
            cfg, others, list(tables) or None, chunk_rows=chunk_rows, progress=progress
        )
        if as_json:
            click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
            if not result.ok:
                ctx.exit(1)
            return
        for line in verify_report.lines(result):
            click.echo(line)
        if not result.ok:
            raise click.ClickException(
                f"sites differ on table(s): {', '.join(result.differing_tables())}"
            )
        click.echo(
            f"OK: {len(result.sites)} sites hold the same rows in {len(result.rows)} table(s)"
        )

    _run(go)


@main.command()
@click.option(
    "--from",
    "source",
    required=True,
    metavar="SITE",
    help="The site to copy from; its database URL comes from 'peers' or --peer.",
)
@_peer_option
@click.option(
    "--chunk-rows",
    default=5000,
    show_default=True,
    type=click.IntRange(1),
    help="Rows copied per transaction (and per progress record).",
)
@click.option(
    "--wait",
    "drain_timeout",
    default=600.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds to wait for the source to apply what its queue held (a drain marker).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Copy into synced tables that hold rows (rows of the same key are overwritten "
    "by the source's; others stay), or copy again after a finished bootstrap.",
)
@click.pass_context
def bootstrap(
    ctx: click.Context,
    source: str,
    peers: tuple[str, ...],
    chunk_rows: int,
    drain_timeout: float,
    force: bool,
) -> None:
    """Fill this new, empty site from SITE: run with the new site's configuration, after
    adding it to 'sites', `bridge topology apply` (as admin), `bridge init` and
    `bridge install-triggers` here. Resumes where a killed run stopped. Then start
    `bridge run` here."""
    from bridge import bootstrap as bootstrap_mod
    from bridge.meter import Meter

    def go() -> None:
        cfg = _load(ctx)
        name = source.strip().upper()
        url = _peers(cfg, peers).get(name)
        if url is None:
            raise click.UsageError(f"no database URL for {name}: give --peer {name}=URL or 'peers'")
        report = bootstrap_mod.bootstrap(
            cfg,
            name,
            url,
            chunk_rows=chunk_rows,
            force=force,
            drain_timeout=drain_timeout,
            say=_say,
            meter=lambda label, total: Meter(label, total),
        )
        for line in bootstrap_mod.describe(report):
            click.echo(line)

    _run(go)


@main.command()
@click.option(
    "--older-than",
    default=None,
    metavar="DAYS",
    help="Retention in whole days, 1 or more, as 90 or 90d (default: retention_days, 90).",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.pass_context
def cleanup(ctx: click.Context, older_than: str | None, dry_run: bool) -> None:
    """Purge archive entries, inbox entries and tombstones older than the retention, in one
    transaction (also scheduled inside `bridge run`)."""
    from bridge import cleanup as cleanup_mod
    from bridge.dialects import for_url

    def go() -> None:
        try:
            days = None if older_than is None else cleanup_mod.parse_days(older_than)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--older-than") from None
        cfg = _load(ctx, require_tables=False)
        counts = cleanup_mod.cleanup(cfg, for_url(cfg.database_url), days, dry_run)
        verb = "would be deleted" if dry_run else "deleted"
        for what, n in counts.items():
            click.echo(f"{what:16} {n:>10} {verb}")
        total = sum(counts.values())
        retention = days if days is not None else cfg.retention_days
        _say(
            f"site {cfg.site}: {total} row(s) older than {retention} days {verb}"
            + (" (dry run: nothing was deleted)" if dry_run else "")
        )

    _run(go)


@main.command()
@click.option("--to", "target", required=True, metavar="SITE", help="The site to send to.")
@click.option(
    "--since",
    default=None,
    metavar="TIME",
    help="Events made at or after (ISO-8601 or 6h, 3d ago).",
)
@click.option("--until", default=None, metavar="TIME", help="Events made before (same forms).")
@click.option(
    "--origin",
    "origins",
    multiple=True,
    metavar="SITE",
    help="Only events of this site (repeatable).",
)
@click.option(
    "--table",
    "tables",
    multiple=True,
    metavar="TABLE",
    help="Only events of this table (repeatable).",
)
@click.option(
    "--include-own",
    is_flag=True,
    help="Send the target its own events too (they come back as echoes: they change nothing).",
)
@click.option("--dry-run", is_flag=True, help="Count what would be sent, per origin and type.")
@click.pass_context
def replay(
    ctx: click.Context,
    target: str,
    since: str | None,
    until: str | None,
    origins: tuple[str, ...],
    tables: tuple[str, ...],
    include_own: bool,
    dry_run: bool,
) -> None:
    """Send archived events again to one site's queue (run at the archive site). The site
    applies each at most once, and older changes lose to newer row versions as always."""
    from bridge import replay as replay_mod

    def go() -> None:
        cfg = _load(ctx)
        selection = replay_mod.Selection(
            target=target.strip().upper(),
            since=replay_mod.parse_time(since) if since else None,
            until=replay_mod.parse_time(until) if until else None,
            origins=tuple(o.strip().upper() for o in origins),
            tables=tables,
            include_own=include_own,
        )
        if dry_run:
            counts = replay_mod.count(cfg, selection)
            for (origin, type_), n in sorted(counts.items()):
                click.echo(f"{origin:10} {type_:30} {n:>10,}")
            click.echo(f"{sum(counts.values()):,} event(s) would go to {selection.target}")
            return
        report = replay_mod.replay(cfg, selection, progress=True)
        for origin, n in sorted(report.per_origin.items()):
            click.echo(f"{origin:10} {n:>10,} event(s)")
        click.echo(
            f"sent {report.events:,} event(s) in {report.messages:,} message(s) to "
            f"{selection.target}"
        )

    _run(go)


@main.command()
@click.option(
    "--site",
    "targets",
    multiple=True,
    metavar="SITE",
    help="Repair only this site (repeatable; default: every site that differs).",
)
@click.option(
    "--table", "tables", multiple=True, metavar="TABLE", help="Only this table (repeatable)."
)
@_peer_option
@click.option("--dry-run", is_flag=True, help="Say what would be sent where; send nothing.")
@click.option(
    "--wait",
    default=120.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds to wait for the sites to apply the repair events, then verify again "
    "(0: do not wait).",
)
@click.pass_context
def repair(
    ctx: click.Context,
    targets: tuple[str, ...],
    tables: tuple[str, ...],
    peers: tuple[str, ...],
    dry_run: bool,
    wait: float,
) -> None:
    """Bring the rows `bridge verify` finds different back to their winning version,
    through the sites' queues (run at the archive site, with every site in 'peers').
    Exits 1 if rows still differ at the end."""
    from bridge import repair as repair_mod

    def go() -> None:
        cfg = _load(ctx)
        report = repair_mod.run(
            cfg,
            _peers(cfg, peers),
            sites=[t.strip().upper() for t in targets],
            tables=list(tables) or None,
            dry_run=dry_run,
            wait=wait,
        )
        if report.before.ok:
            click.echo(f"nothing to repair: {len(report.before.sites)} sites hold the same rows")
            return
        for f in report.plan.fixes:
            click.echo(
                f"{f.site:10} {f.event.table} {json.dumps(f.event.key)} <- {f.event.op} "
                f"of {f.event.timestamp_text} {f.event.origin} (from {f.source})"
            )
        for table, key, why in report.plan.busy:
            click.echo(f"{'-':10} {table} {json.dumps(key)} skipped: {why}; run repair again")
        per_site = ", ".join(f"{n} to {s}" for s, n in sorted(report.plan.per_site().items()))
        if dry_run:
            click.echo(f"would send {len(report.plan.fixes)} repair event(s): {per_site or 'none'}")
            return
        click.echo(f"sent {report.sent} repair event(s): {per_site or 'none'}")
        if report.unapplied:
            raise click.ClickException(
                f"{len(report.unapplied)} repair event(s) not applied within {wait:.0f} s "
                "(is bridge run up at those sites?); run bridge verify later"
            )
        if report.after is not None and not report.after.ok:
            raise click.ClickException(
                f"rows still differ in {', '.join(report.after.differing_tables())}: they "
                "changed meanwhile, or a repair event lost to a newer change; run repair again"
            )
        if report.after is not None:
            click.echo("verify: every site now holds the same rows")
        elif report.plan.busy:
            raise click.ClickException(f"{len(report.plan.busy)} key(s) left: run repair again")

    _run(go)


@main.group("dlq")
@click.option(
    "--archive",
    is_flag=True,
    help="The archive's dead-letter queue (SITE_<ARCHIVE>_HISTO.dlq), at the archive site.",
)
@click.pass_context
def dlq_group(ctx: click.Context, archive: bool) -> None:
    """This site's dead-letter queue (SITE_<SITE>.dlq): messages that could not be applied;
    with --archive, the archive's (messages that could not be archived).

    \b
      bridge dlq list [--json]            what is there and why, leaving it in place
      bridge dlq retry --id ID | --all    apply (archive) again; failures go back with the reason
      bridge dlq drop --id ID | --all     delete (asks first unless --yes)
    """
    ctx.obj["dlq_archive"] = archive


def _selection_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--all", "all_", is_flag=True, help="Every message of the queue.")(f)
    return click.option(
        "--id",
        "ids",
        multiple=True,
        metavar="EVENT_ID",
        help="Event id (message_id) as `bridge dlq list` shows it (repeatable).",
    )(f)


def _selection(ids: tuple[str, ...], all_: bool) -> list[str] | None:
    if bool(ids) == all_:
        raise click.UsageError("give either --id EVENT_ID (repeatable) or --all")
    return None if all_ else list(ids)


@dlq_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for scripts.")
@click.pass_context
def dlq_list(ctx: click.Context, as_json: bool) -> None:
    """Show every dead-lettered message (id, type, origin, when, reason) without
    removing any."""
    import json

    from bridge import dlq

    def go() -> None:
        cfg = _load(ctx, require_tables=False)
        archive = ctx.obj["dlq_archive"]
        letters = dlq.list_dead_letters(cfg, archive=archive)
        if as_json:
            click.echo(json.dumps([d.to_dict() for d in letters], indent=2))
            return
        for d in letters:
            when = d.dead_lettered_at.isoformat() if d.dead_lettered_at else "-"
            click.echo(f"{d.id}  {d.type or '-'}  from {d.origin or '-'}  at {when}")
            click.echo(f"    reason: {d.reason}")
        _say(f"{len(letters)} message(s) in {dlq.dead_letter_queue(cfg, archive)}")

    _run(go)


@dlq_group.command("retry")
@_selection_options
@click.pass_context
def dlq_retry(ctx: click.Context, ids: tuple[str, ...], all_: bool) -> None:
    """Apply dead-lettered messages again at this site, through the same checks as
    `bridge run` (the origin must be the broker user RabbitMQ validated). Applied ones are
    removed; ones that fail again go back with the new reason. Exits 1 if any failed or
    an id was not found."""
    from bridge import dlq

    def go() -> None:
        cfg = _load(ctx)
        archive = ctx.obj["dlq_archive"]
        report = dlq.retry(cfg, _selection(ids, all_), archive=archive)
        for r in report.results:
            detail = f": {r.detail}" if r.detail else ""
            back = f" (back in {dlq.dead_letter_queue(cfg, archive)})" if not r.removed else ""
            click.echo(f"{r.status:9} {r.id}{detail}{back}")
        for i in report.unknown:
            click.echo(f"not found {i}")
        summary = (
            f"{len(report.results)} retried, {len(report.failed)} failed again, "
            f"{len(report.unknown)} id(s) not found"
        )
        if report.failed or report.unknown:
            raise click.ClickException(summary)
        _say(summary)

    _run(go)


@dlq_group.command("drop")
@_selection_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def dlq_drop(ctx: click.Context, ids: tuple[str, ...], all_: bool, yes: bool) -> None:
    """Delete dead-lettered messages for good. Exits 1 if an id was not found."""
    from bridge import dlq

    def go() -> None:
        cfg = _load(ctx, require_tables=False)
        chosen = _selection(ids, all_)
        archive = ctx.obj["dlq_archive"]
        queue = dlq.dead_letter_queue(cfg, archive)
        if not yes:
            present = [d.id for d in dlq.list_dead_letters(cfg, archive=archive)]
            count = len(present) if chosen is None else sum(i in chosen for i in present)
            if count:
                click.confirm(f"delete {count} message(s) from {queue} for good?", abort=True)
        report = dlq.drop(cfg, chosen, archive=archive)
        for i in report.unknown:
            click.echo(f"not found {i}")
        click.echo(f"dropped {len(report.dropped)} message(s) from {queue}")
        if report.unknown:
            raise click.ClickException(f"{len(report.unknown)} id(s) not found in {queue}")

    _run(go)


if __name__ == "__main__":
    main()
