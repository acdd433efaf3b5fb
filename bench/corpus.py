"""Traditional Chinese news articles for the text benchmark and the end-to-end tests, made
from hand-written pieces in the spirit of the seed article (a Kaohsiung city-diplomacy story):
bylines, CJK punctuation, headings, lists without end punctuation, tables, block quotes,
numbers with units, English names, quotations, full-width spaces and emoji, long and short.

:func:`articles` is deterministic for a seed. Every name, number and word that must never be
cut in half is listed in :data:`ATOMS` (and each generated number is recorded per article), so
a check can find a cut inside one without asking the code under test.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

BYLINE = r"新聞視界時報\s*記者\s*\S+\s*整理報導"

PEOPLE = ["羅達生", "陳其邁", "蔣萬安", "蘇俊賓", "郭添貴", "陳勇勝", "鄭照新", "王秉程", "林佳龍"]
FOREIGN = [
    ("奧克塔維亞・戈任斯卡", "Oktawia Gorzeńska"),
    ("尚-皮耶・杜蘭", "Jean-Pierre Durand"),
    ("瑪麗亞・科瓦爾斯卡", "Maria Kowalska"),
    ("約翰・史密斯", "John Smith"),
]
CITIES = ["高雄", "格丁尼亞", "臺北", "桃園", "臺中", "卡托維茲", "德勒斯登", "格但斯克", "索波特"]
ORGS = [
    ("波美拉尼亞科技園區", "PPNT"),
    ("格丁尼亞資訊中心", "Gdynia IT Centre"),
    ("洛伊國際政策研究所", "Lowy Institute"),
    ("臺灣半導體產業協會", "TSIA"),
    ("國家發展委員會", "NDC"),
]
TOPICS = [
    "智慧城市",
    "海洋經濟",
    "新創事業",
    "半導體",
    "綠色能源",
    "醫療器材",
    "數位轉型",
    "城市外交",
]
WORDS = ["政府", "備忘錄", "姊妹市", "經濟部", "發展局", "研究所", "科技園區", "記者會", "合作機制"]
ATOMS = (
    PEOPLE
    + [c for c, _ in FOREIGN]
    + [e for _, e in FOREIGN]
    + CITIES
    + [o for o, _ in ORGS]
    + [e for _, e in ORGS]
    + WORDS
)  # TOPICS are compounds of two words (智慧|城市): a cut between them is a phrase boundary
EMOJI = ["🚢", "🇹🇼", "🇵🇱", "🎉", "📈", "🌏", "👩‍💻", "🙌🏽"]
LABELS = ["【影音】", "【快訊】", "〔專題〕", "【直播】"]


@dataclass
class Generated:
    key: str
    title: str
    html: str
    categories: tuple[str, ...]
    published: datetime
    numbers: list[str] = field(default_factory=list)
    latin: list[str] = field(default_factory=list)


class _Writer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.numbers: list[str] = []
        self.latin: list[str] = []

    def pick(self, items: list[str]) -> str:
        return self.rng.choice(items)

    def number(self) -> str:
        r = self.rng
        kinds = [
            lambda: f"{r.randint(10, 99)},{r.randint(100, 999)}.{r.randint(10, 99)} 點",
            lambda: f"{r.randint(1, 100)}%",
            lambda: f"{r.randint(1, 12)} 月 {r.randint(1, 28)} 日",
            lambda: f"{r.randint(1, 12)}月{r.randint(1, 28)}日",
            lambda: f"NT${r.randint(1, 99)},{r.randint(100, 999)}",
            lambda: f"{r.randint(100, 999)}.{r.randint(1, 9)} 億元",
            lambda: f"{r.randint(2, 60)} 公里",
            lambda: f"第 {r.randint(2, 60)} 座",
            lambda: f"{r.randint(1, 9)}.{r.randint(1, 9)}%",
            lambda: f"US${r.randint(1, 9)}.{r.randint(1, 9)} 億",
            lambda: f"{r.randint(100, 4000)} 人",
        ]
        text = r.choice(kinds)()
        self.numbers.append(text)
        return text

    def person(self) -> str:
        if self.rng.random() < 0.3:
            zh, en = self.rng.choice(FOREIGN)
            self.latin.append(en)
            return f"{zh}（{en}）"
        return self.pick(PEOPLE)

    def org(self) -> str:
        zh, en = self.rng.choice(ORGS)
        if self.rng.random() < 0.5:
            self.latin.append(en)
            return f"{zh}（{en}）"
        return zh

    def sentence(self) -> str:
        r = self.rng
        city, other, topic = self.pick(CITIES), self.pick(CITIES), self.pick(TOPICS)
        forms = [
            f"{city}市副市長 {self.person()} 率領市府團隊，於{self.number()}與{other}市政府正式簽署"
            f"{topic}合作備忘錄。",
            f"此次合作涵蓋{self.org()}、{self.org()}等單位，未來將共同推動{topic}與產業發展。",
            f"根據統計，今年{topic}相關產值達 {self.number()}，較去年成長 {self.number()}，"
            f"創下歷史新高。",
            f"{self.person()}表示：「{city}與{other}同為重要港灣城市，無論是海洋經濟、交通運輸或"
            f"產業發展，兩地都有相似背景。」",
            f"台北股市今天終場以 {self.number()}作收，外資賣超台積電，成交量放大至"
            f" {self.number()}。",
            f"市府補充說明，未來雙方將設立單一合作窗口，提供落地服務、商機媒合與資源共享"
            f"{self.pick(EMOJI)}",
            f"{self.person()} said: \"Taiwan's exclusion from the {topic} forum is unjust, and "
            f'{city} will keep working with partners such as {self.org()}."',
            f"The delegation visited {self.pick(['Gdynia', 'Gdańsk', 'Sopot', 'Dresden'])} "
            f"on {self.number()} and met representatives of {self.org()} to discuss "
            f"start-up exchanges, smart-city pilots and port logistics.",
            f"活動吸引超過 {self.number()}參加，現場氣氛熱絡，許多民眾攜家帶眷一同體驗"
            f"{topic}的最新成果{self.pick(EMOJI)}！",
            f"議員質詢時關心社會住宅的興建速度，要求市府在 {self.number()}前提出完整報告。",
            f"經發局指出，{city}不僅能協助本地新創團隊前進歐洲市場，也能引進{other}的創新思維"
            f"與技術，讓城市在國際競爭力與永續發展上再添動能。",
            "她指出，此次合作讓兩座城市能夠結合各自的產業特色，在青年創業、智慧治理與跨境合作"
            "上展開更深入的交流",
            f"詳情可參考 https://news.example.tw/topic/{r.randint(100, 999)} 或追蹤 @newsvision_tw"
            f" 與 #{topic} 的最新消息。",
            f"開放更多政府資料給民眾使用，是{self.person()}在{self.number()}記者會上反覆強調的重點",
        ]
        return r.choice(forms)

    def paragraph(self, n: int) -> str:
        text = "".join(self.sentence() for _ in range(n))
        if self.rng.random() < 0.2:
            # A source that wraps its lines, and full-width spaces an editor typed.
            cut = len(text) // 2
            text = text[:cut] + "\n" + text[cut:]
        if self.rng.random() < 0.15:
            text = text.replace("，", "　", 1)
        return f"<p>{text}</p>"

    def block(self) -> str:
        r = self.rng
        roll = r.random()
        if roll < 0.45:
            return self.paragraph(r.randint(1, 3))
        if roll < 0.6:
            return (
                f"<h3>{self.pick(TOPICS)}{self.pick(['聯手', '展望', '重點', '新篇章'])}"
                f"　{self.pick(['激盪創新火花', '推動落地計畫', '從波羅的海連結國際'])}</h3>"
            )
        if roll < 0.75:
            items = "".join(
                f"<li>{self.pick(TOPICS)}{self.pick(['交流', '媒合', '研發', '治理'])}"
                f"{' —— ' + self.sentence() if r.random() < 0.4 else ''}</li>"
                for _ in range(r.randint(2, 4))
            )
            return f"<ul>{items}</ul>"
        if roll < 0.85:
            rows = "".join(
                f"<tr><td>{self.pick(['第一類組', '第二類組', '第三類組', '整體'])}</td>"
                f"<td>{self.number()}</td></tr>"
                for _ in range(r.randint(2, 3))
            )
            return f"<table><tr><th>類組</th><th>錄取率</th></tr>{rows}</table>"
        if roll < 0.92:
            return f"<blockquote>{self.sentence()}</blockquote>"
        if roll < 0.96:
            return (
                f"<figure><img src='x.jpg'><figcaption>{self.pick(CITIES)}港灣夜景"
                f"（記者 {self.pick(PEOPLE)} 攝）</figcaption></figure>"
            )
        return f"<p>{self.sentence()}<br>{self.sentence()}</p>"


def articles(count: int = 240, *, seed: int = 12) -> list[Generated]:
    """``count`` articles, a quarter of them short, the rest long; deterministic for ``seed``."""
    rng = random.Random(seed)
    out = []
    start = datetime(2025, 9, 15, 6, 30, tzinfo=UTC)
    for i in range(count):
        w = _Writer(rng)
        title = (
            f"{w.pick(CITIES)} × {w.pick(CITIES)}再升級！簽署{w.pick(TOPICS)}合作備忘錄"
            if rng.random() < 0.5
            else f"{w.pick(TOPICS)}新里程　{w.pick(CITIES)}攜手{w.pick(CITIES)}打造新典範"
        )
        if rng.random() < 0.15:
            title = w.pick(LABELS) + title
        if rng.random() < 0.1:
            title += w.pick(EMOJI)
        blocks = ["<p>新聞視界時報 記者 王秉程 整理報導</p>"]
        if rng.random() < 0.25:
            blocks.append(w.paragraph(1))
        else:
            blocks += [w.block() for _ in range(rng.randint(3, 9))]
        categories = tuple(
            rng.sample(["地方", "國際 交流", "投資理財", "科技", "城市・外交", "生活"], 2)
        )
        out.append(
            Generated(
                key=f"corpus-{i}",
                title=title,
                html="\n".join(blocks),
                categories=categories,
                published=start + timedelta(minutes=7 * i),
                numbers=w.numbers,
                latin=w.latin,
            )
        )
    return out
