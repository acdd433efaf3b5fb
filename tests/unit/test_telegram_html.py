"""The fake's HTML parser refuses and accepts exactly what Telegram's Bot API does.

Expected texts and byte offsets follow TDLib's own parse_html tests (the parser the Bot API runs);
offsets count UTF-8 bytes of the input, so every CJK character before an error moves it by 3.
"""

from __future__ import annotations

import pytest

from bot.testing.telegram_html import (
    Entity,
    HtmlParseError,
    clean_text,
    code_points,
    parse_html,
    plain_text,
)

BYLINE = "新聞視界時報 記者 王秉程 整理報導"


def error_of(html: str) -> str:
    with pytest.raises(HtmlParseError) as caught:
        parse_html(html)
    return caught.value.message


@pytest.mark.parametrize(
    ("tag", "entity_type"),
    [
        ("b", "bold"),
        ("strong", "bold"),
        ("i", "italic"),
        ("em", "italic"),
        ("u", "underline"),
        ("ins", "underline"),
        ("s", "strikethrough"),
        ("strike", "strikethrough"),
        ("del", "strikethrough"),
        ("code", "code"),
        ("pre", "pre"),
        ("blockquote", "blockquote"),
        ("tg-spoiler", "spoiler"),
    ],
)
def test_each_allowed_tag_becomes_its_entity(tag: str, entity_type: str) -> None:
    """Every tag Telegram allows is accepted, leaves only its text, and marks that text."""
    parsed = parse_html(f"「高雄」<{tag}>港都新聞</{tag}>。")
    assert parsed.text == "「高雄」港都新聞。"
    assert parsed.entities == (Entity(entity_type, 4, 4),)


def test_link_keeps_href_with_entities_decoded() -> None:
    """<a href> becomes a text_link whose URL has &amp; decoded, and only the label is text."""
    parsed = parse_html('<a href="https://news.example.tw/a?id=1&amp;ref=tg">閱讀全文</a>')
    assert parsed.text == "閱讀全文"
    assert parsed.entities == (
        Entity("text_link", 0, 4, url="https://news.example.tw/a?id=1&ref=tg"),
    )


def test_spoiler_span_and_expandable_blockquote_and_custom_emoji() -> None:
    """span.tg-spoiler, <blockquote expandable> and <tg-emoji emoji-id> are Telegram's extras."""
    parsed = parse_html(
        '<span class="tg-spoiler">劇透</span><blockquote expandable>引言</blockquote>'
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>'
    )
    assert parsed.text == "劇透引言👍"
    assert parsed.entities == (
        Entity("spoiler", 0, 2),
        Entity("expandable_blockquote", 2, 2),
        Entity("custom_emoji", 4, 2, custom_emoji_id="5368324170671202286"),
    )


def test_pre_with_code_language_becomes_one_pre_entity() -> None:
    """<pre><code class="language-python"> is one pre entity with a language, as in Telegram."""
    parsed = parse_html('<pre><code class="language-python">print("港")</code></pre>')
    assert parsed.entities == (Entity("pre", 0, 10, language="python"),)


def test_nesting_and_case_insensitive_tags_are_accepted() -> None:
    """Properly nested tags in any letter case parse; offsets are UTF-16 units (emoji = 2)."""
    parsed = parse_html("🎉<B>頭條<I>快訊</I></b>")
    assert parsed.text == "🎉頭條快訊"
    assert parsed.entities == (Entity("bold", 2, 4), Entity("italic", 4, 2))


def test_empty_end_tag_closes_the_open_tag() -> None:
    """``</>`` closes whatever tag is open, as TDLib allows."""
    assert parse_html("<b>粗體</>").entities == (Entity("bold", 0, 2),)


