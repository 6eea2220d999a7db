"""The report as Markdown and as a self-contained HTML page. Both open with the verdict
for a product manager, then the health badges, the analyst's table, the plots and the
inputs; JSON (``Report.to_dict``) carries every number."""

from __future__ import annotations

import base64
import json
import math
from html import escape

from analysis.inference import EffectResult
from analysis.plots import all_plots
from analysis.report import MetricResult, Report

CROSSOVER_LISTED = 50


def _num(value: float, digits: int = 4, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _pct(value: float, sign: bool = True) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value * 100:+.2f} %" if sign else f"{value * 100:.2f} %"


def _p(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.2g}" if value < 0.001 else f"{value:.4f}"


def _ci(pair: tuple[float, float], percent: bool) -> str:
    fmt = _pct if percent else (lambda v: _num(v, sign=True))
    return f"[{fmt(pair[0])}, {fmt(pair[1])}]"


def _level(report: Report) -> str:
    return f"{(1 - report.inputs.alpha) * 100:g} %"


def badges(report: Report) -> list[tuple[bool, str]]:
    """(passed, text) for each health check, in the order they run."""
    h, i = report.health, report.inputs
    observed = " / ".join(f"{a} {n:,}" for a, n in zip(h.srm.arms, h.srm.observed, strict=False))
    if h.srm.reason is not None:
        srm = (False, f"sample ratio: not checked ({h.srm.reason})")
    else:
        srm = (h.srm.passed, f"sample ratio {observed} (chi-square p = {_p(h.srm.p_value)})")
    cross = h.crossover
    minimum = h.minimum_sample
    return [
        srm,
        (
            cross.passed,
            f"crossover users: {cross.count:,} ({cross.share:.2%} of {i.users_seen:,}), excluded",
        ),
        (
            minimum.passed,
            f"at least {minimum.minimum:,} users per arm"
            + ("" if minimum.passed else f" (short: {', '.join(minimum.short_arms)})"),
        ),
        (
            h.lift.passed,
            f"lift within ±{h.lift.limit:.0%} (Twyman's law)"
            if h.lift.passed
            else f"lift {h.lift.relative:+.1%} beyond ±{h.lift.limit:.0%}: check the logging",
        ),
    ]


TABLE_HEADER = (
    "metric",
    "control",
    "test",
    "abs. diff [CI]",
    "rel. diff [CI]",
    "p",
    "p (Holm)",
    "CUPED rel. diff [CI]",
    "CUPED p",
    "CUPED var. removed",
    "bootstrap rel. [CI]",
    "Mann-Whitney p",
    "test",
)


def _row(metric: MetricResult) -> list[str]:
    e: EffectResult = metric.effect
    digits = 3 if metric.name == "likes_per_user" else 4
    values = [_num(a.value, digits) for a in metric.arms]
    if not e.ok:
        return [metric.label, *values, f"no result: {e.reason}", *[""] * 8, e.method]
    cuped = metric.cuped
    if cuped is None:
        cuped_cells = ["no pre-period data", "n/a", "n/a"]
    elif not cuped.ok:
        cuped_cells = [f"not run: {cuped.reason}", "n/a", "n/a"]
    else:
        reduction = cuped.variance_reduction
        cuped_cells = [
            f"{_pct(cuped.relative)} {_ci(cuped.relative_ci, True)}",
            _p(cuped.p_value),
            _pct(reduction, sign=False) if reduction is not None else "n/a",
        ]
    boot = metric.bootstrap
    boot_cell = (
        "n/a"
        if boot is None
        else (_ci(boot.relative_ci, True) if boot.reason is None else f"not run: {boot.reason}")
    )
    mw = metric.mann_whitney
    mw_cell = "n/a" if mw is None else (_p(mw.p_value) if mw.reason is None else mw.reason)
    return [
        metric.label,
        *values,
        f"{_num(e.absolute, digits, sign=True)} {_ci(e.absolute_ci, False)}",
        f"{_pct(e.relative)} {_ci(e.relative_ci, True)}",
        _p(e.p_value),
        _p(metric.p_value_holm),
        *cuped_cells,
        boot_cell,
        mw_cell,
        e.method,
    ]


def _power_lines(report: Report) -> list[str]:
    p = report.power
    primary = report.metric("hitrate")
    if p.reason is not None:
        return [f"Power of {primary.label}: not computed ({p.reason})."]
    need = math.ceil(max(p.control_users_needed, p.test_users_needed))
    return [
        f"Minimum detectable effect on {primary.label} at the current sample "
        f"({p.control_n:,} + {p.test_n:,} users), {p.target_power:.0%} power, alpha "
        f"{p.alpha:g}: {_pct(p.mde_relative, sign=False)} relative "
        f"({_num(p.mde_absolute)} absolute, baseline {_num(p.baseline)}).",
        f"Power for a {_pct(p.lift, sign=False)} lift now: {p.power_at_lift:.0%}; users per arm "
        f"needed for {p.target_power:.0%}: {need:,}.",
    ]


def _daily_rows(report: Report) -> list[list[str]]:
    rows = []
    for day in report.daily:
        e = day.effect
        if e.ok:
            rows.append(
                [
                    day.day,
                    _num(e.control_mean),
                    _num(e.test_mean),
                    f"{_pct(e.relative)} {_ci(e.relative_ci, True)}",
                    _p(e.p_value),
                ]
            )
        else:
            rows.append([day.day, "n/a", "n/a", e.reason or "", "n/a"])
    return rows


