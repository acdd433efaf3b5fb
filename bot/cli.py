"""The ``newsbot`` command: parse, load the config, run one command. Thin on purpose.

Exit status: 0 all well, 1 some deliveries failed, 2 a mistake in the config, a template or
the command line (one message, no traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

from bot import __version__
from bot.config import (
    Config,
    XChannelConfig,
    config_path,
    load_config,
    parse_duration,
    retention_warnings,
)
from bot.errors import BotError, ConfigError, DeliveryError, SourceError
from bot.logs import setup_logging
from bot.model import ActionState, DeliveryState

if TYPE_CHECKING:
    from bot.ledger import Ledger, SourceRecord, StoredArticle
    from bot.revisions import Revision

log = logging.getLogger("newsbot")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"newsbot: error: {message}\n")


def _common_options(*, top: bool) -> _Parser:
    # The options work before and after the command; below the top level their defaults are
    # suppressed so that `newsbot --config x once` keeps the value given before `once`.
    common = _Parser(add_help=False)
    default = None if top else argparse.SUPPRESS
    common.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help="the config file (default: $NEWSBOT_CONFIG, else config/newsbot.yaml)",
    )
    common.add_argument(
        "--log-format", choices=["text", "json"], default="text" if top else argparse.SUPPRESS
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="debug logging",
    )
    return common


def _parser() -> argparse.ArgumentParser:
    common = _common_options(top=False)
    parser = _Parser(
        prog="newsbot",
        description=(
            "Posts a newsroom's new articles to Telegram, X, Threads, Facebook Pages, "
            "Bluesky and Mastodon."
        ),
        parents=[_common_options(top=True)],
    )
    parser.add_argument("--version", action="version", version=f"newsbot {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    commands.add_parser("run", parents=[common], help="the daemon, until SIGTERM / SIGINT")
    once = commands.add_parser(
        "once", parents=[common], help="poll every source once, deliver what is due, exit"
    )
    once.add_argument(
        "--for",
        dest="drain_for",
        type=_duration,
        default=0.0,
        metavar="DURATION",
        help="keep delivering what the channels' pace holds back for up to this long "
        "(e.g. 2m under cron); default: one pass",
    )
    preview = commands.add_parser(
        "preview", parents=[common], help="show the posts the newest articles would get"
    )
    preview.add_argument("--source", help="only this source")
    preview.add_argument("--channel", help="only this channel")
    preview.add_argument("-n", "--limit", type=_count, default=3, help="articles per source")
    preview.add_argument(
        "--json",
        action="store_true",
        help="JSON for tools: per article and channel the text, its length and limit, the cut "
        "taken and the budget left",
    )
    check = commands.add_parser("check", parents=[common], help="validate config and templates")
    check.add_argument(
        "--online", action="store_true", help="also verify each channel's credentials"
    )
    status = commands.add_parser("status", parents=[common], help="the delivery log")
    status.add_argument("--json", action="store_true", help="JSON for machines")
    status.add_argument(
        "--state",
        action="append",
        choices=[str(state) for state in DeliveryState],
    )
    status.add_argument("--source")
    status.add_argument("--channel")
    status.add_argument(
        "-n", "--limit", type=_count, default=50, help=f"how many rows (1 to {MAX_COUNT})"
    )
    retry = commands.add_parser("retry", parents=[common], help="requeue failed or uncertain posts")
    retry.add_argument("--failed", action="store_true", help="failed deliveries (the default)")
    retry.add_argument(
        "--uncertain", action="store_true", help="deliveries that were in flight at a crash"
    )
    retry.add_argument(
        "--id", type=_delivery_id, action="append", dest="ids", help="only this delivery"
    )
    retry.add_argument("--channel")
    correct = commands.add_parser(
        "correct",
        parents=[common],
        help="re-render an article's posts from its current text, or under a corrected title",
    )
    correct.add_argument("article", metavar="ARTICLE", help=_ARTICLE_HELP)
    correct.add_argument("--title", help="the corrected title (it wins over the source's)")
    correct.add_argument("--reason", help="why, kept in the ledger and shown by history")
    retract = commands.add_parser(
        "retract", parents=[common], help="withdraw an article: take its posts down everywhere"
    )
    retract.add_argument("article", metavar="ARTICLE", help=_ARTICLE_HELP)
    retract.add_argument("--reason", required=True, help="why (kept in the ledger)")
    history = commands.add_parser(
        "history", parents=[common], help="an article's revisions and what each did to each post"
    )
    history.add_argument("article", metavar="ARTICLE", help=_ARTICLE_HELP)
    history.add_argument("--json", action="store_true", help="JSON for machines")
    db = commands.add_parser("db", parents=[common], help="the ledger's schema")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", parser_class=_Parser)
    db_commands.required = True
    db_commands.add_parser(
        "upgrade", parents=[common], help="create the schema or bring it to this newsbot's"
    )
    db_commands.add_parser(
        "current", parents=[common], help="the schema revision the ledger is at (exit 1: behind)"
    )
    return parser


_ARTICLE_HELP = "the article's key, its URL, or a delivery id (see `newsbot status`)"

LEDGER_ONLY = frozenset({"status", "retry", "db", "correct", "retract", "history"})


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    redactor = setup_logging(
        level=logging.DEBUG if args.verbose else logging.INFO, fmt=args.log_format
    )
    path = config_path(args.config)
    try:
        # Commands that only read or mend the ledger need no channel's secrets.
        config = load_config(path, secrets_optional=args.command in LEDGER_ONLY)
        redactor.update(config.secrets())
        args.redactor = redactor
        handler = _COMMANDS[args.command]
        return asyncio.run(handler(config, args))
    except ConfigError as exc:
        print(f"newsbot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BotError as exc:
        print(f"newsbot: {redactor.redact(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        # The reader (`newsbot status | head`) stopped reading: not an error of ours. Point
        # stdout at /dev/null so that the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED


async def _run(config: Config, args: argparse.Namespace) -> int:
    from bot.daemon import run_daemon

    return await run_daemon(config, redactor=args.redactor)


async def _once(config: Config, args: argparse.Namespace) -> int:
    from bot.wiring import open_runtime

    async with open_runtime(config, redactor=args.redactor) as runtime:
        pipeline = runtime.pipeline
        polls = await pipeline.poll_all()
        report = await pipeline.deliver_due()
        deadline = pipeline.clock().timestamp() + args.drain_for
        while report.next_wake is not None and report.next_wake.timestamp() <= deadline:
            await asyncio.sleep(max(report.next_wake.timestamp() - pipeline.clock().timestamp(), 0))
            more = await pipeline.deliver_due()
            report.next_wake = None
            report.add(more)
    log.info(
        "done: %d sent, %d failed, %d to retry, %d skipped",
        report.sent,
        report.failed,
        report.retrying,
        report.skipped,
    )
    if report.actions:
        log.info(
            "corrections and takedowns: %s",
            ", ".join(f"{n} {state}" for state, n in sorted(report.actions.items())),
        )
    unread = [poll.source for poll in polls if not poll.ok]
    if unread:
        log.error("could not read %d source(s): %s", len(unread), ", ".join(unread))
    refused = report.actions[str(ActionState.FAILED)] + report.actions[str(ActionState.UNCERTAIN)]
    failed = report.failed or report.uncertain or refused or runtime.broken_channels or unread
    return EXIT_FAILED if failed else EXIT_OK


async def _preview(config: Config, args: argparse.Namespace) -> int:
    from bot.channels.console import format_post
    from bot.compose.excerpt import stored_excerpt
    from bot.compose.post import compose_post
    from bot.pipeline import tidy_article
    from bot.sources.base import SourceState
    from bot.sources.fetch import Fetcher
    from bot.wiring import build_channel, build_renderer, build_source

    _known(args.source, config.sources, "source")
    _known(args.channel, config.channels, "channel")
    renderer = build_renderer(config)
    channels = {name: build_channel(cfg) for name, cfg in config.channels.items()}
    problems = 0
    rows: list[dict[str, object]] = []
    async with Fetcher() as fetcher:
        for name, source_config in config.sources.items():
            if args.source and name != args.source:
                continue
            try:
                async with build_source(source_config, fetcher, config) as source:
                    result = await source.poll(SourceState())
            except SourceError as exc:
                if args.json:
                    rows.append({"source": name, "error": f"cannot read it: {exc}"})
                else:
                    print(f"source {name}: cannot read it: {exc}\n")
                problems += 1
                continue
            newest = sorted(
                result.articles,
                key=lambda a: a.published or datetime.now(UTC),
                reverse=True,
            )[: args.limit]
            for polled in newest:
                # What the pipeline queues and how it composes, so the preview is the post.
                article = tidy_article(polled)
                excerpt = stored_excerpt(
                    article.summary_html,
                    strip=source_config.strip,
                    length=source_config.excerpt_length,
                )
                for channel_name in config.routes(name):
                    if args.channel and channel_name != args.channel:
                        continue
                    channel = channels[channel_name]
                    settings = config.channels[channel_name]
                    rule = channel.rule(has_image=bool(article.image))
                    where = {
                        "source": name,
                        "article": article.key,
                        "title": article.title,
                        "channel": channel_name,
                        "platform": rule.platform,
                    }
                    try:
                        composed = compose_post(
                            renderer,
                            settings,
                            channel,
                            article=article,
                            excerpt=excerpt,
                            source=name,
                            max_chars=source_config.excerpt_length,
                        )
                    except (DeliveryError, ConfigError) as exc:
                        if args.json:
                            rows.append({**where, "error": str(exc)})
                        else:
                            print(
                                f"── {channel_name} · {name} · cannot post {article.title!r}: "
                                f"{exc}\n"
                            )
                        problems += 1
                        continue
                    post = composed.post
                    if args.json:
                        rows.append(
                            {
                                **where,
                                "text": post.text,
                                "length": post.length,
                                "limit": post.limit,
                                "cut": composed.cut,
                                "budget_left": composed.budget_left,
                            }
                        )
                    else:
                        print(format_post(post, rules=rule.platform))
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    return EXIT_FAILED if problems else EXIT_OK


async def _check(config: Config, args: argparse.Namespace) -> int:
    from bot.wiring import build_channel, build_renderer, check_policies, sample_post

    renderer = build_renderer(config)
    problems: list[str] = []
    channels = {name: build_channel(settings) for name, settings in config.channels.items()}
    for name, settings in config.channels.items():
        channel = channels[name]
        try:
            post = sample_post(renderer, settings, channel)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        except DeliveryError as exc:
            problems.append(f"channel {name}: {exc.reason}")
            continue
        print(
            f"ok   channel {name}: {settings.template} renders the sample article "
            f"at {post.length}/{post.limit}"
        )
        if args.online:
            verify = getattr(channel, "verify", None)
            if verify is None:
                continue
            try:
                await channel.start()
                who = await verify()
                print(f"ok   channel {name}: credentials accepted ({who})")
            except DeliveryError as exc:
                problems.append(f"channel {name}: {exc.reason}")
            finally:
                await channel.close()
    if not problems:
        try:
            check_policies(config, renderer, channels)
        except ConfigError as exc:
            problems.append(str(exc))
    for warning in retention_warnings(config):
        print(f"warn {warning}")
    print(
        f"ok   config {config.path}: {len(config.sources)} source(s), "
        f"{len(config.channels)} channel(s)"
        if not problems
        else ""
    )
    for problem in problems:
        print(f"newsbot: {args.redactor.redact(problem)}", file=sys.stderr)
    return EXIT_USAGE if problems else EXIT_OK


async def _status(config: Config, args: argparse.Namespace) -> int:
    from bot.ledger import Ledger
    from bot.report import actions_line, counts_line, status_table

    _known(args.source, config.sources, "source")
    _known(args.channel, config.channels, "channel")
    ledger = Ledger.open(config.database, redactor=args.redactor)
    try:
        rows = ledger.deliveries(
            states=args.state, source=args.source, channel=args.channel, limit=args.limit
        )
        marks = ledger.revision_marks([d.id for d in rows])
        counts = ledger.counts()
        actions = ledger.action_counts()
        spend = _x_spend(config, ledger)
        problems = [
            record
            for record in ledger.source_problems()
            if not args.source or record.name == args.source
        ]
    finally:
        ledger.close()
    if args.json:
        print(
            json.dumps(
                {
                    "counts": counts,
                    "revision_actions": actions,
                    "x_month": spend,
                    "sources": [_problem(record) for record in problems],
                    "deliveries": [d.as_dict() | {"revised": marks.get(d.id)} for d in rows],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        print(counts_line(counts))
        revised = actions_line(actions)
        if revised:
            print(revised)
        for name, month in spend.items():
            budget = month["budget"]
            of = f" of {budget:.2f}" if budget is not None else ""
            print(
                f"x channel {name}: {month['posts']} posts this month, "
                f"{month['spend']:.2f}{of} {month['currency']}"
            )
        for record in problems:
            problem = _problem(record)
            print(f"source {record.name}: {problem['state']}: {problem['problem']}")
        if rows:
            print(status_table(rows, config.tz, marks))
    return EXIT_OK


def _problem(record: SourceRecord) -> dict[str, object]:
    """A source's last problem, for `status`: a failing poll, or entries a good poll skipped."""
    failing = record.consecutive_errors > 0
    return {
        "source": record.name,
        "state": f"failing ({record.consecutive_errors}x)" if failing else "entries skipped",
        "problem": record.last_error,
        "at": record.last_polled_at.isoformat() if record.last_polled_at else None,
    }


