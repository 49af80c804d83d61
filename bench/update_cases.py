"""Seeded generator of fact-change cases for ``bench/update_bench.py`` (the cases are never hand-picked).

Each case is a short conversation of one speaker in two (or three) ingest calls: an initial fact,
optional small talk, then a change. Kinds:

* ``move``: residence changes (``I live in Oslo.`` ... ``I moved to Porto.``);
* ``job``: occupation or employer changes;
* ``preference``: a favourite thing changes (``My favourite colour is blue.`` ... ``is green.``);
* ``negation``: a habit is negated (``I eat pork.`` ... ``I don't eat pork.``);
* ``retraction``: a fact is withdrawn (``I like jazz.`` ... ``I no longer like jazz.``);
* ``duplicate``: the same fact again, verbatim or reworded only in case/punctuation (must be a NOOP);
* ``paraphrase``: the same fact again in other words (``I live in Oslo.`` ... ``I'm still living in
  Oslo.``; must be a NOOP, a near-duplicate, not a new version).

Names, places, jobs, foods, preferences and phrasings are drawn with ``random.Random(seed)``; the
same seed gives the same cases. ``old`` and ``new`` are the value words a correct memory must (not)
contain; ``negated`` says the new fact must carry a negation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

KINDS = ("move", "job", "preference", "negation", "retraction", "duplicate", "paraphrase")

NAMES = "Alice Bruno Chen Dana Emil Farah Goran Hana Ivo Jana Kofi Lena Mateo Nadia Omar Pia Rui Sara Tomas Uma".split()
PLACES = (
    "Oslo Porto Lyon Krakow Ghent Bergen Seville Turin Leipzig Tallinn Graz Malmo Cork Utrecht Nantes Brno "
    "Bilbao Aarhus Split Riga"
).split()
JOBS = "nurse teacher pilot chef architect plumber lawyer baker dentist journalist carpenter librarian".split()
COMPANIES = "Acme Globex Initech Umbrella Hooli Stark Wayne Tyrell Cyberdyne Soylent".split()
FOODS = "pork beef fish cheese eggs shrimp mushrooms chocolate peanuts gluten".split()
LIKES = "jazz opera hiking chess football sushi podcasts gardening poetry cycling".split()
FAVOURITES = {
    "colour": "blue green red purple yellow orange".split(),
    "sport": "tennis rugby hockey swimming rowing climbing".split(),
    "film": "Alien Heat Amelie Vertigo Psycho Jaws".split(),
    "book": "Dune Emma Ulysses Beloved Solaris Persuasion".split(),
}
SMALL_TALK = [
    "Hi there!",
    "How are you today?",
    "Thanks, that is helpful.",
    "What a week it has been.",
    "Can you remind me later?",
    "Haha, that is funny.",
]
ASSISTANT = ["Noted.", "Got it, thanks for telling me.", "Good to know.", "I will remember that."]


@dataclass(frozen=True)
class Case:
    """One generated case: the ingest calls (each a list of messages) and what must hold after them."""

    case_id: str
    kind: str
    speaker: str
    turns: tuple[tuple[dict[str, str], ...], ...]  # ingest calls; the change is in the last one
    old: str  # the value word of the fact before the change
    new: str | None  # the value word after it (None: retraction / duplicate)
    negated: bool = False  # the new fact must be a negation of the old one
    initial: str = ""  # the sentence that states the initial fact
    meta: dict[str, str] = field(default_factory=dict)


def _msg(role: str, content: str, speaker: str, ts: str) -> dict[str, str]:
    out = {"role": role, "content": content, "timestamp": ts}
    if role == "user":
        out["name"] = speaker
    return out


def _pair(rng: random.Random, values: list[str]) -> tuple[str, str]:
    a, b = rng.sample(values, 2)
    return a, b


def _case(rng: random.Random, i: int, kind: str) -> Case:
    who = rng.choice(NAMES)
    t1 = f"2024-{rng.randint(1, 5):02d}-{rng.randint(1, 28):02d}T{rng.randint(8, 20):02d}:00:00Z"
    t2 = f"2024-{rng.randint(7, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(8, 20):02d}:00:00Z"
    negated = False
    if kind == "move":
        old, new = _pair(rng, PLACES)
        first = rng.choice([f"I live in {old}.", f"I live in {old} with my partner.", f"I live in {old} now."])
        change = rng.choice(
            [
                f"I moved to {new}.",
                f"I moved to {new} last month.",
                f"I live in {new} now.",
                f"I live in {new} now. I no longer live in {old}.",
            ]
        )
    elif kind == "job":
        if rng.random() < 0.5:
            old, new = _pair(rng, JOBS)
            first = f"I work as a {old}."
            change = rng.choice([f"I work as a {new} now.", f"I now work as a {new}.", f"I work as a {new}."])
        else:
            old, new = _pair(rng, COMPANIES)
            first = rng.choice([f"I work at {old}.", f"I work for {old}."])
            change = rng.choice([f"I work at {new} now.", f"I work for {new}.", f"I now work at {new}."])
    elif kind == "preference":
        thing = rng.choice(sorted(FAVOURITES))
        old, new = _pair(rng, FAVOURITES[thing])
        first = f"My favourite {thing} is {old}."
        change = rng.choice([f"My favourite {thing} is {new} now.", f"My favourite {thing} is {new}."])
    elif kind == "negation":
        old, new, negated = rng.choice(FOODS), None, True
        first = rng.choice([f"I eat {old}.", f"I eat {old} every week."])
        change = rng.choice([f"I don't eat {old}.", f"I do not eat {old}.", f"Actually, I don't eat {old}."])
        new = old
    elif kind == "retraction":
        old, new = rng.choice(LIKES), None
        verb = rng.choice(["like", "love", "enjoy"])
        first = f"I {verb} {old}."
        change = rng.choice(
            [f"I no longer {verb} {old}.", f"I don't {verb} {old} anymore.", f"I don't {verb} {old} any more."]
        )
    elif kind == "paraphrase":
        new = None
        shape = rng.choice(["residence", "work", "liking"])
        if shape == "residence":
            old = rng.choice(PLACES)
            first = f"I live in {old}."
            change = rng.choice(
                [f"I still live in {old}.", f"I'm still living in {old}.", f"These days I live in {old}."]
                + [f"I am living in {old} now."]
            )
        elif shape == "work":
            old = rng.choice(COMPANIES)
            first = rng.choice([f"I work at {old}.", f"I work for {old}."])
            change = rng.choice([f"I still work at {old}.", f"I'm working at {old}.", f"Yes, I work at {old}!"])
        else:
            old = rng.choice(LIKES)
            first = f"I like {old}."
            change = rng.choice([f"I really like {old}.", f"I still like {old}.", f"I like {old} a lot."])
    else:  # duplicate
        place, new = rng.choice(PLACES), None
        first = rng.choice(
            [
                f"I live in {place}.",
                f"I work at {rng.choice(COMPANIES)}.",
                f"I {rng.choice(['like', 'love'])} {rng.choice(LIKES)}.",
            ]
        )
        change = rng.choice([first, first.lower(), first.rstrip(".") + "!", first.upper()])
        old = first.split()[-1].strip(".!")  # the value word: place, company or liking
    calls: list[tuple[dict[str, str], ...]] = []
    opening = [_msg("user", first, who, t1), _msg("assistant", rng.choice(ASSISTANT), who, t1)]
    if rng.random() < 0.5:
        opening.insert(0, _msg("user", rng.choice(SMALL_TALK), who, t1))
    calls.append(tuple(opening))
    if rng.random() < 0.4:
        calls.append((_msg("user", rng.choice(SMALL_TALK), who, t1), _msg("assistant", "Sure.", who, t1)))
    closing = [_msg("user", change, who, t2)]
    if rng.random() < 0.5:
        closing.append(_msg("assistant", rng.choice(ASSISTANT), who, t2))
    calls.append(tuple(closing))
    return Case(f"case-{i:04d}", kind, who, tuple(calls), old, new, negated, first)


def generate_cases(n: int = 350, seed: int = 13) -> list[Case]:
    """``n`` cases, the kinds in turn (so each kind has n/6), values and phrasings drawn from ``seed``."""
    rng = random.Random(seed)
    return [_case(rng, i, KINDS[i % len(KINDS)]) for i in range(n)]
