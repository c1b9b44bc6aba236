"""Rule lexicons and their matcher.

Every P/C rule must find wordings the lexicon does not list word for word (proximity
patterns), survive Whisper's homophones, and leave compliant sentences that share its
vocabulary alone; a QA lead's mistake in the YAML is refused with the file and entry named.
The sentences are written for these tests, not taken from the corpus.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qa_service.detection.lexicon import (
    LEXICON_RULES,
    HitKind,
    LexiconHit,
    LexiconMatcher,
    load_lexicon,
)
from qa_service.errors import LexiconError, QAServiceError

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "lexicons" / "rules"
USER_DICTIONARY = ROOT / "lexicons" / "collection_terms.txt"
# Evidence strong enough to count alone; weaker hits are context for fusion.
EVIDENCE = 0.5


@pytest.fixture(scope="module")
def matcher() -> LexiconMatcher:
    return LexiconMatcher(load_lexicon(RULES_DIR, user_dictionary=USER_DICTIONARY))


def _evidence(matcher: LexiconMatcher, text: str) -> dict[str, list[LexiconHit]]:
    """Non-negated hits of at least EVIDENCE weight, by rule."""
    found: dict[str, list[LexiconHit]] = {}
    for hit in matcher.match(text):
        if not hit.negated and hit.weight >= EVIDENCE:
            found.setdefault(hit.rule, []).append(hit)
    return found


# Varied wordings; several are caught only by a proximity pattern (checked below).
PARAPHRASES = [
    ("P01", "你再拖着不还，你老婆孩子哪天出点意外可别怪我。"),
    ("P01", "我们几个兄弟现在就在你小区门口等着你。"),
    ("P01", "当心你爸妈，他们年纪大了经不起折腾。"),
    ("P01", "你再不还钱，我让你在单位待不下去。"),
    ("P02", "你这人脑袋是不是被驴踢了。"),
    ("P02", "像你这种寄生虫，活着浪费粮食。"),
    ("P02", "你真是个废物，这么点钱都拿不出。"),
    ("P03", "我这边是区法院执行局的，你的案子今天要强制执行。"),
    ("P03", "你再不还，警察马上就去你单位把你带走。"),
    ("P03", "这属于恶意透支，要追究你的刑事责任，你就等着坐牢吧。"),
    ("P04", "法院的传票已经送到你老家村委会了。"),
    ("P04", "我们是律所的，这个案子由我们律师全权处理。"),
    ("P04", "不还的话你的征信就彻底黑了，一辈子都贷不了款。"),
    ("P05", "利息和违约金我这边直接给你抹掉。"),
    ("P05", "不用走银行审批，我私底下帮你分成十二期。"),
    ("P05", "我保证给你办下来零利息。"),
    ("P06", "你帮你儿子把信用卡的钱垫上吧。"),
    ("P06", "你作为家属，有义务帮他把钱还上。"),
    ("P06", "你老公在我们这欠了两万多，一直拖着不还。"),
    ("P06", "你劝劝他赶紧还钱。"),
    ("P07", "我们会天天给你打电话，直到你还钱为止。"),
    ("P07", "以后每天半夜给你打。"),
    ("P07", "我每天都去你公司找你领导聊聊。"),
    ("P08", "我们把你的头像合成到不雅图片上。"),
    ("P08", "你要是还不上，就拿身体抵债吧。"),
    ("P09", "我们会在你们小区贴大字报，让全小区都知道你欠钱不还。"),
    ("P09", "把你欠钱的事发到朋友圈让所有人都看看。"),
    ("P10", "你把钱打到我的支付宝，我给你处理。"),
    ("P10", "电话里不方便说，你加我微信私聊。"),
    ("P10", "你拿现金当面给我就行。"),
    ("C01", "我要去12378投诉你们这种暴力催收。"),
    ("C01", "你叫什么名字，工号多少，我要投诉你。"),
    ("C01", "你们再这样我就找记者曝光。"),
    ("C01", "你这是在恐吓我，我已经录音了。"),
    ("C02", "你们不要再打这个号码了，我跟她没什么关系。"),
    ("C02", "请把我的号码从你们名单里删掉。"),
    ("C03", "我今年被裁员了，现在一点收入都没有。"),
    ("C03", "我老公出车祸在医院躺着，家里钱都用光了。"),
    ("C03", "公司倒闭了，我现在真的还不起。"),
]

# One sentence per rule that no listed term covers: only a proximity pattern finds it.
PATTERN_ONLY = [
    ("P01", "你再拖着不还，你老婆孩子哪天出点意外可别怪我。"),
    ("P02", "像你这种寄生虫，活着浪费粮食。"),
    ("P03", "你再不还，警察马上就去你单位把你带走。"),
    ("P04", "我们合作的律师团队下周就会出面。"),
    ("P05", "不用审批，我私底下帮你分成十二期。"),
    ("P06", "你帮你儿子把信用卡的钱垫上吧。"),
    ("P07", "我每天都去你公司找你领导聊聊。"),
    ("P08", "我们把你的头像合成到不雅图片上。"),
    ("P09", "把你欠钱的事发到朋友圈。"),
    ("P10", "你把钱打到我的银行卡上。"),
    ("C01", "我要向上级部门反映你们。"),
    ("C02", "请把我的号码从你们名单里删掉。"),
    ("C03", "我们厂里工资停了好几个月。"),
]

# Whisper's homophones and near misses; the rule must be found through sound.
MISHEARD = [
    ("P01", "你老婆孩子出点异外可别怪我。"),  # 意外
    ("P02", "你这个捞赖，欠钱不还。"),  # 老赖
    ("P03", "我是国安局的，你的事已经立案了。"),  # 公安局, one syllable off
    ("P03", "法院已经批了代捕令。"),  # 逮捕令
    ("P04", "律师寒已经寄到你单位了。"),  # 律师函
    ("P05", "剩下的我帮你见面了。"),  # 减免
    ("P06", "你是他家人，你就得替他环。"),  # 还
    ("P07", "你不接我就一直打，打到你街为止。"),  # 接
    ("P08", "把你照片P成罗照。"),  # 裸照
    ("P09", "再不还钱就把你报光到网上。"),  # 曝光
    ("P10", "你加我私人威信。"),  # 微信
    ("C01", "我要投素你们。"),  # 投诉
    ("C02", "以后别在打了。"),  # 再
    ("C03", "我现在湿业了。"),  # 失业
]

# Compliant sentences sharing the rule's vocabulary: no evidence for that rule.
COMPLIANT = [
    ("P01", "我们不会上门打扰您，只是提醒您按时还款。"),
    ("P01", "请您注意保护个人信息，小心被骗。"),
    ("P01", "我们不会派人去您单位，请放心。"),
    ("P02", "请问是不是您本人接听？"),
    ("P02", "我不是人工客服，是智能语音助手。"),
    ("P02", "您别被骗子骗了，我们不会让您转账到个人账户。"),
    ("P03", "如果一直不处理，银行可能会依法通过诉讼途径解决。"),
    ("P03", "请您不要相信任何自称公检法的电话。"),
    ("P03", "我们的办公安排已经调整。"),
    ("P04", "逾期记录会按规定报送征信系统，可能会影响您的个人信用。"),
    ("P04", "我们不会对您的征信做任何修改。"),
    ("P04", "有问题您也可以咨询律师。"),
    ("P05", "您可以向银行申请减免部分利息，最终以银行审批结果为准。"),
    ("P05", "具体能否减免需要银行审核，我这边没法给您保证。"),
    ("P05", "如果您确实有困难，可以向银行申请分期还款。"),
    ("P05", "银行有免息分期活动，您可以申请。"),
    ("P06", "麻烦您转告他方便时回个电话，具体事情我们只能和他本人沟通。"),
    ("P06", "他的具体情况我们不方便透露。"),
    ("P06", "帮他还是不帮，您自己决定。"),
    ("P07", "我们这几天一直打您电话都没人接。"),
    ("P07", "您放心，我们不会每天给您打电话。"),
    ("P07", "我帮您找一下我们主管。"),
    ("P07", "我知道您的位置不方便接电话。"),
    ("P08", "请上传清晰的证件照片。"),
    ("P08", "我们的还款渠道是开放的。"),
    ("P09", "您的个人信息我们会严格保密，不会公开。"),
    ("P09", "还款成功后我们会给您发短信确认。"),
    ("P10", "请您通过银行官方渠道还款，不要转账给任何个人。"),
    ("P10", "您可以在支付宝里搜索银行官方公众号还款。"),
    ("P10", "请把钱存到您本人的信用卡还款账户。"),
    ("C01", "我不会投诉你们的，放心吧。"),
    ("C01", "我的电话是13812345678。"),
    ("C02", "我是他妈妈，你有什么事跟我说吧。"),
    ("C02", "他不在家，我让他回头给你们回电话。"),
    ("C03", "我没有失业，就是忘了还。"),
    ("C03", "我现在工作挺稳定的，下个月一定还。"),
]


@pytest.mark.parametrize(("rule", "text"), PARAPHRASES)
def test_varied_wordings_are_found(matcher: LexiconMatcher, rule: str, text: str) -> None:
    assert rule in _evidence(matcher, text)


@pytest.mark.parametrize(("rule", "text"), PATTERN_ONLY)
def test_proximity_patterns_catch_wordings_no_term_lists(
    matcher: LexiconMatcher, rule: str, text: str
) -> None:
    kinds = {hit.kind for hit in _evidence(matcher, text).get(rule, [])}
    assert kinds == {HitKind.PROXIMITY}


@pytest.mark.parametrize(("rule", "text"), MISHEARD)
def test_homophones_are_found_through_pinyin(matcher: LexiconMatcher, rule: str, text: str) -> None:
    hits = _evidence(matcher, text).get(rule, [])
    assert any(hit.via != "chars" for hit in hits), hits


@pytest.mark.parametrize(("rule", "text"), COMPLIANT)
def test_compliant_sentences_sharing_vocabulary_are_not_evidence(
    matcher: LexiconMatcher, rule: str, text: str
) -> None:
    assert rule not in _evidence(matcher, text)


def test_every_rule_of_the_catalogue_has_reviewable_entries(matcher: LexiconMatcher) -> None:
    lexicon = matcher.lexicon
    assert set(lexicon.rules) == set(LEXICON_RULES)
    assert len(LEXICON_RULES) == 13
    for entry in lexicon.entries:
        assert any("\u4e00" <= c <= "\u9fff" for c in entry.why), entry  # a Chinese rationale
        assert 0 <= entry.weight <= 1
    assert lexicon.user_words  # the jieba dictionary was read


def test_a_hit_carries_what_a_reviewer_needs(matcher: LexiconMatcher) -> None:
    text = "好的，OK，律师寒已经寄出。"
    hit = next(h for h in matcher.match(text) if h.entry_id == "legal_documents")
    assert (hit.rule, hit.kind, hit.via) == ("P04", HitKind.PINYIN, "pinyin")
    assert (hit.start, hit.end, hit.matched_text, hit.term) == (6, 9, "律师寒", "律师函")
    assert hit.why and hit.weight < matcher.lexicon.entry("P04", "legal_documents").weight
    for hit in matcher.match("你是他家人，你就得替他还。我们的人已经到你家楼下了。"):
        assert (
            hit.matched_text
            == "你是他家人，你就得替他还。我们的人已经到你家楼下了。"[hit.start : hit.end]
        )


def test_negation_cancels_a_hit_and_says_which_word_did(matcher: LexiconMatcher) -> None:
    hits = [h for h in matcher.match("我们不会派人上门。") if h.rule == "P01"]
    assert hits and all(h.negated and h.negated_by == "不会" for h in hits)


@pytest.mark.parametrize(
    "text",
    [
        "别逼我们派人上门。",  # 别 + 逼: a threat, not a prohibition
        "要不要我们派人上门？",  # 要不要 is a question
        "你别以为我们不敢派人上门。",  # 别以为 is one word; 不敢 is not a listed cue
        "你也不想你孩子放学路上出点什么事吧？",  # 不想…吧: a rhetorical question
    ],
)
def test_threats_dressed_as_negations_still_count(matcher: LexiconMatcher, text: str) -> None:
    assert "P01" in _evidence(matcher, text)


def test_a_negation_reaches_over_a_coverb_phrase_to_its_verb(matcher: LexiconMatcher) -> None:
    # 不会 governs 发到 across "把您的欠款情况" (a 把-phrase), beyond the plain 4-char window.
    hits = [h for h in matcher.match("我们不会把您的欠款情况发到任何群里。") if h.rule == "P09"]
    assert hits and all(h.negated and h.negated_by == "不会" for h in hits)
    assert "P09" in _evidence(matcher, "你不还钱，我就把您的欠款情况发到任何群里。")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("你今天还三千，剩下的银行就不追究了。", True),  # a waiver worded as what won't happen
        ("利息和违约金银行不会再找你要了。", True),
        ("剩余欠款还清之后银行就不会再催您了。", False),  # a fact about paying in full
    ],
)
def test_a_waiver_can_be_worded_as_what_the_bank_will_not_do(
    matcher: LexiconMatcher, text: str, expected: bool
) -> None:
    assert ("P05" in _evidence(matcher, text)) is expected


def test_exceptions_excuse_their_sentence_only(matcher: LexiconMatcher) -> None:
    same = [h for h in matcher.match("我帮你把利息免了，具体以银行审批为准。") if h.rule == "P05"]
    assert same and all(h.negated and h.negated_by == "以银行审批为准" for h in same)
    assert "P05" in _evidence(matcher, "我帮你把利息免了。以后的事以银行审批为准。")


def test_a_negated_exception_excuses_nothing(matcher: LexiconMatcher) -> None:
    assert "P10" in _evidence(matcher, "你别走银行官方渠道了，直接转给我个人。")


@pytest.mark.parametrize(
    ("text", "rule", "excused"),
    [
        # The compliant wording, then a turn against it: the excuse does not carry over.
        ("官方渠道到账比较慢，所以你直接打到我个人卡上。", "P10", False),
        ("原则上以银行审批为准，不过我这边可以直接帮你把利息免了。", "P05", False),
        # Without the turn, the excuse stands for the whole sentence.
        ("请走官方渠道还款，不要相信任何让你转到个人账户的说法。", "P10", True),
        ("我帮你申请把利息免了，具体以银行审批为准。", "P05", True),
    ],
)
def test_an_exception_the_agent_turns_against_excuses_nothing_after_the_turn(
    matcher: LexiconMatcher, text: str, rule: str, excused: bool
) -> None:
    hits = [h for h in matcher.match(text) if h.rule == rule]
    assert hits
    assert all(h.negated for h in hits) is excused


@pytest.mark.parametrize(
    ("text", "rule", "stated"),
    [
        # The compliant wording alone: a denial for the fusion, one hit per rule.
        ("请通过手机银行还款，不要转账给任何个人。", "P10", "手机银行"),
        ("减免需要以银行审批为准，您先还最低还款额。", "P05", "以银行审批为准"),
        # Turned against later in the turn, or negated: no evidence of compliance.
        ("官方渠道到账太慢了，所以这次你直接扫码给我。", "P10", None),
        ("你别走银行官方渠道了。", "P10", None),
    ],
)
def test_a_stated_exception_is_returned_as_denial_evidence(
    matcher: LexiconMatcher, text: str, rule: str, stated: str | None
) -> None:
    from qa_service.detection.detect import excused_only, lexicon_evidence
    from qa_service.detection.lexicon import EXCEPTION_WEIGHT

    hits = matcher.match(text)
    found = [h for h in hits if h.rule == rule and h.kind is HitKind.EXCEPTION]
    if stated is None:
        assert not found
        return
    assert [(h.matched_text, h.negated, h.weight) for h in found] == [
        (stated, True, EXCEPTION_WEIGHT)
    ]
    assert lexicon_evidence(hits)[1][rule] == EXCEPTION_WEIGHT
    assert rule in excused_only(hits)


def test_an_exception_that_cancels_the_rules_words_adds_no_second_hit(
    matcher: LexiconMatcher,
) -> None:
    from qa_service.detection.detect import excused_only

    hits = [
        h for h in matcher.match("我帮你申请把利息免了，具体以银行审批为准。") if h.rule == "P05"
    ]
    assert hits and all(h.negated and h.kind is not HitKind.EXCEPTION for h in hits)
    assert "P05" not in excused_only(hits)


@pytest.mark.parametrize(
    "text",
    [
        "我这边偷偷给你办个免息分期，不用银行批。",  # 用银行批 sounds like the excuse 要银行批
        "分期每月五百给你定了，无需另行审批。",  # the bypass, formal, after the offer
    ],
)
def test_an_approval_said_to_be_unnecessary_is_a_bypass_not_an_excuse(
    matcher: LexiconMatcher, text: str
) -> None:
    assert "P05" in _evidence(matcher, text)


def test_formal_transfer_verbs_reach_a_personal_account(matcher: LexiconMatcher) -> None:
    assert "P10" in _evidence(matcher, "请您将本期欠款汇至以下个人账户，户名王某。")
    assert "P10" not in _evidence(matcher, "请您将本期欠款汇至您本人的信用卡还款账户。")


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("我们马上门口见。", "P01"),  # 上门 across 马上|门口
        ("其他人都按时还了。", "P06"),  # 他 inside 其他
        ("麻烦您抓紧时间处理。", "P03"),  # 抓 inside 抓紧
        ("我不是人工客服。", "P02"),  # 不是人 across 人工
    ],
)
def test_terms_do_not_match_across_word_boundaries(
    matcher: LexiconMatcher, text: str, rule: str
) -> None:
    assert rule not in _evidence(matcher, text)


def test_a_sound_match_fused_into_a_wrong_word_is_weak_evidence(matcher: LexiconMatcher) -> None:
    # "P成裸照" heard as 承诺照: 诺照 sounds like 裸照 (n/l) but cuts into 承诺. Kept, too
    # weak to count alone, for fusion to weigh against the classifier.
    hits = [h for h in matcher.match("你的自拍我拿去承诺照挂网上") if h.rule == "P08"]
    assert [(h.matched_text, h.term, h.via) for h in hits] == [("诺照", "裸照", "across_words")]
    assert 0.3 <= hits[0].weight < EVIDENCE


@pytest.mark.parametrize(
    "text",
    [
        "我们承诺照常办理分期申请。",  # 诺照 cuts into 承诺 and into 照常: it is those words
        "请按承诺照顾好家里的开支。",
        "您的情况我们马上门口登记。",  # written as such, 上门 across words is nothing at all
    ],
)
def test_a_match_cutting_into_everyday_words_on_both_sides_is_no_evidence(
    matcher: LexiconMatcher, text: str
) -> None:
    assert not [h for h in matcher.match(text) if h.rule in ("P08", "P01")]


@pytest.mark.parametrize(
    ("text", "rule", "term"),
    [
        # A grammatical word where the term has a content syllable is that word.
        ("我会把这个情况如实反映给银行。", "P05", "八折"),
        ("分期我可以帮您报上去，批不批要看银行。", "P03", "批捕"),
        ("这个名额我先帮您留着。", "P05", "六折"),
        ("您对这笔欠款有疑问的话，我帮您提交核实。", "P05", "对折"),
        # A fuzzy rhyme sharing only a pronoun with the term is another word.
        ("我们需要核实你的身份信息。", "P07", "呼死你"),
        # Dictionary words a term sounds like (the entry's ignore list).
        ("您看这样行不行，先还最低还款额。", "P01", "信不信"),
    ],
)
def test_sound_coincidences_in_everyday_words_are_no_evidence(
    matcher: LexiconMatcher, text: str, rule: str, term: str
) -> None:
    assert not [h for h in matcher.match(text) if h.rule == rule and h.term == term]


def test_a_term_heard_cutting_into_a_word_is_weak_evidence(matcher: LexiconMatcher) -> None:
    # 不要联系 sounds like 不要脸 + 系: the heard 不要联 ends inside 联系.
    hits = [
        h
        for h in matcher.match("如果您希望我们以后不要联系您的家人，我可以备注。")
        if h.rule == "P02"
    ]
    assert hits and all(h.via == "across_words" and h.weight < EVIDENCE for h in hits)


def test_homophone_swaps_of_shi_and_zai_still_count(matcher: LexiconMatcher) -> None:
    # 是/事 and 在/再 are Whisper's commonest swaps; they stay sound evidence.
    assert _evidence(matcher, "你这个已经是刑是案件了，要抓人的").get("P03")


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        # P05: the bank's approval taken over by the agent or by "the company".
        ("P05", "停息挂账我这儿就能办，不用你去银行。"),
        ("P05", "你那个分期我已经帮你办好了，不用等银行审核。"),
        ("P05", "经我方研究决定，对您的逾期利息及违约金予以全额减免。"),
        ("P05", "我们现在搞活动，还本金送全部利息减免。"),
        ("P05", "本人可代表银行向您承诺，结清本金后其余欠款不再追偿。"),
        # P10: an amount "to me personally", cash or a POS machine brought over, another app.
        ("P10", "你先转五百给我个人，算是定金。"),
        ("P10", "请将还款金额汇入以下个人账户。"),
        ("P10", "你明天在楼下等我，我带POS机过去刷。"),
        ("P10", "你下载个钉钉，我们在上面沟通。"),
        # P03: custody in slang.
        ("P03", "再拖两天，你就得戴上银手镯了。"),
        ("P03", "别等到局子里的人请你喝茶才后悔。"),
        # Round 10:
        # P01: harm disowned in advance, a scene at the door.
        ("P01", "到时候我们的人过去，万一起了肢体冲突，那可是后果自负。"),
        ("P01", "下个月你公司门口可就热闹了。"),
        # P03: custody and seizure in slang or as a fact.
        ("P03", "再拖下去，就该戴大檐帽的来找你了。"),
        ("P03", "你名下那套房子已经被查封了。"),
        ("P03", "我这边是专案组的，你要配合。"),
        # P04: speaking as a lawyer; records at the agent's will.
        ("P04", "作为本案的代理律师，我通知你尽快处理。"),
        ("P04", "你今天结清，我这边可以把那些不良记录删掉。"),
        ("P04", "我们事务所的律师已经接手你的案子。"),
        ("P04", "你的信用分我这边都能一键清零。"),
        ("P04", "你已经被我们报进行业黑名单了。"),
        ("P03", "我们是政府授权的清收单位，你必须配合。"),
        # P10: someone else's card, red packets.
        ("P10", "钱你转到我们主管的支付宝上就行。"),
        ("P10", "你发红包给我也行，分几次发。"),
        # C01: recording handed up, the name written down, taking it upstairs.
        ("C01", "这通电话我录着音呢，回头交给你们领导听听。"),
        ("C01", "你是几号我拿笔记一下"),  # as transcribed, without the comma
        ("C01", "我要找你们总行说说这个事。"),
        ("C01", "我已经委托律师了，咱们走法律途径。"),
        # C03: the business folded.
        ("C03", "我那个饭店年初就黄了，现在一分收入没有。"),
        ("C03", "本人目前不具备还款能力。"),
    ],
)
def test_concept_frames(matcher: LexiconMatcher, rule: str, text: str) -> None:
    assert _evidence(matcher, text).get(rule), text


@pytest.mark.parametrize(
    "text",
    [
        "分期能不能批不是我说了算，要看银行审批。",
        "减免的事不是我做主，得银行来定。",
        "利息的事我负责帮您反映给银行。",
        "您的分期申请我已经提交了，结果以银行审核为准。",
    ],
)
def test_the_agent_deferring_to_the_bank_is_not_p05(matcher: LexiconMatcher, text: str) -> None:
    assert not _evidence(matcher, text).get("P05"), text


def test_customer_saying_police_is_a_complaint_signal_not_impersonation(
    matcher: LexiconMatcher,
) -> None:
    # Who said it is decided by speaker gating later; the P03 lexicon must not be what
    # calls a customer's 报警 impersonation, and C01 must see it.
    found = _evidence(matcher, "我要报警")
    assert "C01" in found and "P03" not in found
    found = _evidence(matcher, "你们这是威胁我，我要曝光你们")
    assert "C01" in found and not {"P01", "P09"} & set(found)


def test_weak_hardship_wording_is_kept_weak(matcher: LexiconMatcher) -> None:
    hits = [h for h in matcher.match("最近手头有点紧，下个月发工资再还可以吗？") if h.rule == "C03"]
    assert hits and max(h.weight for h in hits) < EVIDENCE


def test_full_width_and_upper_case_letters_match(matcher: LexiconMatcher) -> None:
    assert "P08" in _evidence(matcher, "把你照片Ｐ成裸照")
    assert "P10" in _evidence(matcher, "加我VX聊")


def test_empty_text_has_no_hits(matcher: LexiconMatcher) -> None:
    assert matcher.match("") == []
    assert matcher.match("。。，") == []


# --- validation ------------------------------------------------------------------------------


def _lexicon_copy(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES_DIR, target)
    return target


GOOD_ENTRY = "  - id: waiver\n    why: 测试理由\n    terms: [免掉]\n"


@pytest.mark.parametrize(
    ("file", "content", "named"),
    [
        ("P11.yaml", "rule: P11\nterms:\n" + GOOD_ENTRY, ["P11.yaml", "P11"]),
        ("P05.yaml", "rule: P06\nterms:\n" + GOOD_ENTRY, ["P05.yaml", "P06"]),
        (
            "P05.yaml",
            "rule: P05\nterms:\n  - id: waiver\n    why: 测试\n    terms: []\n",
            ["P05.yaml", "waiver", "为空"],
        ),
        ("P05.yaml", "rule: P05\nterms: [unclosed\n", ["P05.yaml"]),
        (
            "P05.yaml",
            "rule: P05\nterms:\n  - id: waiver\n    terms: [免掉]\n",
            ["P05.yaml", "waiver", "why"],
        ),
        (
            "P05.yaml",
            "rule: P05\nterms:\n" + GOOD_ENTRY + "    weight: 1.5\n",
            ["P05.yaml", "waiver", "weight"],
        ),
        (
            "P05.yaml",
            "rule: P05\nterms:\n" + GOOD_ENTRY + "    wieght: 0.5\n",
            ["P05.yaml", "waiver", "wieght"],
        ),
        (
            "P05.yaml",
            "rule: P05\nterms:\n" + GOOD_ENTRY + GOOD_ENTRY,
            ["P05.yaml", "waiver", "重复"],
        ),
        (
            "P05.yaml",
            "rule: P05\npatterns:\n  - id: near\n    why: 测试\n    slots: ['@nope', [免掉]]\n",
            ["P05.yaml", "near", "@nope"],
        ),
        (
            "P05.yaml",
            "rule: P05\npatterns:\n  - id: near\n    why: 测试\n    slots: [[免掉]]\n",
            ["P05.yaml", "near", "两个槽"],
        ),
        (
            "P05.yaml",
            "rule: P05\npatterns:\n  - id: near\n    why: 测试\n    order: random\n"
            "    slots: [[我], [免掉]]\n",
            ["P05.yaml", "near", "order"],
        ),
    ],
)
def test_lexicon_mistakes_are_refused_with_file_and_entry_named(
    tmp_path: Path, file: str, content: str, named: list[str]
) -> None:
    directory = _lexicon_copy(tmp_path)
    (directory / file).write_text(content, encoding="utf-8")
    with pytest.raises(LexiconError) as caught:
        load_lexicon(directory)
    for name in named:
        assert name in caught.value.message
    assert isinstance(caught.value, QAServiceError)
    assert caught.value.as_dict()["code"] == "invalid_lexicon"
    assert caught.value.context["file"] == Path(file).name


def test_a_missing_rule_file_is_an_error_not_a_silent_gap(tmp_path: Path) -> None:
    directory = _lexicon_copy(tmp_path)
    (directory / "C03.yaml").unlink()
    with pytest.raises(LexiconError, match="C03"):
        load_lexicon(directory)
    assert "C03" not in load_lexicon(directory, require_all=False).rules


def test_a_broken_user_dictionary_is_refused(tmp_path: Path) -> None:
    words = tmp_path / "terms.txt"
    words.write_text("# 注释\n老赖 300 n\n黑户 很多 n\n", encoding="utf-8")
    with pytest.raises(LexiconError, match="第 3 行"):
        load_lexicon(RULES_DIR, user_dictionary=words)
    with pytest.raises(LexiconError, match="missing.txt"):
        load_lexicon(RULES_DIR, user_dictionary=tmp_path / "missing.txt")


def test_gathering_people_to_the_workplace_is_a_threat_not_workplace_harassment(
    matcher: LexiconMatcher,
) -> None:
    # 找 next to the workplace or a contact is seeking them out (P07); 找几个人 … 你单位 is
    # gathering people to confront the debtor there (P01), not calling the workplace.
    assert "P07" in _evidence(matcher, "你再拖着，我就去找你老板说说这事。")
    gang = _evidence(matcher, "惹急了我找几个兄弟去你单位门口等你。")
    assert "P07" not in gang and "P01" in gang


# --- concept frames (actor + act + object, negation-aware) ------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "剩下的钱我给你兜着，你别管了",  # the agent absorbs the remainder
        "利息这一块，我们内部可以冲掉",
        "你还个零头，账就平了",  # part payment settles everything
        "本金给你打七折",  # a discount on the debt
        "分三十期，中间一分利息都不会收",  # interest-free instalments promised
        "剩下的不会再有人追你了",  # waiver worded as what will not happen
    ],
)
def test_an_unauthorised_promise_in_any_wording_is_p05(matcher: LexiconMatcher, text: str) -> None:
    assert "P05" in _evidence(matcher, text)


@pytest.mark.parametrize(
    "text",
    [
        "我没法给您打折，减免要向银行申请",
        "分期期间是否计息以审批为准",
        "您的欠款是一万二，其余是利息和违约金",
        "您先还一部分，剩下的下个月按账单还",
    ],
)
def test_compliant_statements_about_waivers_are_not_p05(matcher: LexiconMatcher, text: str) -> None:
    assert "P05" not in _evidence(matcher, text)


def test_publishing_is_p09_but_a_promise_not_to_publish_is_denied(matcher: LexiconMatcher) -> None:
    assert "P09" in _evidence(matcher, "你的事明天就在你们小区群里公开")
    hits = [
        h
        for h in matcher.match("我们不会在您的朋友圈、微信群或者单位公开您的任何信息")
        if h.rule == "P09"
    ]
    assert hits and all(h.negated for h in hits)


def test_harassment_and_detention_euphemisms(matcher: LexiconMatcher) -> None:
    assert "P07" in _evidence(matcher, "你家的座机以后就别想消停了")
    assert "P07" in _evidence(matcher, "拉黑也没用，我们有的是号码")
    assert "P03" in _evidence(matcher, "你这个够判了，抓进去一点不冤")
    assert "P03" not in _evidence(matcher, "我们不是公安，也没有执法权")


def test_customer_hardship_and_complaint_in_everyday_words(matcher: LexiconMatcher) -> None:
    assert "C03" in _evidence(matcher, "我连下个月的饭钱都没着落")
    assert "C03" in _evidence(matcher, "刚做完手术，还在家躺着")
    assert "C01" in _evidence(matcher, "把你们主管的名字报给我")


def test_copula_and_reported_denials_negate() -> None:
    from qa_service.detection.detect import lexicon_evidence
    from qa_service.detection.lexicon import LexiconMatcher
    from qa_service.detection.lexicon_schema import load_lexicon

    root = Path(__file__).resolve().parents[2]
    m = LexiconMatcher(
        load_lexicon(
            root / "lexicons" / "rules",
            user_dictionary=root / "lexicons" / "collection_terms.txt",
        )
    )

    def standing(text: str) -> set[str]:
        return set(lexicon_evidence(m.match(text))[0])

    # 不是 / 没说 deny what follows: an agent saying what they are not, a customer saying
    # what they did not say, is no impersonation and no complaint signal.
    assert "P03" not in standing("我们是受银行委托的催收机构，不是公安，这个请您放心。")
    assert "C01" not in standing("我没说要投诉啊，就是问问怎么回事。")
    assert "C03" not in standing("我不是没钱，就是一直忘了。")
    # ... but a rhetorical 不是…是什么 / 不是…吗 asserts it.
    assert "C01" in standing("你们一天打我二十个电话，这不是骚扰是什么？")


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        ("P03", "我们公司没有执法权限，也不会冒充任何机关。"),
        ("P04", "您问我能不能把逾期记录删掉？这个谁也删不了。"),
        ("P04", "作为持卡人，您有权向征信中心提出异议。"),
        ("P04", "我们发不了律师函，正式的函件只能由银行出具。"),  # cannot issue: a negation
        ("P10", "不要把钱转到我们主管或者任何人的个人支付宝上。"),
        ("C03", "我的店上个月装修停了几天，现在重新开张了。"),
        ("C01", "你们公司全称是什么？我想在手机银行里核实一下。"),
    ],
)
def test_round_10_frames_leave_compliant_wording_alone(
    matcher: LexiconMatcher, rule: str, text: str
) -> None:
    assert not _evidence(matcher, text).get(rule), text


def test_cannot_issue_negates_but_cannot_escape_threatens(matcher: LexiconMatcher) -> None:
    hits = [h for h in matcher.match("我们发不了律师函。") if h.rule == "P04"]
    assert hits and all(h.negated and h.negated_by == "发不了" for h in hits)
    assert _evidence(matcher, "你跑不了坐牢。").get("P03")  # 跑不了 is no negation
