"""``python -m bot.testing telegram|x|threads|facebook|bluesky|mastodon|feed [options]``: run
one fake on 127.0.0.1 until Ctrl-C, to try newsbot by hand against a local Telegram Bot API, X
API, Threads API, Facebook Graph API, Bluesky PDS, Mastodon instance or news site."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    usage = (
        "usage: python -m bot.testing {telegram,x,threads,facebook,bluesky,mastodon,feed} [--help]"
    )
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2
    kind, rest = argv[0], argv[1:]
    if kind == "telegram":
        from bot.testing.telegram_server import serve
    elif kind == "x":
        from bot.testing.x_server import serve
    elif kind == "threads":
        from bot.testing.threads_server import serve
    elif kind == "facebook":
        from bot.testing.facebook_server import serve
    elif kind == "bluesky":
        from bot.testing.bluesky_server import serve
    elif kind == "mastodon":
        from bot.testing.mastodon_server import serve
    elif kind == "feed":
        from bot.testing.feed_server import serve
    else:
        print(f"{usage}\nunknown fake {kind!r}", file=sys.stderr)
        return 2
    return serve(rest)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
