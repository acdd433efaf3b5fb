"""The one way a post is made from an article: at send time, by ``preview``, by ``check`` and
when a reload is validated, so that all four fit a post to the same limit."""

from __future__ import annotations

from bot.channels.base import Channel
from bot.compose.render import Renderer
from bot.config import ChannelConfig
from bot.links import with_tracking
from bot.model import Article, Post


def compose(
    renderer: Renderer,
    settings: ChannelConfig,
    channel: Channel,
    *,
    article: Article,
    excerpt: str,
    source: str,
) -> Post:
    """The post ``channel`` would get for one article, fitted to the limit the channel itself
    names for it (a photo caption's, when the post carries a photo)."""
    return renderer.render(
        settings.template,
        article=article,
        excerpt=excerpt,
        source=source,
        channel=settings.name,
        link=with_tracking(article.url, settings.tracking),
        rule=channel.rule(has_image=bool(article.image)),
    )