async def _retry(config: Config, args: argparse.Namespace) -> int:
    from bot.ledger import Ledger

    _known(args.channel, config.channels, "channel")
    states: list[DeliveryState] = []
    if args.failed or not args.uncertain:
        states.append(DeliveryState.FAILED)
    if args.uncertain:
        states.append(DeliveryState.UNCERTAIN)
    ledger = Ledger.open(config.database, redactor=args.redactor)
    try:
        now = datetime.now(UTC)
        moved = ledger.retry(states=states, now=now, ids=args.ids, channel=args.channel)
        # The same states of corrections and takedowns (an edit in flight at a crash is
        # uncertain like a post); --id names the delivery whose post they act on.
        acted = ledger.retry_actions(
            states=states, now=now, delivery_ids=args.ids, channel=args.channel
        )
    finally:
        ledger.close()
    print(
        f"{moved} deliver{'y' if moved == 1 else 'ies'} back in the queue "
        f"({' and '.join(states)}); the next `newsbot once` or the running daemon sends them"
    )
    if acted:
        print(
            f"{acted} correction{'' if acted == 1 else 's'} or takedown"
            f"{'' if acted == 1 else 's'} back in the queue: they are applied to the posts again"
        )
    return EXIT_OK


async def _correct(config: Config, args: argparse.Namespace) -> int:
    from bot import editor

    def revision(stored: StoredArticle) -> Revision:
        return editor.correction(stored, title=args.title, reason=args.reason)

    return _revise(config, args, revision, "correction")


