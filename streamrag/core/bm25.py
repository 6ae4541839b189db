"""BM25 in memory, scored as LanceDB's FTS index scores a column of analysed terms.

The chunks table's ``terms`` and ``title_terms`` columns hold text analysed by script (core/analysis.py); LanceDB
indexes them with its whitespace tokenizer and English filters (``build_fts``, connectors/lancedb_maintenance.py).
``TermAnalyzer`` applies the same filters in the same order, and ``field_scores`` LanceDB's scorer, so that a search
in memory ranks as LanceDB's index does and ``streamrag eval`` figures carry over:

- tokens of 40 bytes or more are dropped, the rest lower-cased and stemmed (Snowball English); a stem that is one of
  NLTK's English stop words is dropped, and the rest ASCII-folded (ø -> o, ß -> ss, æ -> ae);
- idf = ln(1 + (N - n + 0.5) / (n + 0.5)) and tf weight (k1 + 1) f / (f + k1 (1 - b + b dl / avgdl)), k1 1.2, b 0.75,
  where N and avgdl count the rows with at least one token; a query term counts as often as the query has it;
- several columns: the best boosted column score (LanceDB's MultiMatch query).

N, avgdl and each term's document frequency are those of the querying tenant's rows only (``TermStats``), where
LanceDB's index counts every tenant's rows: with one tenant the two are equal, with more no tenant's words change
another's scores or ranking (issue #34, docs/security.md).

Measured equal to LanceDB's ``_score`` (relative difference < 1e-6, pylance 14) on 2,000 SciFact abstracts and 200
questions, one and two columns; tests/unit/test_bm25.py checks it against LanceDB on every run.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import Stemmer

K1 = 1.2
B = 0.75
MAX_TOKEN_BYTES = 40  # LanceDB's max_token_length: tokens of this many bytes or more are not indexed
# NLTK's English stop words: LanceDB's ``remove_stop_words`` list for English, matched against the stem
STOP_WORDS = frozenset({
    "i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "your", "yours", "yourself",
    "yourselves", "he", "him", "his", "himself", "she", "her", "hers", "herself", "it", "its", "itself",
    "they", "them", "their", "theirs", "themselves", "what", "which", "who", "whom", "this", "that", "these",
    "those", "am", "is", "are", "was", "were", "be", "been", "being", "have", "has", "had", "having", "do",
    "does", "did", "doing", "a", "an", "the", "and", "but", "if", "or", "because", "as", "until", "while",
    "of", "at", "by", "for", "with", "about", "against", "between", "into", "through", "during", "before",
    "after", "above", "below", "to", "from", "up", "down", "in", "out", "on", "off", "over", "under", "again",
    "further", "then", "once", "here", "there", "when", "where", "why", "how", "all", "any", "both", "each",
    "few", "more", "most", "other", "some", "such", "no", "nor", "not", "only", "own", "same", "so", "than",
    "too", "very", "s", "t", "can", "will", "just", "don", "should", "now", "d", "ll", "m", "o", "re", "ve",
    "y", "ain", "aren", "couldn", "didn", "doesn", "hadn", "hasn", "haven", "isn", "ma", "mightn", "mustn",
    "needn", "shan", "shouldn", "wasn", "weren", "won", "wouldn",
})
# letters LanceDB's ASCII folding rewrites that have no combining mark to drop (analysis has dropped the marks)
_FOLD = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ß": "ss", "æ": "ae", "œ": "oe", "þ": "th", "ð": "d",
                       "\u0131": "i", "ħ": "h", "ŧ": "t", "ŋ": "n"})
_NOT_SEEN = object()
_MEMO_MAX = 500_000  # distinct words remembered (the memo starts again past it)


class TermAnalyzer:
    """The terms LanceDB's index makes of a whitespace-separated text (thread-safe; each word stemmed once)."""

    def __init__(self, memo_max: int = _MEMO_MAX) -> None:
        self._stemmer = Stemmer.Stemmer("english")
        self._lock = threading.Lock()  # a stemmer object is not safe to share between threads
        self._memo: dict[str, str | None] = {}
        self.memo_max = memo_max  # distinct words remembered (the memo starts again past it)

    def terms(self, text: str) -> list[str]:
        out = []
        for word in text.split():
            term = self.term(word)
            if term is not None:
                out.append(term)
        return out

    def terms_of(self, words: Sequence[str]) -> list[str | None]:
        """``term`` of each word, the words not seen before stemmed in one call."""
        known = self._memo
        new = [w for w in set(words) if w not in known]
        found: dict[str, str | None] = dict.fromkeys(new)
        kept = [w for w in new if w and len(w.encode()) < MAX_TOKEN_BYTES]
        with self._lock:
            stems = self._stemmer.stemWords([w.lower() for w in kept])
        for w, stem in zip(kept, stems, strict=True):
            found[w] = None if stem in STOP_WORDS else stem.translate(_FOLD)
        if len(known) + len(found) > self.memo_max:
            self._memo = dict(found)  # (``known`` still answers this call)
        else:
            known.update(found)
        return [found[w] if w in found else known[w] for w in words]

    def term(self, word: str) -> str | None:
        """The term a whitespace-free word becomes, None when the index drops it."""
        term = self._memo.get(word, _NOT_SEEN)
        if term is not _NOT_SEEN:
            return term  # type: ignore[return-value]
        term = None
        if word and len(word.encode()) < MAX_TOKEN_BYTES:
            with self._lock:
                stem = self._stemmer.stemWord(word.lower())
            term = None if stem in STOP_WORDS else stem.translate(_FOLD)
        if len(self._memo) >= self.memo_max:
            self._memo = {}
        self._memo[word] = term
        return term


