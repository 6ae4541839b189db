"""Prompt-injection defence in code: small models obey instructions planted in their sources, whatever
the prompt says, so instruction-like text is found and removed before a model ever sees it.

``flags(text)`` is used at ingest (the document is marked and counted); ``neutralise(text)`` at answer
time drops every sentence that addresses a model (and hidden text, role tags, control characters),
replacing it with a visible marker, so the rest of the source still answers questions.
"""

from __future__ import annotations

import re
import unicodedata

REMOVED = "[instruction-like text removed]"

# Invisible characters used to hide text from people but not from tokenizers.
_HIDDEN_CHARS = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\u00ad]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.S)
# (a tag's attributes are bounded: an unbounded [^>]* made a text of many "<a " take quadratic time)
_HIDDEN_HTML = re.compile(
    r"<[^<>]{0,512}?(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0)[^<>]{0,512}>.*?(?:</[^>]{1,64}>|$)",
    re.S | re.I)
# Chat-template and role markers of the common model families; a marked block or line goes whole.
_ROLE_BLOCKS = re.compile(
    r"<\|im_start\|>.*?(?:<\|im_end\|>|\Z)|\[INST\].*?(?:\[/INST\]|\Z)|<<\s*SYS\s*>>.*?(?:<<\s*/SYS\s*>>|\Z)"
    r"|<(system|assistant|developer)>.*?(?:</\1>|\Z)"
    r"|^[ \t]*#{2,}[ \t]*(?:system|instructions?|assistant|response)\b[^\n]*"
    r"|(?:^|(?<=[.!?])\s)[ \t]*(?:system|assistant|developer)[ \t]*(?:prompt|message)?[ \t]*:[^\n.!?]*[.!?]?",
    re.I | re.M | re.S,
)
_ROLE_TAGS = re.compile(r"<\|[a-z_]*\|?>|\[/?INST\]|<<\s*/?SYS\s*>>|</?s>|</?(?:system|assistant|user)>", re.I)

