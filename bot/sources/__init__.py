"""Sources: one module per kind, one small base class (:mod:`bot.sources.base`)."""
