"""Prompt templates from ``prompts/``, and the fenced, numbered passages they carry."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from .dates import UNDATED

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "prompts"
_SECTION = re.compile(r"^###\s*(system|user)\s*$", re.M)
_FENCE = re.compile(r"<\s*/?\s*资料|<\s*/?\s*資料")


@dataclass
class Passage:
    """A retrieved chunk as the generators see it; ``n`` is its citation number."""

    n: int
    article_id: str
    title: str
    date: str | None
    source: str
    text: str
    start: int = 0  # span of ``text`` in the article's clean text
    score: float = 0.0


def load(name: str, folder: str | Path | None = None) -> dict[str, str]:
    """{'system': ..., 'user': ...} from ``folder/name.txt``."""
    path = Path(folder or DEFAULT_DIR) / f"{name}.txt"
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as e:
        raise FileNotFoundError(f"prompt template {path} cannot be read: {e.strerror}") from None
    parts = _SECTION.split(raw)
    sections = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    if "user" not in sections:
        raise ValueError(f"prompt template {path} has no '### user' section")
    return sections


def fence(p: Passage) -> str:
    """One passage inside its block; fence-like text inside it is defused."""
    body = _FENCE.sub(lambda m: m.group(0).replace("<", "＜"), p.text)
    title = _FENCE.sub(lambda m: m.group(0).replace("<", "＜"), p.title)
    meta = " ".join(x for x in (p.date or UNDATED, p.source) if x)
    return f"<资料 编号={p.n} 日期={meta}>\n标题：{title}\n{body}\n</资料>"


def render(template: dict[str, str], passages: list[Passage], **values: str) -> list[dict]:
    """Chat messages with placeholders filled; only known names are replaced, so braces in
    article text or in the question are left alone."""
    values = dict(values, passages="\n\n".join(fence(p) for p in passages))

    def fill(s: str) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), s)

    messages = []
    if template.get("system"):
        messages.append({"role": "system", "content": fill(template["system"])})
    messages.append({"role": "user", "content": fill(template["user"])})
    return messages


def scaffold(template: dict[str, str], passages: list[Passage], **values: str) -> str:
    """The rendered prompt without the articles' own text: the instructions, the question and
    each block's header and 「标题：」 line, which a model may copy but no article says."""
    bare = [replace(p, text="") for p in passages]
    return "\n".join(m["content"] for m in render(template, bare, **values))
