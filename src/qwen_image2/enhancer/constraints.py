"""The rules a rewrite must keep: the user's language, and every quoted text copied verbatim.

Quoted text is what the generator will paint letter for letter, so a rewrite that drops or "fixes" it
changes the picture the user asked for. A rewrite that breaks a rule is not repaired: the original prompt
is used instead (it holds every quote by construction). Re-inserting a missing quote was rejected because
the rewrite may hold an altered copy of it ("HELO"), and a prompt asking for both texts is worse than
the original.
"""

import re

# "...", “...”, 「...」 and 『...』 (the nested Chinese form); single quotes are left out because
# apostrophes ("don't") would open spans.
QUOTE_PAIRS = {'"': '"', "“": "”", "「": "」", "『": "』"}
_QUOTED = re.compile(
    "|".join(f"{re.escape(o)}([^{re.escape(c)}]+){re.escape(c)}" for o, c in QUOTE_PAIRS.items())
)
# CJK Unified Ideographs, extension A and the compatibility block: what Chinese text is made of.
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile("[A-Za-z]+")


def quoted_spans(text: str) -> list[str]:
    """The text inside each quote pair, in order.

    >>> quoted_spans('a sign "OPEN" and “你好” beside 「欢迎」, don\\'t')
    ['OPEN', '你好', '欢迎']
    """
    return [next(group for group in match.groups() if group is not None) for match in _QUOTED.finditer(text)]


def missing_quotes(prompt: str, rewrite: str) -> list[str]:
    """The quoted spans of `prompt` that `rewrite` does not contain verbatim (case and spacing count).

    >>> missing_quotes('a poster "HELLO"', "A poster with the word HELLO in red.")
    []
    >>> missing_quotes('a poster "HELLO"', 'A poster reading "Hello".')
    ['HELLO']
    """
    return [span for span in quoted_spans(prompt) if span not in rewrite]


def language_of(text: str) -> str | None:
    """'zh' or 'en' by the share of Chinese in the text outside quotes; None when it has neither.

    A Chinese character is about a word, so characters are weighed against Latin words, not letters
    ("一个带有logo的海报" is Chinese); quoted text is the picture's content, not the prompt's language.

    >>> language_of('a poster that reads "你好世界"'), language_of("一个带有logo的iPhone海报"), language_of("42")
    ('en', 'zh', None)
    """
    unquoted = _QUOTED.sub(" ", text)
    chinese = len(_CJK.findall(unquoted))
    latin = len(_LATIN_WORD.findall(unquoted))
    if chinese + latin == 0:
        return None
    return "zh" if chinese >= latin else "en"


def broken_rule(prompt: str, rewrite: str) -> str | None:
    """Why `rewrite` cannot stand in for `prompt` (language changed, quoted text missing), or None."""
    before, after = language_of(prompt), language_of(rewrite)
    if before is not None and after is not None and before != after:
        return f"language changed ({before} -> {after})"
    missing = missing_quotes(prompt, rewrite)
    if missing:
        return "quoted text not kept verbatim: " + ", ".join(f'"{span}"' for span in missing)
    return None
