from newsrag import text


def test_glosses_removed_real_parentheses_kept():
    raw = "武進(jìn)新聞網(wǎng)訊(記者 張可馨)會(huì)議討論了《人才引進(jìn)政策(試行)》和人工智能(AI)的(de)應用。"
    out = text.remove_glosses(raw)
    assert out == "武進新聞網訊(記者 張可馨)會議討論了《人才引進政策(試行)》和人工智能(AI)的應用。"


def test_clean_moves_editor_line_to_metadata_and_normalises_width():
    cleaned, meta = text.clean("第一段,ＡＢＣ１２３。\n\n責編: 莊恩慧\n（完）\n")
    assert cleaned == "第一段，ABC123。"
    assert meta == {"editor": "莊恩慧"}


def test_script_normalisation_is_phrase_level_and_symmetric():
    assert text.normalize("會議關於人才政策作了什麼決定") == text.normalize("会议关于人才政策作了什么决定")
    assert text.to_simplified("区委常委会") == "区委常委会"


def test_sentence_spans_cover_chinese_punctuation_and_quotes():
    s = "他說：「明天開會。」會議在哪裡？在三樓；下午兩點……\n新段落"
    parts = text.sentences(s)
    assert parts == ["他說：「明天開會。」", "會議在哪裡？", "在三樓；", "下午兩點……", "新段落"]
    for (a, b), p in zip(text.sentence_spans(s), parts):
        assert s[a:b] == p


def test_tokens_drop_stopwords_and_punctuation():
    toks = text.tokens(text.normalize("会议关于人才政策做了什么决定？"))
    assert "人才" in toks and "政策" in toks
    assert "什么" not in toks and "？" not in toks and "了" not in toks
