"""The language a question is written in, by its script, and the texts an answer needs in that language.

A question is answered in its own language: the prompt names the language to answer in, and the text shown when
nothing was found (``no_answer``) is written in it. The language is read from the script of the question's
letters (no model, no dictionary), which tells apart the languages whose script is their own:
- any Hiragana or Katakana: Japanese (kana is Japanese alone; a Japanese question with no kana at all is rare);
- Hangul: Korean; Han without kana: Chinese; Arabic script: Arabic;
- anything else (Latin, digits, no letters): ``""``, unknown, which gets the English texts and the prompt's
  general rule to answer "in the language of the question" (a Latin-script question may be English, French, …).
The script with the most letters wins; a character of a script written without spaces counts as much as a
short word (``_WORD_WEIGHT`` letters): "What does the word 経費 mean?" stays English, "経費精算の締め切りは？" is
Japanese.
"""

from __future__ import annotations

import unicodedata
from typing import Final

import regex

# (language, its script's letters); Japanese first: its kanji are Han too
_SCRIPTS: Final = (
    ("ja", regex.compile(r"[\p{Hiragana}\p{Katakana}ー]")),
    ("ko", regex.compile(r"\p{Hangul}")),
    ("zh", regex.compile(r"\p{Han}")),
    ("ar", regex.compile(r"\p{Arabic}")),
)
_OTHER_LETTER: Final = regex.compile(r"[\p{L}--[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Arabic}]]", regex.V1)
_WORD_WEIGHT: Final = 3  # a character of a script without spaces counts as this many Latin letters
_NO_SPACE: Final = frozenset({"ja", "ko", "zh"})

NAMES: Final = {"ja": "Japanese", "ko": "Korean", "zh": "Chinese", "ar": "Arabic"}

# what is shown for a ``no_answer`` with no text of its own (the gateway, the chat page, the demo)
NO_ANSWER: Final = {
    "": "No answer was found in the indexed documents.",
    "ja": "登録されている文書には、この質問への答えが見つかりませんでした。",
    "ko": "색인된 문서에서 답을 찾지 못했습니다.",
    "zh": "在已索引的文档中没有找到答案。",
    "ar": "لم يتم العثور على إجابة في المستندات المفهرسة.",
}
# what the model is asked to write when its sources do not answer (the grounding check reads both as a refusal)
DONT_KNOW: Final = {"": "I don't know.", "ja": "わかりません。"}


def language_of(text: str, limit: int = 2_000) -> str:
    """The question's language code ("ja", "ko", "zh", "ar") by the script of most of its letters, or ``""``
    (unknown: Latin script, or no letters). Only the first ``limit`` characters are read."""
    t = unicodedata.normalize("NFKC", text[:limit])
    counts: dict[str, int] = {}
    for lang, script in _SCRIPTS:
        n = len(script.findall(t))
        if n:
            counts[lang] = n * (_WORD_WEIGHT if lang in _NO_SPACE else 1)
    if "ja" in counts:  # the kanji of a Japanese question are Japanese, not Chinese
        counts["ja"] += counts.pop("zh", 0)
    other = len(_OTHER_LETTER.findall(t))
    if not counts:
        return ""
    lang = max(counts, key=counts.__getitem__)
    return lang if counts[lang] > other else ""


def no_answer_text(question: str) -> str:
    """The text shown for a ``no_answer`` to this question, in its language."""
    return NO_ANSWER.get(language_of(question), NO_ANSWER[""])


def answer_instruction(question: str) -> str:
    """The prompt's line naming the answer's language ("Answer in Japanese."), or ``""`` when the script does
    not tell it (the prompt's general rule, "in the language of the question", stays)."""
    name = NAMES.get(language_of(question))
    return f"Answer in {name}." if name else ""


def dont_know(question: str) -> str:
    """What the model is asked to answer when no source has the facts, in the question's language where the
    grounding check knows that language's refusals (else English)."""
    return DONT_KNOW.get(language_of(question), DONT_KNOW[""])

