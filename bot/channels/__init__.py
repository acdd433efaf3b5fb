"""Channels: one module per platform, one base class (:mod:`bot.channels.base`).

Only ``telegram.py`` knows python-telegram-bot and only ``x.py`` knows tweepy; each translates
its library's errors into :class:`~bot.errors.TransientError` / :class:`~bot.errors.PermanentError`.
"""
