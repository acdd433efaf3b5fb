"""Fakes shipped with the package: real HTTP servers on 127.0.0.1 that behave (and fail) like
the Telegram Bot API, the X API v2 and news sites' feeds, plus an in-memory channel.

Run one from the command line with ``python -m bot.testing telegram|x|feed``.
"""

from bot.sources.policy import FetchPolicy

#: What a source reading these fakes needs: they listen on 127.0.0.1, which is otherwise refused.
LOCAL_FAKES = FetchPolicy.allowing(["127.0.0.1"])