_V_IGNORE = r"(?:ignore|disregard|forget|override|overrule|bypass|skip|drop|abandon|cancel|nullify|void)"
_PRIOR = r"(?:all|any|every|the|your|previous|prior|above|earlier|preceding|former|original|existing|other|initial|given|system)"
_RULES = r"(?:instructions?|prompts?|directions?|rules?|guidelines?|context|constraints?|commands?|orders?|guidance|programming|sources?)"
_JA_IGNORE = r"無視|忘れ|破棄|無効に|取り消|撤回|従わな|従う必要は(?:ありません|ない)"
_JA_PRIOR = r"上記|上の|以上|前|これまで|今まで|先ほど|さっき|以前|元|最初|既存|全て|すべて|システム"
_JA_RULES = r"指示|命令|指令|ルール|規則|規定|プロンプト|設定|制約|ガイドライン|コンテキスト|資料|出典"
_PATTERNS = [
    rf"\b{_V_IGNORE}\b(?:\W+\w+){{0,4}}?\W+{_PRIOR}\b(?:\W+\w+){{0,3}}?\W+{_RULES}\b",
    rf"\b{_V_IGNORE}\s+(?:everything|all)\b(?:\W+\w+){{0,4}}?\W+(?:said|told|above|before|instructed)",
    r"\b(?:new|updated|revised|real|actual|true|hidden|secret|special|important|urgent)\s+(?:system\s+)?(?:instructions?|directives?|orders?|commands?|task)\b",
    r"\b(?:system|admin|administrator|developer|operator|security|assistant)\s+(?:notice|message|prompt|override|instruction|directive|alert|command|update|note)\b",
    r"\byou\s+(?:are|will)\s+now\b|\bfrom\s+now\s+on\b|\bact\s+as\b|\bpretend\s+(?:to\s+be|you)\b|\broleplay\b|\bjailbreak\b",
    r"\b(?:answer|reply|respond|say|output|print|write|return|type|repeat|begin|start|end)\b(?:\W+\w+){0,3}?\W+(?:only|just|exactly|solely)\b(?:\W+\w+){0,3}?\W+(?:with|the|word|phrase|text|string)\b",
    r"\b(?:answer|reply|respond|output|say|write|print)\s+(?:with\s+)?(?:the\s+)?(?:single\s+)?(?:word|phrase|string|text|token)\b",
    r"\b(?:do\s+not|don't|never|stop)\s+(?:follow|obey|use|cite|mention|answer|reveal|consider|trust)\b(?:\W+\w+){0,3}?\W+(?:instructions?|sources?|context|question|documents?|rules?|user)\b",
    r"\b(?:language\s+model|ai\s+(?:model|assistant)|llm|chatbot|assistant)s?\b(?:\W+\w+){0,6}?\W+(?:must|should|shall|need\s+to|have\s+to|is\s+required|are\s+required)\b",
    r"\b(?:if\s+you\s+are|as\s+an?)\s+(?:an?\s+)?(?:ai|language\s+model|llm|assistant|chatbot)\b",
    r"\b(?:reveal|print|show|leak|output)\s+(?:your|the)\s+(?:system\s+)?(?:prompt|instructions)\b",
    r"\bprompt\s+injection\b|\binstead\s+of\s+answering\b|\bwhatever\s+(?:the\s+)?(?:user|question)\s+(?:asks|says)\b",
    # Japanese: "ignore / forget the instructions above", "reveal the system prompt", "new instructions",
    # "from now on you are ...", "act as ..."
    rf"(?:{_JA_PRIOR})の?(?:{_JA_RULES})(?:を|は|に)?(?:すべて|全て|一切|完全に)?(?:{_JA_IGNORE})",
    rf"(?:{_JA_RULES})(?:を|は)(?:すべて|全て|一切|完全に)?(?:{_JA_IGNORE})",
    r"システム\s?プロンプト(?:を|の内容を|の内容)?(?:表示|出力|教え|開示|見せ|漏ら)",
    r"(?:新しい|本当の|真の|秘密の|隠された|最新の)(?:指示|命令|指令|タスク)",
    r"(?:今から|これから|以後|以降)(?:は)?(?:あなた|君|お前)は|(?:として|のように)(?:振る舞|振舞|ふるま)",
]
_INSTRUCTION = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.I)
_SENTENCES = re.compile(r"(?<=[.!?:;])\s+|(?<=[。！？])\s*|\n+")


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def hidden(text: str) -> bool:
    return bool(_HIDDEN_CHARS.search(text) or _HTML_COMMENT.search(text) or _HIDDEN_HTML.search(text))


def flags(text: str) -> list[str]:
    """Flags for a document's text: ``injection`` (addresses a model), ``hidden-text``."""
    t = _normalise(text)
    out = []
    visible = _HIDDEN_CHARS.sub("", t)
    if _INSTRUCTION.search(visible) or _ROLE_BLOCKS.search(visible) or _ROLE_TAGS.search(visible):
        out.append("injection")
    if hidden(t):
        out.append("hidden-text")
    return out


def neutralise(text: str) -> tuple[str, int]:
    """The text with hidden parts, role tags and instruction-like sentences removed; and how many."""
    t = _normalise(text)
    removed = 0
    for rx in (_HTML_COMMENT, _HIDDEN_HTML):
        t, n = rx.subn(" ", t)
        removed += n
    t = _CONTROL.sub(" ", _HIDDEN_CHARS.sub("", t))
    for rx in (_ROLE_BLOCKS, _ROLE_TAGS):
        t, n = rx.subn(f" {REMOVED}\n", t)
        removed += n
    kept: list[str] = []
    for sent in _SENTENCES.split(t):
        if _INSTRUCTION.search(sent) or sent.strip() == REMOVED:
            removed += 1
            if not kept or kept[-1] != REMOVED:
                kept.append(REMOVED)
        elif sent.strip():
            kept.append(sent.strip())
    return " ".join(kept), removed