@pytest.mark.parametrize(
    ("html", "message"),
    [
        ("記者<br>王秉程", 'Unsupported start tag "br" at byte offset 6'),
        ("<p>段落</p>", 'Unsupported start tag "p" at byte offset 0'),
        ("ab<div>x</div>", 'Unsupported start tag "div" at byte offset 2'),
        ("高雄 < 台北", 'Unsupported start tag "" at byte offset 7'),
        ("「新聞」<!-- x -->", 'Unsupported start tag "!--" at byte offset 12'),
        ("<b>粗體", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>斜</b></i>", 'Unmatched end tag at byte offset 9, expected "</i>", found "</b>"'),
        ("新聞</b>", "Unexpected end tag at byte offset 6"),
        ("<b>新聞</b", "Unclosed end tag at byte offset 9"),
        ("王秉程<b", "Unclosed start tag at byte offset 9"),
        ('<a href="x" "y">連</a>', 'Empty attribute name in the tag "a" at byte offset 0'),
        ("<a href=x,y>連</a>", "Unexpected end of name token at byte offset 8"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("<tg-emoji emoji-id=abc>👍</tg-emoji>", "Invalid custom emoji identifier specified"),
    ],
)
def test_refusals_have_telegrams_text_and_byte_offset(html: str, message: str) -> None:
    """Markup Telegram refuses is refused with TDLib's exact message and UTF-8 byte offset."""
    assert error_of(html) == message


def test_tdlib_reference_cases_with_emoji_offsets() -> None:
    """TDLib's own cases: 🏟 is 4 bytes, so the tag after '🏟 🏟&lt;' is at byte offset 13."""
    assert error_of("🏟 🏟&lt;<abacaba") == "Unclosed start tag at byte offset 13"
    assert error_of("🏟 🏟&lt;<i    aba  =  ") == 'Unclosed start tag "i" at byte offset 13'
    assert error_of("🏟 🏟&lt;<i>a</em   >") == (
        'Unmatched end tag at byte offset 17, expected "</i>", found "</em>"'
    )
    assert error_of("🏟 🏟&lt;<b></b></") == "Unexpected end tag at byte offset 20"


def test_cjk_byte_offset_counts_three_bytes_per_character() -> None:
    """The byline's 15 CJK characters and 3 spaces put the next tag at byte 48, not 18."""
    assert error_of(f"{BYLINE}<br>") == 'Unsupported start tag "br" at byte offset 48'


def test_description_carries_the_bot_api_prefix() -> None:
    """The Bot API answers "Bad Request: can't parse entities: " followed by TDLib's text."""
    with pytest.raises(HtmlParseError) as caught:
        parse_html("<br>")
    assert caught.value.description == (
        'Bad Request: can\'t parse entities: Unsupported start tag "br" at byte offset 0'
    )


def test_the_four_named_entities_and_numeric_ones_decode() -> None:
    """&lt; &gt; &amp; &quot; and decimal/hex references decode, with or without ';'."""
    parsed = parse_html("&lt;高雄&gt; &amp; &quot;格丁尼亞&quot; &#12300;港&#x300D; &lt")
    assert parsed.text == '<高雄> & "格丁尼亞" 「港」 <'


def test_other_named_entities_stay_literal_text() -> None:
    """&nbsp; or &hellip; are not errors in Telegram: they reach readers as literal text."""
    assert parse_html("記者&nbsp;王秉程&hellip;").text == "記者&nbsp;王秉程&hellip;"


def test_bare_ampersand_and_greater_than_are_text() -> None:
    """A lone '&' or '>' is plain text, unlike a lone '<'."""
    assert parse_html("A&B > C").text == "A&B > C"


def test_lone_surrogate_reference_is_refused() -> None:
    """A numeric reference to half a surrogate pair is refused with Telegram's message."""
    assert error_of("&#xD83C;").startswith("Text contains invalid Unicode characters")


def test_length_counts_text_after_parsing_not_markup() -> None:
    """Tags and entity spelling do not count: '<b>港</b>&amp;' is 2 code points, not 13."""
    assert code_points("<b>港</b>&amp;") == 2
    assert code_points(f'<a href="https://news.example.tw/">{BYLINE}</a>') == len(BYLINE)


def test_length_counts_code_points_so_emoji_is_one() -> None:
    """Telegram's 4096/1024 limits count code points: an emoji counts once."""
    assert code_points("🎉🚢") == 2


def test_clean_text_trims_and_turns_control_characters_into_spaces() -> None:
    """Like the Bot API: \\r dropped, tabs to spaces, outer spaces and newlines trimmed."""
    assert clean_text("\n  高雄\r\n港\t都  \n") == "高雄\n港 都"


def test_plain_text_of_whitespace_only_markup_is_empty() -> None:
    """A text that is only markup and spaces is empty to Telegram ("message text is empty")."""
    assert plain_text("<b> </b>\n") == ""
