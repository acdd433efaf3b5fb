"""What kind of image a file is, from its first bytes: a server's Content-Type can lie, and a
platform refuses an upload whose type it cannot read."""

from __future__ import annotations

from urllib.parse import urlsplit

from bot.errors import BotError
from bot.sources.fetch import Fetcher


def sniff(data: bytes) -> str | None:
    """``image/jpeg``, ``image/png``, ``image/gif`` or ``image/webp``; None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class NoImage(Exception):
    """An image could not be had; the message says why (for a receipt's notes)."""


async def download(fetcher: Fetcher | None, url: str, *, max_bytes: int) -> tuple[bytes, str]:
    """The image at ``url`` and its type, fetched through the project's Fetcher (its size cap
    and deadline); only http(s), never a local file named by a feed."""
    if urlsplit(url).scheme not in ("http", "https") or fetcher is None:
        raise NoImage(f"the image URL {url!r} is not http(s)")
    try:
        fetched = await fetcher.get(url, max_bytes=max_bytes)
    except BotError as exc:  # the Fetcher's SourceError: no image, still a post
        raise NoImage(f"downloading the image failed: {exc}") from exc
    if fetched.status != 200:
        raise NoImage(f"downloading the image gave HTTP {fetched.status}")
    media_type = sniff(fetched.body)
    if media_type is None:
        raise NoImage("the file at the image URL is not a JPEG, PNG, GIF or WebP image")
    return fetched.body, media_type
