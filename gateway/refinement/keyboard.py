"""The typo model: one slip of the finger on a QWERTY keyboard (pure)."""

from __future__ import annotations

from functools import lru_cache

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


@lru_cache(maxsize=512)  # a table is ~13 kB: 512 of them ≈ 6.5 MB per process
def slips(intended: str) -> dict[str, float]:
    """Every one-slip typo of ``intended`` with its probability under a keyboard model: one of
    five slips, equally likely — two adjacent letters swapped, a letter dropped, a letter doubled,
    a neighbouring key pressed instead, or as well (before or after the letter). Memoised: the
    table is shared, read it only (:func:`is_slip` tests one typo without building it)."""
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


def is_slip(typo: str, intended: str) -> bool:
    """Whether ``typo`` is one slip of the finger from ``intended`` (the slips of :func:`slips`,
    tested directly: no table is built)."""
    n, m = len(intended), len(typo)
    if m == n:
        diff = [i for i in range(n) if typo[i] != intended[i]]
        if len(diff) == 1:
            return typo[diff[0]] in QWERTY_NEIGHBOURS.get(intended[diff[0]], "")  # a neighbouring key instead
        return len(diff) == 2 and diff[1] == diff[0] + 1 and typo[diff[0]] == intended[diff[1]] and typo[diff[1]] == intended[diff[0]]
    if m == n - 1:  # a letter dropped
        return any(intended[:i] + intended[i + 1 :] == typo for i in range(n))
    if m == n + 1:  # a key pressed as well: the same letter again, or a neighbour of the letter before or after it
        for i in range(m):
            if typo[:i] + typo[i + 1 :] == intended:
                extra = typo[i]
                near = (intended[i - 1] if i > 0 else "") + (intended[i] if i < n else "")
                if any(extra == c or extra in QWERTY_NEIGHBOURS.get(c, "") for c in near):
                    return True
        return False
    return False
