"""The one way a post is made from an article: at send time, by ``preview``, by ``check`` and
when a reload is validated, so that all four fit a post to the same limit."""

from __future__ import annotations

from bot.channels.base import Channel
from bot.compose.excerpt import DEFAULT_EXCERPT_LENGTH
from bot.compose.render import ComposedPost, Renderer
from bot.config import ChannelConfig
from bot.links import with_tracking
from bot.model import Article, Post


def compose_post(
    renderer: Renderer,
    settings: ChannelConfig,
    channel: Channel,
    *,
    article: Article,
    excerpt: str,
    source: str,
    max_chars: int = DEFAULT_EXCERPT_LENGTH,
    template: str | None = None,
) -> ComposedPost:
    """The post ``channel`` would get for one article, fitted to the limit the channel itself
    names for it (a photo caption's, when the post carries a photo), with how its excerpt was
    cut and the budget left. ``max_chars`` is the source's ``excerpt_length``, the editor's
    upper bound on the excerpt; ``template`` another of the channel's templates than its
    post's (the ``correction_template`` of a correction posted as a reply)."""
    return renderer.compose(
        template or settings.template,
        article=article,
        excerpt=excerpt,
        source=source,
        channel=settings.name,
        link=with_tracking(article.url, settings.tracking),
        rule=channel.rule(has_image=bool(article.image)),
        max_chars=max_chars,
    )


def compose(
    renderer: Renderer,
    settings: ChannelConfig,
    channel: Channel,
    *,
    article: Article,
    excerpt: str,
    source: str,
    max_chars: int = DEFAULT_EXCERPT_LENGTH,
) -> Post:
    """:func:`compose_post`'s post alone."""
    return compose_post(
        renderer,
        settings,
        channel,
        article=article,
        excerpt=excerpt,
        source=source,
        max_chars=max_chars,
    ).post
