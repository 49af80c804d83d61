"""Query intent cues for ranking: does a question ask *when*, and does a memory say when?

Questions like "When did Caroline go to the support group?" are answered by the memory that
dates the event, usually with a relative time expression ("last Saturday", "two weeks ago",
"next month"). Both detectors are plain English patterns (no model); absolute timestamps that
every memory may carry as a prefix ("(8:56 pm on 20 July, 2023)") deliberately do not count as
a time expression, so only memories that talk about time are favoured.
"""

from __future__ import annotations

import re

_WEEKDAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_SEASON = r"(?:summer|winter|spring|fall|autumn)"
_TIME_EXPRESSION = re.compile(
    r"\b(?:yesterday|today|tonight|tomorrow|ago|recently|the other day|weekend"
    rf"|last (?:week|weekend|month|year|night|{_SEASON}|{_WEEKDAY})"
    r"|next (?:week|weekend|month|year)"
    r"|this (?:week|weekend|month|year|morning|past)"
    r"|(?:few|couple of) (?:days|weeks|months|years)"
    rf"|{_WEEKDAY}s?|since|in (?:19|20)\d\d)\b",
    re.IGNORECASE,
)
_WHEN_QUESTION = re.compile(
    r"^\W*(?:when\b|what (?:date|day|year|month|time)\b|how long ago\b|which (?:year|month|day|date)\b"
    r"|in (?:what|which) (?:year|month)\b)",
    re.IGNORECASE,
)


def asks_when(query: str) -> bool:
    """True when the query asks for a time ("When did ...", "What year ...", "How long ago ...")."""
    return bool(_WHEN_QUESTION.search(query))


def mentions_time(text: str) -> bool:
    """True when the text contains a time expression ("last week", "two years ago", "on Friday")."""
    return bool(_TIME_EXPRESSION.search(text))
