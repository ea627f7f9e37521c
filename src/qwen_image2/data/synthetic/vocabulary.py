"""The words the renderer writes, and the held-out words it never writes.

Training words are common English and Chinese words; pseudo-words (pronounceable letter strings) are mixed
in so that a model learns letters rather than a closed list of word shapes. The held-out words are
disjoint from both (a test checks it); evaluation prompts (evaluation/prompts/) use only them, so that an
OCR score measures rendering of words the model did not train on.
"""

import numpy as np


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


EN_WORDS = _words(
    """
    ABLE ACID AGED ALSO AREA ARMY AWAY BABY BACK BALL BAND BANK BASE BATH BEAR BEAT BEEF BELL BELT BEST
    BIRD BLUE BOAT BODY BOLD BONE BOOK BOOM BORN BOSS BOWL BULK BURN BUSY CAFE CAKE CALL CALM CAMP CARD
    CARE CART CASE CASH CAST CELL CHIP CITY CLUB COAL COAT CODE COLD COOK COOL COPY CORE CORN COST CREW
    CROP DARK DATA DATE DAWN DEAL DEAR DEEP DESK DIAL DIET DISH DOOR DOWN DRAW DROP DRUM DUST DUTY EARN
    EAST EASY EDGE EXIT FACE FACT FAIR FARM FAST FILE FILM FIND FINE FIRE FIRM FISH FLAG FLAT FLOW FOLK
    FOOD FOOT FORM FORT FREE FUEL FULL FUND GAME GATE GEAR GIFT GIRL GLAD GOAL GOLD GOLF GOOD GRAY GREW
    GRID GROW HAIR HALF HALL HAND HARD HEAD HEAT HELP HERO HIGH HILL HOME HOPE HOST HOUR HUGE IDEA INCH
    IRON ITEM JAZZ JOIN JUMP JURY KEEP KIND KING KITE LAKE LAMP LAND LANE LAST LATE LEAD LEAF LEFT LIFE
    LIFT LIKE LINE LINK LION LIST LIVE LOAD LOAN LOCK LOGO LONG LOOK LOOP LORD LOVE LUCK MAIL MAIN MAKE
    MALL MANY MARK MASK MEAL MEAT MENU MILD MILE MIND MINT MISS MODE MOON MORE MOST MOVE MUCH NAME NAVY
    NEAR NECK NEWS NEXT NICE NOTE OPEN OVAL PACE PACK PAGE PAID PAIR PARK PART PASS PAST PATH PEAK PINK
    PLAN PLAY PLUS POEM POLL POOL PORT POST PURE RACE RAIN RANK RARE READ REAL RENT REST RICE RICH RIDE
    RING RISE RISK ROAD ROCK ROLE ROOF ROOM ROOT ROSE RULE SAFE SAIL SALE SALT SAME SAND SAVE SEAT SEED
    SELL SEND SHIP SHOE SHOP SHOW SIDE SIGN SILK SING SITE SIZE SKIN SLOW SNOW SOFA SOFT SOIL SONG SOUP
    STAR STAY STEP STOP SUIT SURE SWIM TALK TALL TASK TEAM TENT TERM TEST TEXT TIDE TIME TOUR TOWN TREE
    TRIP TRUE TUNE TURN TYPE UNIT USER VAST VIEW VOTE WAGE WAIT WALK WALL WARM WAVE WEEK WELL WEST WIDE
    WILD WIND WINE WING WISE WOLF WOOD WORD WORK YARD YEAR ZERO ZONE
    ART BAG BED BOX BUS CAP CAR CAT COW CUP DAY DOG EGG FAN FIX FLY FOX FUN GYM HAT ICE INK JAM JAR JET
    JOB JOY KEY KID LAB LAW LEG MAP MIX MUD NET NUT OAK OIL OWL PAN PEN PET PIE PIG POT RED RUN SEA SKY
    SUN TAX TEA TOP TOY VAN WAX WEB WIN YES ZIP ZOO
    APPLE BEACH BLOOM BOARD BRAIN BREAD BRICK BRUSH CANDY CHAIR CHALK CHEST CLOCK CLOUD COAST COUNT CREAM
    DANCE DELTA DREAM DRINK EARTH EVENT FIELD FLAME FLOOR FRAME FRESH FRUIT GLASS GLOBE GRAIN GRAPE GRASS
    GREEN GUIDE HAPPY HEART HONEY HORSE HOTEL HOUSE JUICE LASER LEMON LIGHT LUNCH MAGIC MANGO MARCH METAL
    MONEY MOUSE MUSIC NIGHT NORTH OCEAN OLIVE OPERA PAINT PAPER PARTY PEACE PEARL PHONE PIANO PILOT PIZZA
    PLANE PLANT PLATE POWER PRIZE QUEEN QUIET RADIO RIVER ROBOT ROUND ROYAL SALAD SCALE SHAPE SHARP SHELF
    SHIRT SLEEP SMART SMILE SOLAR SOUND SOUTH SPACE SPARK SPEED SPOON SPORT STAGE STEAM STONE STORE STORM
    STORY SUGAR SWEET TABLE TIGER TOAST TOOTH TOWER TRACK TRAIN TRUCK UNDER URBAN VALUE VIDEO VOICE WATER
    WHALE WHEAT WHEEL WHITE WORLD YOUNG ZEBRA
    AUTUMN BANANA BASKET BRIDGE BUTTER CAMERA CANDLE CASTLE CENTER CHEESE CIRCLE COFFEE COOKIE CORNER
    DESERT DINNER DOCTOR DRAGON ENERGY FAMILY FLOWER FOREST FUTURE GARDEN GUITAR HEALTH ISLAND JACKET
    JUNGLE LETTER MARKET MIRROR MOTHER NATURE ORANGE PLANET POCKET PUZZLE RABBIT ROCKET SCHOOL SEASON
    SILVER SIMPLE SPRING STREET SUMMER SUNSET TICKET TOMATO TRAVEL VALLEY WINDOW WINTER YELLOW
    """
)

