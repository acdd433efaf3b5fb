"""Fakes shipped with the package: real HTTP servers on 127.0.0.1 that behave (and fail) like
the Telegram Bot API, the X API v2 and news sites' feeds, plus an in-memory channel.

Run one from the command line with ``python -m bot.testing telegram|x|feed``.
"""
