"""A realistic article for ``newsbot check`` and ``newsbot preview``: every template is rendered
against it, so a template that breaks on a real Taiwanese news item breaks here first."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.model import Article

SAMPLE_SOURCE = "sample"

_SUMMARY_HTML = """\
<p>新聞視界時報 記者 王秉程 整理報導</p>
<p>高雄與波蘭姊妹市 格丁尼亞 的交流再度邁向新里程！</p>
<p>由高雄市副市長 羅達生 率領市府團隊，於波蘭時間 9 月 14 日與格丁尼亞市政府正式簽署
<strong>經濟合作備忘錄</strong>。</p>
<p>此次合作涵蓋格丁尼亞市政府經濟政策處、波美拉尼亞科技園區（PPNT）、格丁尼亞資訊中心
（Gdynia IT Centre）等單位。</p>
<p>未來將共同推動產業發展、新創事業與智慧城市政策，建立長期合作機制，攜手打造跨域新創與智慧城市的
永續生態圈。🚢🇵🇱</p>
<h2>港灣城市聯手 激盪創新火花</h2>
<p>羅達生副市長指出，高雄與格丁尼亞同為重要港灣城市，無論是 海洋經濟、交通運輸或產業發展，
兩地都有相似背景，也因此交流日益緊密。</p>
<ul>
<li>1.人才交流 —— 鼓勵青年跨國學習與實習，培養雙方新世代創業能量。</li>
<li>2.產業媒合 —— 推動企業之間的跨境對接，創造雙贏合作機會。</li>
<li>3.技術研發 —— 展開試點專案與應用驗證，打造具體成果落地。</li>
</ul>
<p>格丁尼亞副市長 奧克塔維亞・戈任斯卡（Oktawia Gorzeńska）也在致詞中表示，格丁尼亞憑藉
波羅的海港口與「三聯市群」（格但斯克、格丁尼亞、索波特）的區位優勢，
長期深耕 海洋科技與智慧交通。</p>
"""

SAMPLE_ARTICLE = Article(
    key="https://news.example.tw/新聞/投資理財/高雄-格丁尼亞再升級",
    url="https://news.example.tw/新聞/投資理財/高雄-格丁尼亞再升級",
    title="高雄 × 格丁尼亞再升級！簽署合作備忘錄，攜手打造新創與智慧城市新典範",
    summary_html=_SUMMARY_HTML,
    published=datetime(2025, 9, 15, 9, 30, tzinfo=ZoneInfo("Asia/Taipei")),
    author="王秉程",
    categories=("地方", "國際交流", "投資理財"),
    image="https://news.example.tw/images/2025/09/kaohsiung-gdynia-mou.jpg",
)
