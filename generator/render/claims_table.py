"""``{{ claims_table(data.audit) }}``: the claims audit's verdicts as one table a reader can take
in at a glance on a desktop and on a phone.

One row per claim, verdict first: the verdict (robust, fragile, refuted), the claim as the
reference post words it (the row's header), how often it held over the seeds with the 95 %
Wilson interval, and how it is tested (the threshold as the summary of a <details> that opens on
the statistic and its median). Four columns fit the text column at desktop widths; on a phone
the stylesheet shows each row as a card (``table.claims``): the verdict and the held count on
its first line, then the claim and the test.

The markup is raw HTML that both Markdown engines pass through unchanged (every line starts
with '<', no blank line inside), so the HTML site and the Jekyll post show the same table; every
number comes from the audit's summary, none is typed in a post.
"""
from __future__ import annotations

import math
from html import escape
from typing import Any, Mapping

from ..core.errors import ContentError
from .jinja import fmt

TABLE_CLASS = "claims"
# The audit's verdicts as the article names them.
VERDICTS = {"holds": "robust", "fragile": "fragile", "fails": "refuted"}
COLUMNS = ("Verdict", "Claim", "Held (95% interval)", "Holds when the statistic is")
# On a phone's card the held count follows the verdict on its line: "robust  held in 195 of 200".
CARD_LABEL = "held in"


def _median(value: Any) -> str:
    """A median as the article prints it: an integer as one (a step count), else 3 decimals."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value) and value == int(value):
        return str(int(value))
    return fmt(value, 3)


def _rows(audit: Any) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(table row, claim) pairs in the audit's order; a clear error for anything else."""
    if not isinstance(audit, Mapping) or not isinstance(audit.get("table"), list) \
            or not isinstance(audit.get("claims"), list):
        raise ContentError("claims_table: expects the claims audit's data",
                           hint="pass data.audit (declare it with 'data: [audit]' in the front "
                                "matter)")
    claims = {c.get("name"): c for c in audit["claims"] if isinstance(c, Mapping)}
    out = []
    for row in audit["table"]:
        claim = claims.get(row.get("claim")) if isinstance(row, Mapping) else None
        if claim is None:
            raise ContentError(f"claims_table: no claim named {row.get('claim')!r} "
                               "in the audit's claims",
                               hint="re-run `lora-site audit`: the audit file is inconsistent")
        out.append((row, claim))
    if not out:
        raise ContentError("claims_table: the audit has no claims")
    return out


def claims_table(audit: Any) -> str:
    """The table's HTML for the audit summary ``audit`` (``data.audit``)."""
    rows = _rows(audit)
    head = "".join(f'<th scope="col">{escape(c)}</th>' for c in COLUMNS)
    lines = ["", f'<table class="{TABLE_CLASS}">', f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    for row, claim in rows:
        try:
            verdict = row["verdict"]
            word = VERDICTS[verdict]
            lo, hi = row["ci95"]
            held = (f'{int(row["held"])} of {int(row["n"])} <span class="interval">'
                    f'({fmt(lo, 2)} to {fmt(hi, 2)})</span>')
            # The summary's "statistic" shows only on a phone's card, which has no header row.
            test = (f'<details><summary><span class="card-label">statistic </span>'
                    f'<span class="threshold">{escape(str(row["threshold"]))}</span></summary>'
                    f'<p>{escape(str(claim["statistic"]))}; median {_median(row["median"])} '
                    f'over {int(row["n"])} seeds.</p></details>')
            sentence = escape(str(claim["sentence"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ContentError(f"claims_table: claim {row.get('claim')!r} lacks {exc}",
                               hint="re-run `lora-site audit`: the audit file is "
                                    "inconsistent") from None
        lines.append(
            f'<tr><td><span class="verdict verdict-{verdict}">{word}</span></td>'
            f'<th scope="row">{sentence}</th>'
            f'<td data-label="{escape(CARD_LABEL, quote=True)}">{held}</td>'
            f'<td>{test}</td></tr>')
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines) + "\n"