# Never rendered for training: the default held-out evaluation sets draw their words from here only.
HELDOUT_EN = _words(
    """
    AXE BEE BUG DEN ELK FIG GEM HUT KIT MOP ORB RUG TAB VET YAK
    BARN BEAM CLAY COIN CUBE DECK DOME DUCK FERN FROG GLOW HARP HIVE HOOK HULL KNOT LAVA LOFT MAZE MOSS
    NEST PALM PEAR PLUM POND QUIZ REEF ROPE SEAL SLED TUBA VASE VINE WREN YOGA
    ACORN BADGE BENCH CABIN CAMEL CORAL CROWN DAISY EAGLE FEAST FLUTE GECKO HAVEN IVORY KAYAK KOALA LLAMA
    MAPLE MOTEL NOBLE OTTER PANDA PECAN QUILT RAVEN SCARF TULIP VIOLA WAFER
    """
)

ZH_WORDS = _words(
    """
    你好 世界 欢迎 开业 新品 上市 特价 优惠 咖啡 面包 书店 花店 超市 餐厅 酒店 银行 医院 学校 图书馆 公园
    地铁 出口 入口 停车场 禁止 吸烟 安全 小心 注意 营业中 休息 春天 夏天 秋天 冬天 早安 晚安 谢谢 再见 快乐
    生日 新年 中秋 节日 音乐 电影 旅行 美食 茶叶 水果 牛奶 米饭 面条 火锅 饺子 蛋糕 冰淇淋 啤酒 果汁 绿茶
    城市 山水 大海 森林 阳光 月亮 星空 彩虹 雪山 河流 科技 未来 创新 设计 艺术 文化 历史 教育 健康 运动
    会议 报告 计划 目标 成果 数据 市场 产品 服务 团队 工作 学习 生活 梦想 希望 自由 和平 友谊 家庭 朋友
    """
)
HELDOUT_ZH = _words("熊猫 灯笼 风筝 茉莉 剪纸 瓷器 丝绸 竹林 琵琶 书法 京剧 长城 故宫 梅花 荷花 桂花")

_ONSETS = ("B", "BR", "C", "CH", "D", "F", "G", "GR", "H", "J", "K", "L", "M", "N", "P", "PL", "R", "S")
_ONSETS += ("SH", "ST", "T", "TR", "V", "W", "Z")
_VOWELS = ("A", "E", "I", "O", "U", "AI", "EA", "OO", "OU")
_CODAS = ("", "", "N", "R", "S", "T", "X", "ND", "NK", "LL", "MP", "CK", "Y")
# Pseudo-words that are real words nobody wants on a poster, or held-out words, are drawn again.
_AVOID = frozenset(HELDOUT_EN) | frozenset(
    _words("TIT TITS ASS SEX SEXY DAMN HELL PISS POO POOP CUNT DICK COCK FUCK SHIT NAZI KILL RAPE")
)


def pseudo_word(rng: np.random.Generator, max_letters: int = 6) -> str:
    """A pronounceable uppercase letter string of 3..max_letters letters that is not a held-out word."""
    while True:
        word = "".join(
            str(rng.choice(part)) for _ in range(int(rng.integers(1, 3))) for part in (_ONSETS, _VOWELS)
        )
        word += str(rng.choice(_CODAS))
        if 3 <= len(word) <= max_letters and word not in _AVOID:
            return word


def en_word(rng: np.random.Generator, max_letters: int = 7, pseudo: float = 0.25) -> str:
    """A training word (uppercase) of at most `max_letters`; a pseudo-word with probability `pseudo`."""
    if rng.random() < pseudo:
        return pseudo_word(rng, min(max_letters, 6))
    words = [w for w in EN_WORDS if len(w) <= max_letters]
    return str(rng.choice(words))


def zh_word(rng: np.random.Generator, max_chars: int = 3) -> str:
    return str(rng.choice([w for w in ZH_WORDS if len(w) <= max_chars]))


def phrase(rng: np.random.Generator, lang: str, count: int, case: str = "title") -> str:
    """`count` random training words as one phrase: EN joined by spaces in `case`, ZH joined directly."""
    if lang == "zh":
        return "".join(zh_word(rng, 4) for _ in range(count))
    words = [en_word(rng, 9, pseudo=0.1) for _ in range(count)]
    text = " ".join(words)
    return {"upper": text, "title": text.title(), "lower": text.lower(), "sentence": text.capitalize()}[case]