class Vocabulary:
    """Term -> id, shared by the blocks of one mirror (ids index the document-frequency arrays)."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()  # fragments' postings are built on more than one thread

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self, terms: Sequence[str | None]) -> list[int]:
        """Each term's id (a new term gets the next one); -1 for None."""
        with self._lock:
            ids = self._ids
            return [-1 if t is None else ids.setdefault(t, len(ids)) for t in terms]

    def find(self, terms: Sequence[str]) -> list[int]:
        """The ids of the terms known (a term no row has cannot score)."""
        return [i for i in map(self._ids.get, terms) if i is not None]


@dataclass(frozen=True)
class FieldPostings:
    """One column of a block of rows, inverted: term ids ascending, each with the rows that hold it and how often."""

    term_ids: np.ndarray  # int64, distinct, ascending
    starts: np.ndarray  # the postings of term_ids[k] are rows[starts[k]:starts[k + 1]]
    rows: np.ndarray  # int32 row numbers in the block
    freqs: np.ndarray  # float32 occurrences in the row
    lengths: np.ndarray  # int32 tokens per row

    @classmethod
    def build(cls, words: Sequence[str], tokens: np.ndarray, counts: np.ndarray, analyzer: TermAnalyzer,
              vocab: Vocabulary) -> FieldPostings:
        """A column split into words: ``words`` its distinct words, ``tokens`` every row's words in row order as
        indexes into ``words``, ``counts`` each row's number of words (each distinct word analysed once)."""
        n = max(len(counts), 1)
        ids_of = np.asarray(vocab.ids(analyzer.terms_of(words)), dtype=np.int64)
        ids = ids_of[tokens] if len(tokens) else np.zeros(0, dtype=np.int64)
        rows = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        kept = ids >= 0
        ids, rows = ids[kept], rows[kept]
        pairs, freqs = np.unique(ids * n + rows, return_counts=True)  # (term, row) pairs, by term then row
        terms, in_rows = np.divmod(pairs, n)
        term_ids, first = np.unique(terms, return_index=True)
        return cls(term_ids, np.append(first, len(pairs)), in_rows.astype(np.int32), freqs.astype(np.float32),
                   np.bincount(rows, minlength=len(counts)).astype(np.int32))

    def tenant_stats(self, mine: np.ndarray, query_ids: Sequence[int]) -> TermStats:
        """The column's statistics over the rows ``mine`` marks (one tenant's live rows), for the query's terms."""
        df: dict[int, int] = {}
        for tid in set(query_ids):
            k = int(np.searchsorted(self.term_ids, tid))
            if k < len(self.term_ids) and int(self.term_ids[k]) == tid:
                df[tid] = int(np.count_nonzero(mine[self.rows[self.starts[k] : self.starts[k + 1]]]))
        return TermStats(int(np.count_nonzero((self.lengths > 0) & mine)), int(self.lengths[mine].sum()), df)


@dataclass(frozen=True)
class TermStats:
    """A column's BM25 statistics over ONE tenant's live rows (never every tenant's: another tenant's words would
    change the scores, docs/security.md): rows with a token, tokens, rows holding each query term (by id)."""

    docs: int = 0
    tokens: int = 0
    df: dict[int, int] = field(default_factory=dict)

    def __add__(self, other: TermStats) -> TermStats:
        df = dict(self.df)
        for tid, n in other.df.items():
            df[tid] = df.get(tid, 0) + n
        return TermStats(self.docs + other.docs, self.tokens + other.tokens, df)


def field_scores(p: FieldPostings, stats: TermStats, query_ids: Sequence[int]) -> np.ndarray | None:
    """Each row's BM25 score for the query's term ids (repeats count) with the statistics of the querying tenant's
    rows, or None when no row holds one of them (scores of other tenants' rows are meaningless: mask them)."""
    if stats.docs <= 0:
        return None
    scores: np.ndarray | None = None
    norm: np.ndarray | None = None
    for tid, times in Counter(query_ids).items():
        k = int(np.searchsorted(p.term_ids, tid))
        n = float(stats.df.get(tid, 0))
        if k >= len(p.term_ids) or int(p.term_ids[k]) != tid or n <= 0:
            continue
        if scores is None or norm is None:
            scores = np.zeros(len(p.lengths))
            norm = K1 * (1.0 - B + B * p.lengths / (stats.tokens / stats.docs))
        idf = math.log(1.0 + (stats.docs - n + 0.5) / (n + 0.5))
        rows = p.rows[p.starts[k] : p.starts[k + 1]]
        f = p.freqs[p.starts[k] : p.starts[k + 1]]
        scores[rows] += times * idf * (K1 + 1.0) * f / (f + norm[rows])
    return scores