def _input_rows(report: Report) -> list[tuple[str, str]]:
    i = report.inputs
    rows = [
        ("experiment", i.experiment or "n/a"),
        ("source", i.source),
        (
            "arms (weights)",
            ", ".join(f"{a} ({w:g})" for a, w in zip(i.arms, i.weights, strict=True)),
        ),
        ("metric", f"hitrate@{i.k}: a like of a shown post within {i.window_s:,} s"),
        ("alpha", f"{i.alpha:g} (two-sided)"),
        ("time range (UTC)", " to ".join(i.time_range) if i.time_range else "n/a"),
        ("users seen / analysed", f"{i.users_seen:,} / {i.users_analysed:,}"),
        ("exposures analysed", f"{i.exposures:,}"),
        ("likes read", f"{i.likes:,}"),
        (
            "bootstrap",
            f"{i.config.bootstrap_replicates:,} Poisson replicates, seed {i.config.seed}",
        ),
        ("code version", i.code_version),
        ("generated", i.generated_at),
    ]
    crossover = report.health.crossover
    if crossover.count:
        listed = ", ".join(map(str, crossover.users[:CROSSOVER_LISTED]))
        more = (
            f" and {crossover.count - CROSSOVER_LISTED:,} more (all in the JSON)"
            if crossover.count > CROSSOVER_LISTED
            else ""
        )
        rows.append(("crossover users (excluded)", listed + more))
    return rows


def _md_table(header: list[str] | tuple[str, ...], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str] | tuple[str, ...]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(r) for r in rows)]


def _title(report: Report) -> str:
    name = report.inputs.experiment or report.inputs.source
    return f"A/B report {name}: {report.verdict.decision}"


def to_markdown(report: Report) -> str:
    """Markdown; the plots are SVG data URIs, so the file stands alone."""
    lines = [
        f"# {_title(report)}",
        "",
        f"**{report.verdict.text}.**",
        "",
        " · ".join(f"{'✅' if ok else '❌'} {text}" for ok, text in badges(report)),
        "",
        "## Metrics",
        "",
        *_md_table(TABLE_HEADER, [_row(m) for m in report.metrics]),
        "",
        f"Intervals are {_level(report)}; p-values are two-sided; Holm's "
        "correction runs across the metrics on the headline test (CUPED where it ran); the "
        "bootstrap and Mann-Whitney are cross-checks.",
        "",
        "## Power",
        "",
        *_power_lines(report),
        "",
        "## Effect over days",
        "",
        *_md_table(("day", "control", "test", "rel. diff [CI]", "p"), _daily_rows(report)),
        "",
        "## Plots",
        "",
    ]
    for title, svg in all_plots(report).items():
        encoded = base64.b64encode(svg.encode()).decode()
        lines += [f"![{title}](data:image/svg+xml;base64,{encoded})", ""]
    lines += [
        "## Inputs",
        "",
        *_md_table(("input", "value"), [list(r) for r in _input_rows(report)]),
    ]
    return "\n".join(lines) + "\n"


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
.verdict{font-size:1.25em;padding:.8em 1em;border-radius:6px;background:#f3f6fb;
border-left:6px solid #4c72b0}
.verdict.ship{border-color:#2e7d32}.verdict.investigate,.verdict.no-verdict{border-color:#c62828}
.badge{display:inline-block;margin:.2em .3em;padding:.25em .6em;border-radius:1em;font-size:.9em}
.badge.ok{background:#e6f4ea;color:#1e4620}.badge.fail{background:#fdecea;color:#611a15}
table{border-collapse:collapse;margin:1em 0;font-size:.85em}
td,th{border:1px solid #ddd;padding:.3em .5em;text-align:right}
td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figcaption{color:#555;font-size:.9em}
"""


def _html_table(header: list[str] | tuple[str, ...], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(report: Report) -> str:
    """A page with everything inline (CSS, SVG, the JSON): it opens offline."""
    decision = report.verdict.decision.replace(" ", "-")
    badge_html = "".join(
        f'<span class="badge {"ok" if ok else "fail"}">{"✓" if ok else "✗"} {escape(text)}</span>'
        for ok, text in badges(report)
    )
    figures = "".join(
        f"<figure>{svg}<figcaption>{escape(title)}</figcaption></figure>"
        for title, svg in all_plots(report).items()
    )
    data = json.dumps(report.to_dict()).replace("</", "<\\/")
    text = report.verdict.text
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{escape(_title(report))}</title>",
            f"<style>{STYLE}</style></head><body>",
            f"<h1>{escape(_title(report))}</h1>",
            f'<p class="verdict {decision}" id="verdict"><strong>{escape(text)}.</strong></p>',
            f'<div id="health">{badge_html}</div>',
            "<h2>Metrics</h2>",
            _html_table(TABLE_HEADER, [_row(m) for m in report.metrics]),
            f"<p>Intervals are {_level(report)}; p-values are two-sided; Holm's "
            "correction runs across the metrics on the headline test (CUPED where it ran); the "
            "bootstrap and Mann-Whitney are cross-checks.</p>",
            "<h2>Power</h2>",
            *(f"<p>{escape(line)}</p>" for line in _power_lines(report)),
            "<h2>Plots</h2>",
            f'<div id="plots">{figures}</div>',
            "<h2>Effect over days</h2>",
            _html_table(("day", "control", "test", "rel. diff [CI]", "p"), _daily_rows(report)),
            "<h2>Inputs</h2>",
            _html_table(("input", "value"), [list(r) for r in _input_rows(report)]),
            f'<script type="application/json" id="report-data">{data}</script>',
            "</body></html>",
        ]
    )
