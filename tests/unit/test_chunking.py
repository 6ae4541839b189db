import itertools

from streamrag.core.chunking import chunk_text, regex_tokenize


def test_short_text_is_one_chunk() -> None:
    cs = chunk_text("One sentence only.", size=10, overlap=2)
    assert len(cs) == 1 and cs[0].text == "One sentence only."


def test_windows_respect_size_and_overlap() -> None:
    text = " ".join(f"w{i}" for i in range(100))
    cs = chunk_text(text, size=20, overlap=5)
    assert all(c.n_tokens <= 20 for c in cs)
    toks = [text[s:e] for s, e in regex_tokenize(text)]
    # every token is covered, in order, and consecutive chunks overlap
    covered = set()
    for c in cs:
        covered |= set(c.text.split())
    assert covered == set(toks)
    for a, b in itertools.pairwise(cs):
        assert b.start < a.end


def test_prefers_sentence_boundaries() -> None:
    text = ("Alpha beta gamma delta epsilon. " * 10).strip()
    cs = chunk_text(text, size=18, overlap=3)
    assert all(c.text.endswith(".") for c in cs[:-1])


def test_empty_text_has_no_chunks() -> None:
    assert chunk_text("   ", size=10, overlap=2) == []