async def _retract(config: Config, args: argparse.Namespace) -> int:
    from bot import editor

    def revision(stored: StoredArticle) -> Revision:
        return editor.takedown(stored, reason=args.reason)

    return _revise(config, args, revision, "takedown")


def _revise(
    config: Config,
    args: argparse.Namespace,
    make: Callable[[StoredArticle], Revision],
    what: str,
) -> int:
    """One editor's revision of ARTICLE recorded, with an action per post under each channel's
    policy; the running daemon (or the next `newsbot once`) applies them."""
    from bot import editor
    from bot.channels.kinds import policies
    from bot.ledger import Ledger

    chosen = policies(config)
    ledger = Ledger.open(config.database, redactor=args.redactor)
    try:
        stored = editor.resolve(ledger, args.article)
        revision = make(stored)
        report = ledger.revise([revision], chosen, now=datetime.now(UTC))
        record = ledger.history(stored.id)[-1]
    finally:
        ledger.close()
    print(f"revision {record.id} of {stored.source} {stored.article.key!r} 「{record.title}」")
    for act in record.actions:
        note = f" ({act.reason})" if act.reason else ""
        print(f"  delivery {act.delivery_id} on {act.channel}: {act.action} {act.state}{note}")
    stopped = f", {report.stopped} unsent post(s) stopped" if report.stopped else ""
    print(
        f"{what}: {report.queued} action(s) queued, {report.skipped} skipped{stopped}; the "
        "running daemon or the next `newsbot once` applies them (`newsbot history` shows how)"
    )
    return EXIT_OK


