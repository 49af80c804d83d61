"""Rule-based extraction of facts from a user's chat message.

Deliberately simple and predictable: it only looks at the *user's* sentences (never the
model's answers, which may be wrong), keeps declarative first-person statements of a few
known shapes, and rewrites them in the third person with the speaker's name:

* ``I am / I'm X``                      → ``<name> is X``
* ``I was X``                           → ``<name> was X``
* ``My N is / are X``                   → ``<name>'s N is / are X``
* ``I <verb> X`` for verbs of residence, work, taste, possession and habit
  (live, work, study, like, love, prefer, hate, enjoy, own, have, need, want, use, speak,
  play, drink, eat, visit, moved, started, ...) → ``<name> <verb in 3rd person> X``
* ``Call me X``                         → ``<name> wants to be called X``

Questions, commands, hedged sentences ("maybe", "I think") and sentences over 300
characters are skipped. Each fact records the rule that produced it. Anything beyond these
shapes (coreference, implicit facts, negation scope) is out of scope by design.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SENT = re.compile(r"(?<=[.!?])\s+|\n+")
_CLAUSE = re.compile(r"\s*;\s*|,?\s+(?:and|but)\s+(?=(?:i|my)\b)", re.I)
_HEDGES = re.compile(r"\b(maybe|perhaps|i think|i guess|probably|might|not sure|if)\b", re.I)
_VERBS = {
    "live": "lives",
    "work": "works",
    "study": "studies",
    "like": "likes",
    "love": "loves",
    "prefer": "prefers",
    "hate": "hates",
    "enjoy": "enjoys",
    "own": "owns",
    "have": "has",
    "need": "needs",
    "want": "wants",
    "use": "uses",
    "speak": "speaks",
    "play": "plays",
    "drink": "drinks",
    "eat": "eats",
    "visit": "visits",
    "teach": "teaches",
    "watch": "watches",
    "read": "reads",
    "go": "goes",
    "dislike": "dislikes",
    "moved": "moved",
    "started": "started",
    "bought": "bought",
    "graduated": "graduated",
    "met": "met",
    "adopted": "adopted",
    "joined": "joined",
    "left": "left",
    "married": "married",
    "visited": "visited",
    "went": "went",
    "travelled": "travelled",
    "traveled": "traveled",
    "saw": "saw",
    "tried": "tried",
    "finished": "finished",
    "lost": "lost",
}
_ADVERB = r"(?:(also|really|usually|now|still|often|always|never|just|recently)\s+)?"
_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("i-am", re.compile(r"^i(?:\s+am|'m|’m)\s+" + _ADVERB + r"(?P<rest>.+)$", re.I)),
    ("i-was", re.compile(r"^i\s+was\s+" + _ADVERB + r"(?P<rest>.+)$", re.I)),
    ("my-x-is", re.compile(r"^my\s+(?P<noun>[\w' -]{1,40}?)\s+(?P<verb>is|are|was|were)\s+(?P<rest>.+)$", re.I)),
    (
        "i-verb",
        re.compile(
            r"^i\s+" + _ADVERB + r"(?P<verb>" + "|".join(sorted(_VERBS, key=len, reverse=True)) + r")\s+(?P<rest>.+)$",
            re.I,
        ),
    ),
    ("call-me", re.compile(r"^(?:please\s+)?call\s+me\s+(?P<rest>.+)$", re.I)),
]


@dataclass(frozen=True)
class Fact:
    """One extracted fact, the sentence it came from, and the rule that matched."""

    text: str
    sentence: str
    rule: str


def _third_person(rest: str, name: str) -> str:
    rest = re.sub(r"\bmy\b", f"{name}'s", rest, flags=re.I)
    rest = re.sub(r"\bme\b", name, rest, flags=re.I)
    rest = re.sub(r"\bmyself\b", name, rest, flags=re.I)
    return rest


def sentences(text: str) -> list[str]:
    """Sentences, with clauses joined by "and I" / "but my" / ";" split apart."""
    out = []
    for s in _SENT.split(text):
        out += [c.strip() for c in _CLAUSE.split(s or "") if c and c.strip()]
    return out


def extract_facts(message: str, speaker: str) -> list[Fact]:
    """Facts stated by ``speaker`` in ``message`` (see the module docstring for the rules)."""
    out: list[Fact] = []
    seen: set[str] = set()
    for sent in sentences(message):
        if sent.endswith("?") or len(sent) > 300 or _HEDGES.search(sent):
            continue
        core = sent.rstrip(".!").strip()
        core = re.sub(r"^(?:well|so|oh|and|but|btw|by the way|also)[,\s]+", "", core, flags=re.I)
        for rule, pat in _RULES:
            m = pat.match(core)
            if not m:
                continue
            adv = ""
            if m.groupdict().get("rest") is None:
                continue
            groups = m.groups()
            if rule in ("i-am", "i-was", "i-verb") and groups and groups[0]:
                adv = groups[0].lower() + " "
            rest = _third_person(m["rest"].strip(), speaker)
            if rule == "i-am":
                text = f"{speaker} is {adv}{rest}"
            elif rule == "i-was":
                text = f"{speaker} was {adv}{rest}"
            elif rule == "my-x-is":
                text = f"{speaker}'s {m['noun'].strip()} {m['verb'].lower()} {rest}"
            elif rule == "i-verb":
                text = f"{speaker} {adv}{_VERBS[m['verb'].lower()]} {rest}"
            else:
                text = f"{speaker} wants to be called {rest}"
            text += "."
            if text.lower() not in seen:
                seen.add(text.lower())
                out.append(Fact(text, sent, rule))
            break
    return out
