"""newsbot: posts a newsroom's new articles to Telegram, X, Threads, Facebook Pages, Bluesky
and Mastodon, with a ledger of every delivery."""

__version__ = "0.1.0"

#: How newsbot introduces itself to every site and hub it fetches from.
USER_AGENT = "newsbot/0.1 (+https://github.com/newsbot)"
