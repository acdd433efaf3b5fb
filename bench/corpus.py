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
from typing import Any

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
# The other beats of a Taiwanese newsroom (:func:`broad_articles`): weather, health, transport,
# schools, the legislature, the economy, sports and culture.
PEOPLE_2 = ["卓榮泰", "黃偉哲", "盧秀燕", "張善政", "鄭英耀", "楊金龍", "吳德榮", "邱泰源"]
PLACES_2 = ["花蓮", "臺東", "屏東", "新竹", "嘉義", "宜蘭", "澎湖", "南投"]
ORGS_2 = [
    ("中央氣象署", "CWA"),
    ("衛生福利部", "MOHW"),
    ("交通部", "MOTC"),
    ("金融監督管理委員會", "FSC"),
    ("臺灣證券交易所", "TWSE"),
    ("中央研究院", "Academia Sinica"),
]
TOPICS_2 = [
    "颱風防災",
    "長照服務",
    "國道交通",
    "大學招生",
    "特別預算",
    "經濟成長",
    "棒球賽事",
    "藝術節",
]
WORDS_2 = ["疾管署", "高乘載", "放榜", "三讀", "理監事會", "冠軍戰", "兩廳院", "部分負擔"]
WORDS = ["政府", "備忘錄", "姊妹市", "經濟部", "發展局", "研究所", "科技園區", "記者會", "合作機制"]
ATOMS = (
    PEOPLE
    + [c for c, _ in FOREIGN]
    + [e for _, e in FOREIGN]
    + CITIES
    + [o for o, _ in ORGS]
    + [e for _, e in ORGS]
    + WORDS
    + PEOPLE_2
    + PLACES_2
    + [o for o, _ in ORGS_2]
    + [e for _, e in ORGS_2]
    + WORDS_2
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

    def article(self, *, query: str = "") -> Any:
        """The article as a source would record it, at its page on the sample site."""
        from bot.model import Article

        return Article(
            key=self.key,
            url=f"https://news.example.tw/article/{self.key}{query}",
            title=self.title,
            summary_html=self.html,
            published=self.published,
            categories=self.categories,
        )


class _Writer:
    topics = TOPICS

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
                f"<h3>{self.pick(self.topics)}{self.pick(['聯手', '展望', '重點', '新篇章'])}"
                f"　{self.pick(['激盪創新火花', '推動落地計畫', '從波羅的海連結國際'])}</h3>"
            )
        if roll < 0.75:
            items = "".join(
                f"<li>{self.pick(self.topics)}{self.pick(['交流', '媒合', '研發', '治理'])}"
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


class _BeatWriter(_Writer):
    """Sentences of the other beats: clauses long and short, a sentence of 35 characters without
    a mark, questions, semicolon lists, book-title marks, scores, temperatures, an English
    paragraph, parentheses; the blocks (lists, tables, headings) as :class:`_Writer` makes them."""

    topics = TOPICS_2

    def record(self, text: str) -> str:
        self.numbers.append(text)
        return text

    def official(self) -> str:
        if self.rng.random() < 0.2:
            self.latin.append("Jensen Huang")
            return "黃仁勳（Jensen Huang）"
        return self.pick(PEOPLE_2)

    def body(self) -> str:
        zh, en = self.rng.choice(ORGS_2)
        if self.rng.random() < 0.4:
            self.latin.append(en)
            return f"{zh}（{en}）"
        return zh

    def sentence(self) -> str:
        r = self.rng
        place, other, topic = self.pick(PLACES_2), self.pick(PLACES_2), self.pick(TOPICS_2)
        degrees = self.record(f"攝氏 {r.randint(6, 15)} 度")
        share = self.record(f"{r.randint(1, 9)}.{r.randint(10, 99)}%")
        money = self.record(f"NT${r.randint(1, 99)},{r.randint(100, 999)}")
        count = self.record(f"{r.randint(12, 980)} 例")
        forms = [
            f"{self.body()}今天上午發布颱風海上警報，預估暴風圈將於明天清晨接觸{place}陸地，"
            f"請民眾嚴加戒備。",
            f"受颱風外圍環流影響，{place}、{other}山區今明兩天有豪雨發生機率，累積雨量可能超過"
            f" {self.record(f'{r.randint(200, 800)} 毫米')}，民眾應避免前往山區及海邊。",
            f"氣象專家{self.official()}指出，這波冷空氣強度不如預期，但清晨低溫仍可能降到"
            f"{degrees}左右，早出門的民眾要注意保暖",
            f"疾管署今天公布，上週國內新增 {count}本土流感併發重症，其中以 65 歲以上長者占多數，"
            f"提醒高風險族群盡速接種疫苗。",
            f"衛福部長{self.official()}說明，新制上路後，民眾就醫的部分負擔將調整為每次 {money}，"
            f"持慢性病連續處方箋者則不受影響。",
            f"交通部表示，連假期間國道將實施高乘載管制，{self.record('上午 7 時至中午 12 時')}"
            f"間{place}至{other}路段僅開放乘載 3 人以上的小客車通行。",
            f"臺鐵公司坦言，受號誌系統故障影響，今天上午共有"
            f" {self.record(f'{r.randint(8, 60)} 班')}列車延誤，"
            f"最長延誤約 {self.record(f'{r.randint(20, 95)} 分鐘')}，通勤族怨聲載道。",
            f"114 學年度大學分發入學今天放榜，錄取率為 {share}，較去年略降，招生缺額則集中在"
            f"私立科技大學。",
            f"教育部長{self.official()}強調，面對少子化衝擊，政府將以退場與轉型並行的方式協助"
            f"學校，確保學生受教權不受影響。",
            f"立法院今天三讀通過《{self.pick(['食品安全衛生管理法', '道路交通管理處罰條例'])}》"
            f"修正草案，明定業者未依規定標示者，最高可處 {money}罰鍰。",
            "在野黨團質疑，行政院提出的特別預算編列浮濫，要求逐項說明用途；若未獲回應，"
            "將在程序委員會杯葛相關議案。",
            f"主計總處上修今年經濟成長率預測至 {share}，主因是 AI 伺服器出口暢旺，帶動民間投資"
            f"同步成長。",
            f"中央銀行理監事會決議利率維持不變，總裁{self.official()}會後表示，將持續關注房市"
            f"信用管制的成效，必要時不排除再推出新措施。",
            f"{self.official()}今天抵臺，他在接受媒體訪問時說：「臺灣是全球 AI 供應鏈的核心，"
            f"我們會持續在這裡投資。」",
            f"中華隊在冠軍戰以 {self.record(f'{r.randint(2, 9)} 比 {r.randint(0, 1)}')}擊敗日本，"
            f"隊史首度奪下世界級成人賽事冠軍，全國球迷為之瘋狂🎉",
            f"兩廳院今年的藝術節共推出 {self.record(f'{r.randint(20, 60)} 檔')}節目，其中包括來自"
            f"德國、法國與日本的跨國製作，售票狀況相當踴躍。",
            f"金馬獎最佳劇情長片由《{self.pick(['鬼才之道', '小雁與吳愛麗', '我家的事'])}》奪得，"
            f"導演在台上哽咽說：「謝謝所有一路陪伴我們的人。」",
            "這項由地方政府與民間企業共同出資興建的大型物流園區預計在明年底前完工啟用並創造大量"
            "在地就業機會。",
            "天氣晴，氣溫回升，空氣品質良好，適合戶外活動。",
            f"為什麼油價又漲了？經濟部解釋，國際原油價格連續三週走高，中油依公式調整，"
            f"{place}地區加油站今晚起即將排隊。",
            f"根據勞動部統計，今年上半年平均月薪為 {money}（不含加班費與年終獎金），實質薪資則因"
            f"物價上漲而微幅減少。",
            "此次補助分為三類：一是青年首購貸款；二是租屋補貼；三是社會住宅優先承租資格。",
            f"The Ministry of Digital Affairs said the new rules, which take effect on "
            f"{self.record('January 1')}, will require platforms with more than "
            f"{self.record('2.3 million')} users to publish transparency reports twice a year.",
            f"{self.body()}研究團隊發現，{topic}相關政策若能提早規劃，可望減少 {share}的社會成本，"
            f"相關成果已刊登於國際期刊《Nature》。",
            f"長照 3.0 規劃將在 {self.record('2026 年')}上路，{place}縣府表示會增設日照中心，"
            f"讓長輩在家附近就能獲得照顧。",
            f"{place}縣長{self.pick(PEOPLE_2)}今天視察災區，承諾在兩週內完成道路"
            f"搶通，並爭取中央補助 {self.record(f'{r.randint(2, 30)} 億元')}重建經費。",
        ]
        return r.choice(forms)


def broad_articles(count: int = 160, *, seed: int = 1212) -> list[Generated]:
    """``count`` articles of the other beats (weather, health, transport, schools, the
    legislature, the economy, sports, culture), a quarter short; deterministic for ``seed``.
    :func:`articles` is the seed's beat, city diplomacy, kept as it was so that the tests built
    on it stay as they are."""
    rng = random.Random(seed)
    out = []
    start = datetime(2025, 10, 1, 1, 0, tzinfo=UTC)
    for i in range(count):
        w = _BeatWriter(rng)
        title = rng.choice(
            [
                f"{w.pick(PLACES_2)}豪雨特報　{w.pick(PLACES_2)}山區慎防坍方",
                f"{w.pick(TOPICS_2)}新制明年上路！一次看懂 5 大重點",
                f"經濟成長率上修至 3.1%　{w.pick(PEOPLE_2)}：AI 出口是關鍵",
                "中華隊奪冠！全臺球迷徹夜狂歡",
                f"《{w.pick(['食品安全衛生管理法', '道路交通管理處罰條例'])}》三讀"
                "　違者最高罰 300 萬",
            ]
        )
        if rng.random() < 0.15:
            title = w.pick(LABELS) + title
        blocks = [f"<p>新聞視界時報 記者 {w.pick(PEOPLE)} 整理報導</p>"]
        if rng.random() < 0.25:
            blocks.append(w.paragraph(1))
        else:
            blocks += [w.block() for _ in range(rng.randint(3, 9))]
        categories = tuple(
            rng.sample(["生活", "健康 醫療", "交通", "教育", "政治", "財經", "體育"], 2)
        )
        out.append(
            Generated(
                key=f"beat-{i}",
                title=title,
                html="\n".join(blocks),
                categories=categories,
                published=start + timedelta(minutes=11 * i),
                numbers=w.numbers,
                latin=w.latin,
            )
        )
    return out