async def _history(config: Config, args: argparse.Namespace) -> int:
    from bot import editor
    from bot.ledger import Ledger
    from bot.report import history_text

    ledger = Ledger.open(config.database, redactor=args.redactor)
    try:
        found = editor.history(ledger, editor.resolve(ledger, args.article))
    finally:
        ledger.close()
    if args.json:
        print(json.dumps(found, ensure_ascii=False, indent=2))
    else:
        print(history_text(found, config.tz))
    return EXIT_OK


def _x_spend(config: Config, ledger: Ledger) -> dict[str, dict[str, Any]]:
    """This calendar month's X posts and spend, per X channel, in the configured time zone."""
    from bot.outcome import month_start

    since = month_start(datetime.now(UTC), config.tz)
    found: dict[str, dict[str, Any]] = {}
    for name, settings in config.channels.items():
        if isinstance(settings, XChannelConfig):
            posts, spent = ledger.spend(name, since=since)
            found[name] = {
                "posts": posts,
                "spend": round(spent, 4),
                "budget": settings.monthly_budget,
                "currency": settings.currency,
            }
    return found


#: The most rows a command shows or takes at once; also keeps numbers inside SQL's int64.
MAX_COUNT = 1_000_000
_MAX_ID = 2**63 - 1
#: The longest `once --for`: a cron run longer than a day is a mistake.
MAX_DRAIN = 86_400.0


