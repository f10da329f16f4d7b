"""The review page as one self-contained HTML file: inline CSS, no script, no external URL.

Every string that comes from data (titles, raw ids, rater and segment names, the run's name) is
HTML-escaped: a title holding ``<script>`` shows as text.
"""

from __future__ import annotations

import html
import math

from hybridrec.export.review import Audience, RaterRow, Review, ReviewItem

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1d2430;
       background: #fafbfc; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #d8dde4; padding-bottom: 4px; }
p.meta { color: #5a6472; margin: 0 0 12px; }
.note { background: #fff6db; border: 1px solid #f0d98a; padding: 8px 12px; border-radius: 4px;
        margin: 8px 0; }
.how { background: #eef4fb; border: 1px solid #c9dbef; padding: 8px 12px; border-radius: 4px; }
.how li { margin: 2px 0; }
.pair { display: flex; gap: 16px; flex-wrap: wrap; }
.pair > div { flex: 1 1 480px; min-width: 420px; }
table { border-collapse: collapse; width: 100%; background: white; font-size: 13px; }
th, td { border-bottom: 1px solid #e3e7ec; padding: 4px 6px; text-align: left;
         vertical-align: top; }
th { background: #f1f3f6; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.new { background: #2e7d32; color: white; border-radius: 3px; padding: 0 4px; font-size: 11px; }
.bar { display: inline-block; height: 8px; background: #c05621; vertical-align: middle;
       margin-right: 4px; }
.idbar { display: inline-block; height: 8px; vertical-align: middle; }
td.parts { white-space: nowrap; }
.moved { color: #c05621; font-weight: 600; }
h3 { font-size: 14px; margin: 8px 0 4px; color: #39424e; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _share(item: ReviewItem) -> str:
    share = item.judgment_share
    sign = "+" if item.judgment_part >= 0 else "−"
    width = int(round(60 * share))
    return f'<span class="bar" style="width:{width}px"></span>{100 * share:.0f}%' + (
        f" ({sign})" if share > 0 else ""
    )


def _parts(item: ReviewItem) -> str:
    if item.part_shares:
        return ", ".join(f"{_e(k)} {100 * v:.0f}%" for k, v in item.part_shares.items())
    if item.id_share is not None:
        ids = max(0.0, min(1.0, float(item.id_share)))
        return (
            f'<span class="idbar" style="width:{int(40 * ids)}px;background:#2b6cb0"></span>'
            f'<span class="idbar" style="width:{40 - int(40 * ids)}px;background:#9ac2e6">'
            f"</span> ID {100 * ids:.0f}% / text {100 * (1 - ids):.0f}%"
        )
    return "–"


def _list(items: list[ReviewItem], other: set[str], heading: str, shares: bool = True) -> str:
    """One top-K table; ``shares``: with the judgments' share column (a head run)."""
    parts = [f"<h3>{_e(heading)}</h3>"]
    parts.append(
        '<table class="topk"><thead><tr><th class="num">#</th><th>item</th>'
        '<th class="num">score</th>'
        + ("<th>from judgments</th>" if shares else "")
        + "<th>ID / text</th></tr></thead><tbody>"
    )
    for rank, item in enumerate(items, start=1):
        new = ' <span class="new">new</span>' if item.new else ""
        moved = "" if item.raw_id in other else ' class="moved" title="not in the other list"'
        parts.append(
            f'<tr class="item"><td class="num">{rank}</td>'
            f"<td><span{moved}>{_e(item.title)}</span>{new}"
            f"<br><small>id {_e(item.raw_id)}</small></td>"
            f'<td class="num">{item.score:.3f}</td>'
            + (f'<td class="parts">{_share(item)}</td>' if shares else "")
            + f'<td class="parts">{_parts(item)}</td></tr>'
        )
    parts.append("</tbody></table>")
    return "".join(parts)


def _audience(audience: Audience, review: Review) -> str:
    title = "Everyone" if audience.segment is None else f"Segment: {audience.segment}"
    out = [f'<section class="audience"><h2>{_e(title)}</h2>']
    if audience.chosen is None:
        every = {i.raw_id for i in audience.base}
        out.append(_list(audience.base, every, "the model's ranking", shares=False))
    else:
        base_ids = {i.raw_id for i in audience.base}
        chosen_ids = {i.raw_id for i in audience.chosen}
        out.append('<div class="pair"><div>')
        out.append(_list(audience.base, chosen_ids, "λ = 0 (the model alone)"))
        out.append("</div><div>")
        out.append(_list(audience.chosen, base_ids, f"λ = {review.lam:g} (with the judgments)"))
        out.append("</div></div>")
    out.append("</section>")
    return "".join(out)


def _raters(rows: list[RaterRow], review: Review) -> str:
    head = review.kind == "head"
    cells = [
        "<th>rater</th>",
        '<th class="num">reliability weight</th>',
        '<th class="num">agreement with the other raters</th>',
        "<th>held out</th>",
        '<th class="num">pairs</th>',
        '<th class="num">held-out agreement, λ = 0</th>'
        if head
        else '<th class="num">held-out agreement</th>',
    ]
    if head:
        cells.append(f'<th class="num">at λ = {review.lam:g}</th>')
        cells.append('<th class="num">judgment head alone</th>')
    out = ['<table class="raters"><thead><tr>', *cells, "</tr></thead><tbody>"]
    for row in rows:
        where = {
            "items": "their held-out items (the rest trained)",
            "rater": "all their judgments (never trained on)",
        }.get(row.held_out, "no test judgments")
        out.append(
            f'<tr class="rater"><td>{_e(row.rater)}</td><td class="num">{_num(row.weight, 2)}</td>'
            f'<td class="num">{_num(row.consensus)}</td><td>{where}</td>'
            f'<td class="num">{row.pairs}</td><td class="num">{_num(row.at_zero)}</td>'
        )
        if head:
            out.append(
                f'<td class="num">{_num(row.at_lambda)}</td>'
                f'<td class="num">{_num(row.head_alone)}</td>'
            )
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _pooled(review: Review) -> str:
    labels = {"by_item": "held-out items", "cold": "new items only", "by_rater": "held-out raters"}
    parts = []
    for label, text in labels.items():
        zero = review.pooled.get(f"{label}@0")
        if zero is None:
            continue
        line = f"{text}: {_num(zero)}" + (" at λ = 0" if review.kind == "head" else "")
        at = review.pooled.get(f"{label}@lambda")
        if at is not None:
            line += f", {_num(at)} at λ = {review.lam:g}"
        parts.append(f"<li>{_e(line)}</li>")
    logged = review.logged.get("test/marketer_agreement")
    if logged is not None:
        parts.append(
            f"<li>the run's own test/marketer_agreement (logged by training): {_num(logged)}</li>"
        )
    alone = review.logged.get("test/head/marketer_agreement")
    if alone is not None:
        parts.append(
            "<li>the judgment head alone (test/head/marketer_agreement, logged by training): "
            f"{_num(alone)}</li>"
        )
    return "<ul>" + "".join(parts) + "</ul>" if parts else ""


def _how(head: bool) -> str:
    """The reading guide: a head run's two lists per audience, or a joint run's one."""
    lists = (
        "<li>Each section is an audience: everyone, then each segment. Left: what the model "
        "alone recommends (λ = 0); right: with the marketers' judgments mixed in at the "
        "chosen λ (score = z(model) + λ · z(judgments), each standardised over the "
        'catalogue). Titles in <span class="moved">orange</span> are in one list only.</li>'
        if head
        else "<li>Each section is an audience: everyone, then each segment: the model's "
        "ranking for it. The judgments are inside the model (trained with it), so there is no "
        "list without them and no share of the score to show.</li>"
    )
    share = (
        "<li><b>from judgments</b>: the share of the item's score that the judgments gave "
        "(|λ · z(judgments)| against |z(model)|; + pushed it up, − pulled it down; 0 at "
        "λ = 0).</li>"
        if head
        else ""
    )
    return (
        '<div class="how"><b>How to read this page</b><ul>'
        + lists
        + '<li><span class="new">new</span>: the item had no interaction in training; the '
        "model scores it through its text.</li>"
        + share
        + "<li><b>ID / text</b>: how much of the item's vector comes from what interactions "
        "taught about it (ID) versus its description (text).</li>"
        "<li>Raters: the weight training gave each rater (agreement with the others), and how "
        "often the model orders held-out judgments of that rater as the rater did (0.5 = "
        "chance).</li></ul></div>"
    )


def render(review: Review) -> str:
    """The whole page."""
    name = review.run_name or (review.run_id or "")
    title = f"Review: {name}" if name else "Review"
    meta = [
        f"run {review.run_id}" if review.run_id else "",
        review.model,
        f"{review.n_items} items, {review.n_new} new (no training interaction)",
        f"top {review.k}",
    ]
    if review.kind == "head":
        meta.append(f"judgment head; serving λ {review.serving_lambda:g}, shown λ {review.lam:g}")
    else:
        meta.append(f"joint judgment term, λ = {review.training_weight:g} fixed in training")
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{_e(" · ".join(m for m in meta if m))}</p>',
        *[f'<div class="note">{_e(n)}</div>' for n in review.notes],
        _how(review.kind == "head"),
    ]
    body += [_audience(a, review) for a in review.audiences]
    body.append('<section class="raters" id="raters"><h2>Raters: held-out agreement</h2>')
    body.append(_pooled(review))
    body.append(_raters(review.raters, review) if review.raters else "<p>No raters.</p>")
    body.append("</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
