"""The rules extractor: ``ledger.memos.fact_extraction`` extended to negation, retraction, plans,
first-person plural and fact keys. Predictable by design: only the *user's* messages, only these
sentence shapes, the same output for the same input, no model.

On top of the shapes of ``fact_extraction`` (``I am``, ``My N is``, ``I <verb>``, ``Call me``):

* negation: ``I don't eat pork`` -> ``Alice does not eat pork.``; ``I'm not X`` -> ``Alice is not X.``
* retraction: ``I no longer live in Oslo`` / ``I don't live in Oslo anymore`` / ``I stopped eating
  meat`` / ``I'm no longer X`` -> a candidate with ``retracts=True`` stating the withdrawn fact
  (``Alice lives in Oslo.``); reconciliation deletes the memory that states it;
* plans: ``We are planning a trip to Japan`` -> ``Alice and others are planning a trip to Japan.``,
  ``I plan to / I'm going to / I will X`` -> ``Alice plans to X.``;
* first-person plural: ``we`` is the speaker and others (``We live in Lisbon`` -> ``Alice and
  others live in Lisbon.``), ``our N is`` -> ``The N of Alice and others is``;
* fact keys (subject + attribute): residence (``live in``, ``moved to``), work (``work at/for/as``),
  name (``call me``), ``my N``, and verb + object for tastes and habits (like/love/hate... share one
  key per object, so ``I don't like tea`` supersedes ``I like tea``). Facts with one key supersede
  each other (``I moved to Porto`` updates ``Alice lives in Oslo.``).

Relative dates (``yesterday``, ``last week``, ``N days ago``, ``last year``) are resolved against
the message's timestamp (``ledger.memos.extraction.dates``). The speaker is the message's ``name``,
else its ``user_id``, else ``User``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ledger.memos.extraction.base import Candidate, ExistingMemory, Extraction, Message
from ledger.memos.extraction.dates import resolve
from ledger.memos.fact_extraction import _HEDGES, _VERBS, _third_person, extract_facts, sentences

NAME = "rules"
VERSION = "3"

_BASE = {v: k for k, v in _VERBS.items() if k != v}  # third person -> base ("lives" -> "live")
_PAST = {"moved", "started", "bought", "graduated", "met", "adopted", "joined", "left", "married", "visited", "went"}
_PAST |= {"travelled", "traveled", "saw", "tried", "finished", "lost"}
_PRESENT = sorted((v for v in _VERBS if v not in _PAST), key=len, reverse=True)
_VERB = r"(?P<verb>" + "|".join(_PRESENT) + r")"
_DONT = r"(?:do\s+not|don't|don’t|dont)"
_IM = r"(?:i\s+am|i'm|i’m|im)"
_WE_ARE = r"(?:we\s+are|we're|we’re)"
_PREF = {"like", "love", "prefer", "hate", "enjoy", "dislike"}
_LEAD = re.compile(
    r"^(?:(?:well|so|oh|and|but|btw|by the way|also|actually|now|yes|yeah|yep|no|ok|okay|right|honestly"
    r"|these days|nowadays|currently)[,\s]+)+",
    re.I,
)

_RETRACT = [
    ("retract-no-longer", re.compile(r"^i\s+no\s+longer\s+" + _VERB + r"\s+(?P<rest>.+)$", re.I)),
    ("retract-anymore", re.compile(r"^i\s+" + _DONT + r"\s+" + _VERB + r"\s+(?P<rest>.+?)\s+any\s?more$", re.I)),
    ("retract-stopped", re.compile(r"^i\s+(?:stopped|quit)\s+(?P<ing>[a-z]+ing)\s+(?P<rest>.+)$", re.I)),
    ("retract-am", re.compile(r"^" + _IM + r"\s+no\s+longer\s+(?P<rest>.+)$", re.I)),
]
_NEGATE = [
    ("negation", re.compile(r"^i\s+" + _DONT + r"\s+" + _VERB + r"\s+(?P<rest>.+)$", re.I)),
    ("negation-am", re.compile(r"^" + _IM + r"\s+not\s+(?P<rest>.+)$", re.I)),
]
_PLAN = [
    ("plan-we", re.compile(r"^" + _WE_ARE + r"\s+(?P<rest>(?:planning|going|hoping)\s+.+)$", re.I)),
    ("plan", re.compile(r"^i\s+(?:plan|intend|am\s+going|'m\s+going|’m\s+going)\s+to\s+(?P<rest>.+)$", re.I)),
    ("plan-will", re.compile(r"^(?P<who>i|we)(?:\s+will|'ll|’ll)\s+(?P<rest>.+)$", re.I)),
    ("plan-we-to", re.compile(r"^we\s+(?:plan|intend|want)\s+to\s+(?P<rest>.+)$", re.I)),
]
_WE = [
    ("we-are", re.compile(r"^" + _WE_ARE + r"\s+(?P<rest>.+)$", re.I)),
    (
        "we-verb",
        re.compile(r"^we\s+(?P<verb>" + "|".join(sorted(_VERBS, key=len, reverse=True)) + r")\s+(?P<rest>.+)$", re.I),
    ),
    ("our-x-is", re.compile(r"^our\s+(?P<noun>[\w' -]{1,40}?)\s+(?P<be>is|are|was|were)\s+(?P<rest>.+)$", re.I)),
]
# "I'm (still) living in Porto" states what "I live in Porto" does.
_PROGRESSIVE = re.compile(r"^" + _IM + r"\s+(?:(?:still|now|currently)\s+)?(?P<ing>[a-z]+ing)\s+(?P<rest>.+)$", re.I)
_ARTICLES = re.compile(r"\b(?:a|an|the|some|any)\b", re.I)
# How often or when a habit happens qualifies the fact but is not its attribute: "I eat eggs every
# week" and "I do not eat eggs" state one attribute (so the negation supersedes the habit).
_FREQUENCY = re.compile(
    r"\s+(?:(?:every|each)\s+(?:day|night|morning|evening|week|weekend|month|year|summer|winter)"
    r"|(?:on|at|during)\s+(?:weekends?|weekdays?|mondays?|tuesdays?|wednesdays?|thursdays?|fridays?"
    r"|saturdays?|sundays?|night|nights|weeknights)"
    r"|daily|weekly|monthly|yearly|nightly|often|sometimes|regularly|usually|always|a\s+lot|so\s+much"
    r"|very\s+much|now|these\s+days|nowadays|still|currently"
    r"|(?:once|twice|\w+\s+times)\s+a\s+(?:day|week|month|year))\s*$",
    re.I,
)


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", _ARTICLES.sub(" ", text.lower())))


def fact_key(speaker: str, verb: str, rest: str) -> str | None:
    """The attribute a fact states (facts with one key supersede each other), or None."""
    who, v, obj = speaker.lower(), verb.lower(), rest.lower().strip()
    v = _BASE.get(v, v)
    if (v == "live" and obj.startswith(("in ", "at "))) or (v == "moved" and obj.startswith(("to ", "into "))):
        return f"{who}|residence"
    if v == "work" and obj.startswith(("at ", "for ", "as ", "in ")):
        return f"{who}|work"
    obj = _without_frequency(obj)
    if v in _PREF:
        return f"{who}|pref|{_norm(obj)}"
    if v in _PRESENT:
        return f"{who}|{v}|{_norm(obj)}"
    return None


def _without_frequency(obj: str) -> str:
    """``obj`` without trailing frequency phrases ("eggs every week" -> "eggs")."""
    while True:
        shorter = _FREQUENCY.sub("", obj.rstrip(" .!")).strip()
        if shorter == obj or not shorter:
            return obj
        obj = shorter


def _base_of(ing: str) -> str | None:
    stem = ing.lower()[:-3]
    for cand in (stem, stem + "e", stem[:-1] if len(stem) > 2 and stem[-1] == stem[-2] else stem):
        if cand in _VERBS:
            return cand
    return None


def speaker_of(message: Message) -> str:
    """Who says the message: its name, else its user id, else ``User``."""
    return message.name or str(message.scope.get("user_id") or "") or "User"


def _sentence_facts(sent: str, speaker: str) -> list[tuple[str, str, str | None, bool]]:
    """(text, rule, key, retracts) of one sentence."""
    if sent.endswith("?") or len(sent) > 300 or _HEDGES.search(sent):
        return []
    core = _LEAD.sub("", sent.rstrip(".!").strip())
    third = lambda s: _third_person(s.strip(), speaker)  # noqa: E731
    for rule, pat in _RETRACT:
        m = pat.match(core)
        if not m:
            continue
        if rule == "retract-am":
            rest = third(m["rest"])
            return [(f"{speaker} is {rest}.", rule, f"{speaker.lower()}|is|{_norm(rest)}", True)]
        verb = _base_of(m["ing"]) if rule == "retract-stopped" else m["verb"].lower()
        if verb is None:
            return []
        rest = third(m["rest"])
        return [(f"{speaker} {_VERBS[verb]} {rest}.", rule, fact_key(speaker, verb, rest), True)]
    for rule, pat in _NEGATE:
        m = pat.match(core)
        if not m:
            continue
        rest = third(m["rest"])
        if rule == "negation-am":
            return [(f"{speaker} is not {rest}.", rule, f"{speaker.lower()}|is|{_norm(rest)}", False)]
        verb = m["verb"].lower()
        return [(f"{speaker} does not {verb} {rest}.", rule, fact_key(speaker, verb, rest), False)]
    for rule, pat in _PLAN:
        m = pat.match(core)
        if not m:
            continue
        rest = third(m["rest"])
        if rule == "plan-we":
            return [(f"{speaker} and others are {rest}.", rule, None, False)]
        if rule == "plan-will":
            who = speaker if m["who"].lower() == "i" else f"{speaker} and others"
            return [(f"{who} will {rest}.", rule, None, False)]
        if rule == "plan-we-to":
            return [(f"{speaker} and others plan to {rest}.", rule, None, False)]
        return [(f"{speaker} plans to {rest}.", rule, None, False)]
    for rule, pat in _WE:
        m = pat.match(core)
        if not m:
            continue
        rest = third(m["rest"])
        if rule == "we-are":
            return [(f"{speaker} and others are {rest}.", rule, f"{speaker.lower()}|is|{_norm(rest)}", False)]
        if rule == "we-verb":
            verb = m["verb"].lower()
            return [(f"{speaker} and others {verb} {rest}.", rule, fact_key(speaker, verb, rest), False)]
        noun = m["noun"].strip()
        text = f"The {noun} of {speaker} and others {m['be'].lower()} {rest}."
        return [(text, rule, f"{speaker.lower()}|our:{_norm(noun)}", False)]
    m = _PROGRESSIVE.match(core)
    verb = _base_of(m["ing"]) if m else None
    if m and verb in _PRESENT and verb != "go":  # "I'm going to Rome" is a plan, not a habit
        rest = third(m["rest"])
        return [(f"{speaker} {_VERBS[verb]} {rest}.", "progressive", fact_key(speaker, verb, rest), False)]
    out = []
    for fact in extract_facts(core + sent[len(sent.rstrip(".!")) :], speaker):
        out.append((fact.text, fact.rule, _key_of_fact(fact.text, fact.rule, speaker), False))
    return out


def _key_of_fact(text: str, rule: str, speaker: str) -> str | None:
    body = text[len(speaker) :].strip().rstrip(".")
    who = speaker.lower()
    if rule == "call-me":
        return f"{who}|name"
    if rule == "my-x-is":
        m = re.match(r"^'s\s+(?P<noun>.+?)\s+(?:is|are|was|were)\s", body)
        return f"{who}|my:{_norm(m['noun'])}" if m else None
    if rule == "i-am":
        return f"{who}|is|{_norm(body[3:])}" if body.startswith("is ") else None
    if rule == "i-verb":
        words = body.split(" ", 2)
        for i, w in enumerate(words[:2]):  # an adverb may come first ("also likes")
            v = _BASE.get(w, w)
            if v in _VERBS:
                return fact_key(speaker, v, " ".join(words[i + 1 :]))
    return None


class RulesExtractor:
    """The rules backend of the extractor port (see the module docstring)."""

    uses_context = False  # the rules read the messages only

    name = NAME
    version = VERSION

    def extract(self, messages: Sequence[Message], context: Sequence[ExistingMemory]) -> Extraction:
        """Candidate facts of the user messages in ``messages`` (``context`` is not needed)."""
        out: list[Candidate] = []
        seen: set[tuple[str, bool]] = set()
        for msg in messages:
            if msg.role != "user":
                continue
            speaker = speaker_of(msg)
            for sent in sentences(msg.content):
                for text, rule, key, retracts in _sentence_facts(sent, speaker):
                    text, when = resolve(text, msg.timestamp)
                    text = text[:1].upper() + text[1:]  # a user id as the speaker starts the sentence too
                    if (text.lower(), retracts) in seen:
                        continue
                    seen.add((text.lower(), retracts))
                    out.append(
                        Candidate(
                            text=text,
                            source_offsets=(msg.offset,),
                            retracts=retracts,
                            key=key,
                            observed_at=msg.timestamp,
                            rule=rule,
                            refers_to=when,
                        )
                    )
        return Extraction(tuple(out))


def build(options: object = None) -> RulesExtractor:
    """Registry factory of the rules backend."""
    return RulesExtractor()
