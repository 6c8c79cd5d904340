"""The plain-text report of :func:`gateway.eval.report.build_report`'s figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

TEXT_WIDTH = 110


def pct(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}%"


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 1 else f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def ratio(part: int, whole: int, rate: float | None) -> str:
    return f"{pct(rate)} ({part}/{whole})" if whole else "-"


def short(text: str, width: int = TEXT_WIDTH) -> str:
    """One line of at most ``width`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Aligned columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return (indent + "  ".join(parts)).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def counts(mapping: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in mapping.items()) or "-"


def render(report: Mapping[str, Any]) -> str:
    """The whole report as text."""
    lines = header(report)
    lines += ["", *gate_section(report)]
    lines += ["", *restoration_section(report)]
    lines += ["", *changed_section(report)]
    lines += ["", *latency_section(report)]
    lines += ["", *source_section(report)]
    if "classes" in report:
        lines += ["", *class_section(report)]
    lines += ["", *worst_section(report)]
    return "\n".join(lines) + "\n"


def header(report: Mapping[str, Any]) -> list[str]:
    levels = ", ".join(f"{r:g}" for r in report["noise_levels"])
    return [
        f"MPR refinement eval: {report['prompts']} prompts ({report['english_prompts']} English)",
        f"  backend {report['backend']} · stages {', '.join(report['stages'])} · noise {levels} · seed {report['seed']}"
        f" · {report['refinements']} refinements in {report['elapsed_s']:.2f} s",
    ]


def gate_section(report: Mapping[str, Any]) -> list[str]:
    clean = report["clean"]
    lines = [
        "Skip gate on clean prompts (noise 0)",
        f"  skipped   {ratio(clean['skipped'], clean['n'], clean['skip_rate'])}",
        f"  reasons   {counts(clean['reasons'])}",
        f"  refined because of: {counts(clean['tokens'])}",
    ]
    rows = []
    for level, fig in report["noise"].items():
        rows.append(
            [
                level,
                str(fig["n"]),
                str(fig["typos"]),
                ratio(fig["refined"], fig["n"], fig["refine_rate"]),
                ratio(fig["refined_clean_skipped"], fig["clean_skipped"], fig["refine_rate_clean_skipped"]),
                ratio(fig["refined_typo_prompts"], fig["typo_prompts"], fig["refine_rate_typo_prompts"]),
            ]
        )
    if rows:
        lines += ["", "Skip gate on noisy prompts (English prompts with at least one eligible word)"]
        lines += table(["noise", "prompts", "typos", "refined", "refined where clean was skipped", "…not only deleted words"], rows)
    return lines


def _restored_row(name: str, fig: Mapping[str, Any]) -> list[str]:
    cells = [ratio(fig[k]["restored"], fig[k]["n"], fig[k]["rate"]) for k in ("non_word", "real_word", "deleted", "all")]
    return [name, *cells]


def restoration_section(report: Mapping[str, Any]) -> list[str]:
    fig = report["restoration"]
    rows = [_restored_row(level, by) for level, by in fig["by_noise"].items()]
    rows.append(_restored_row("all", fig))
    return ["Typos restored (gate bypassed)", *table(["noise", "non-word", "real-word", "deleted word", "all"], rows)]


def changed_section(report: Mapping[str, Any]) -> list[str]:
    fig = report["changed"]
    rows = [[level, str(by["words"]), ratio(by["changed"], by["words"], by["rate"])] for level, by in fig["by_noise"].items()]
    rows.append(["all", str(fig["words"]), ratio(fig["changed"], fig["words"], fig["rate"])])
    return ["Correct words changed (gate bypassed; words that got no typo)", *table(["noise", "words", "changed"], rows)]


def latency_section(report: Mapping[str, Any]) -> list[str]:
    fig = report["latency_ms"]
    rows = []
    gate = fig["gate"]
    rows.append(["gate", str(gate["n"]), ms(gate["p50"]), ms(gate["p99"]), ""] if gate else ["gate", "n/a", "-", "-", ""])
    for stage, st in fig["stages"].items():
        rows.append([stage, str(st["n"]), ms(st["p50"]), ms(st["p99"]), str(st["errors"])])
    refine = fig["refine"]
    rows.append(["refinement", str(refine["n"]), ms(refine["p50"]), ms(refine["p99"]), ""])
    return ["Latency (ms)", *table(["step", "n", "p50", "p99", "errors"], rows)]


def source_section(report: Mapping[str, Any]) -> list[str]:
    levels = list(report["noise"])
    rows = []
    for row in report["sources"]:
        rows.append(
            [
                row["source"],
                str(row["n"]),
                pct(row["clean_skip_rate"]),
                *(pct(row["refine_rate"].get(level)) for level in levels),
                pct(row["restored_rate"]),
                pct(row["changed_rate"]),
            ]
        )
    headers = ["source", "n", "clean skip", *(f"refine@{level}" for level in levels), "restored", "changed"]
    return ["By source", *table(headers, rows)]


def class_section(report: Mapping[str, Any]) -> list[str]:
    """Typo classes: restored by the cleaner, refined by the gate (prompts with only that class), worst examples."""
    classes = report["classes"]
    rows = [
        [name, ratio(c["restored"], c["typos"], c["restored_rate"]), ratio(c["refined"], c["prompts"], c["refine_rate"])]
        for name, c in classes.items()
    ]
    lines = ["Typo classes (gate: noisy prompts with only this class, clean text skipped)"]
    lines += table(["class", "restored (cleaner)", "refined (gate)"], rows)
    for name, c in classes.items():
        for ex in c["skipped"]:
            lines.append(f"  {name} skipped [{ex['id']} @{ex['noise']:g}] {', '.join(ex['typos'])}: {short(ex['text'], 80)}")
        for ex in c["not_restored"]:
            lines.append(f"  {name} not restored [{ex['id']} @{ex['noise']:g}] {ex['word']} → {ex['typo'] or '∅'} → {ex['output'] or '∅'}")
    return lines


def worst_section(report: Mapping[str, Any]) -> list[str]:
    worst = report["worst"]
    clean = report["clean"]
    noisy_total = sum(fig["n"] - fig["refined"] for fig in report["noise"].values())
    restoration = report["restoration"]["all"]
    lines = ["Worst examples"]

    def title(name: str, shown: int, total: int) -> None:
        lines.append(f"  {name} ({shown} of {total})" if shown else f"  {name}: none")

    title("Clean prompts refined", len(worst["clean_refined"]), clean["n"] - clean["skipped"])
    for ex in worst["clean_refined"]:
        tokens = f": {', '.join(ex['tokens'])}" if ex["tokens"] else ""
        lines += [f"    {ex['id']} [{ex['source']}] {ex['reason']}{tokens}", f"      {short(ex['text'])}"]
    title("Noisy prompts skipped", len(worst["noisy_skipped"]), noisy_total)
    for ex in worst["noisy_skipped"]:
        typos = ", ".join(f"{t['word']}→{t['typo'] or '∅'} ({t['kind']})" for t in ex["typos"])
        lines += [f"    {ex['id']} [{ex['source']}] noise {ex['noise']:g}: {typos}", f"      {short(ex['text'])}"]
    title("Typos not restored (word → typo → output)", len(worst["typos_not_restored"]), restoration["n"] - restoration["restored"])
    for ex in worst["typos_not_restored"]:
        lines.append(
            f"    {ex['id']} [{ex['source']}] noise {ex['noise']:g}: {ex['word']} → {ex['typo'] or '∅'} → {ex['output'] or '∅'}"
            f"  ({ex['category']}, {ex['kind']})"
        )
    title("Correct words changed (word → output)", len(worst["words_changed"]), report["changed"]["changed"])
    for ex in worst["words_changed"]:
        lines.append(f"    {ex['id']} [{ex['source']}] noise {ex['noise']:g}: {ex['word']} → {ex['output'] or '∅'}")
    return lines