def _duration(text: str) -> float:
    try:
        seconds = parse_duration(text).total_seconds()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0 <= seconds <= MAX_DRAIN:
        raise argparse.ArgumentTypeError(f"expected a duration from 0s to 1d, got {text!r}")
    return seconds


def _whole(text: str, low: int, high: int, what: str) -> int:
    # ASCII digits only: int() also reads "١٢" and "1_000".
    stripped = text.strip()
    digits = stripped.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        raise argparse.ArgumentTypeError(f"expected {what} from {low} to {high}, got {text!r}")
    value = int(stripped)
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"expected {what} from {low} to {high}, got {text!r}")
    return value


def _count(text: str) -> int:
    return _whole(text, 1, MAX_COUNT, "a number of rows")


def _delivery_id(text: str) -> int:
    return _whole(text, 1, _MAX_ID, "a delivery id (see `newsbot status`)")


def _known(name: str | None, entries: Mapping[str, object], what: str) -> None:
    if name is not None and name not in entries:
        known = ", ".join(sorted(entries))
        raise ConfigError(f"no {what} named {name!r} in the config ({what}s are: {known})")


async def _db(config: Config, args: argparse.Namespace) -> int:
    """``newsbot db upgrade`` / ``newsbot db current``: the ledger's schema revision."""
    from bot.ledger import Ledger
    from bot.redact import redact_url

    where = redact_url(config.database)
    if args.db_command == "upgrade":
        ledger = Ledger.open(config.database, upgrade=True, redactor=args.redactor)
        change = ledger.schema_change
        ledger.close()
        if change is None:
            print(f"ledger {where}: already at the newest schema revision; nothing to do")
        elif change.before is None:
            print(f"ledger {where}: created at schema revision {change.after}")
        else:
            print(
                f"ledger {where}: upgraded from schema revision {change.before} to {change.after}"
            )
        return EXIT_OK
    state = Ledger.schema_state(config.database)
    if state.current is None:
        print(
            f"ledger {where}: empty; `newsbot db upgrade` (or any command) creates it at "
            f"schema revision {state.head}"
        )
        return EXIT_OK
    if state.up_to_date:
        print(f"ledger {where}: schema revision {state.current} (the newest)")
        return EXIT_OK
    made = " (made before newsbot used Alembic)" if state.legacy else ""
    if not state.known:
        print(
            f"ledger {where}: schema revision {state.current}, newer than this newsbot knows "
            f"({state.head}): upgrade newsbot"
        )
    else:
        print(
            f"ledger {where}: schema revision {state.current}{made}; this newsbot needs "
            f"{state.head}: run `newsbot db upgrade`"
        )
    return EXIT_FAILED


_COMMANDS = {
    "run": _run,
    "once": _once,
    "preview": _preview,
    "check": _check,
    "status": _status,
    "retry": _retry,
    "correct": _correct,
    "retract": _retract,
    "history": _history,
    "db": _db,
}
