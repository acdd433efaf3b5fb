"""newsbot: posts a newsroom's new articles to Telegram and X, with a ledger of every delivery."""

__version__ = "0.1.0"
