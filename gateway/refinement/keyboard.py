"""The typo model: one slip of the finger on a QWERTY keyboard (pure)."""

from __future__ import annotations

QWERTY_NEIGHBOURS: dict[str, str] = {
    "q": "wa", "w": "qeas", "e": "wrsd", "r": "etdf", "t": "ryfg", "y": "tugh", "u": "yihj",
    "i": "uojk", "o": "ipkl", "p": "ol", "a": "qwsz", "s": "adwezx", "d": "sferxc", "f": "dgrtcv",
    "g": "fhtyvb", "h": "gjyubn", "j": "hkuinm", "k": "jliom", "l": "kop", "z": "asx", "x": "zcsd",
    "c": "xvdf", "v": "cbfg", "b": "vngh", "n": "bmhj", "m": "njk",
}  # fmt: skip
"""Each letter's neighbours on a QWERTY keyboard (same row and the rows above and below)."""

SLIP = 0.2
"""Each of the five kinds of slip is equally likely."""
OTHER_EDIT = 1e-6
"""P(typo | word) for edits the keyboard model does not produce (two slips, a far key)."""


def slips(intended: str) -> dict[str, float]:
    """Every one-slip typo of ``intended`` with its probability under a keyboard model: one of
    five slips, equally likely — two adjacent letters swapped, a letter dropped, a letter doubled,
    a neighbouring key pressed instead, or as well (before or after the letter)."""
    n = len(intended)
    out: dict[str, float] = {}

    def add(typo: str, p: float) -> None:
        if typo != intended:
            out[typo] = out.get(typo, 0.0) + p

    swaps = [i for i in range(n - 1) if intended[i] != intended[i + 1]]
    for i in swaps:
        add(intended[:i] + intended[i + 1] + intended[i] + intended[i + 2 :], SLIP / len(swaps))
    for i in range(n):
        letter = intended[i]
        add(intended[:i] + intended[i + 1 :], SLIP / n)  # dropped
        add(intended[: i + 1] + intended[i:], SLIP / n)  # doubled
        near = QWERTY_NEIGHBOURS.get(letter, "")
        for key in near:
            add(intended[:i] + key + intended[i + 1 :], SLIP / n / len(near))  # instead
            add(intended[:i] + key + intended[i:], SLIP / n / len(near) / 2)  # as well, before
            add(intended[: i + 1] + key + intended[i + 1 :], SLIP / n / len(near) / 2)  # as well, after
    return out


def channel(typo: str, intended: str) -> float:
    """P(``typo`` | ``intended``): the keyboard model for one slip, a small floor for other edits."""
    return slips(intended).get(typo, OTHER_EDIT)
