"""The reference article's claims as named, checkable statements, and the audit's own control
tests, checked the same way.

A claim is a sentence, one number computed from a run (or from a pair of runs with the same
seed), and a threshold chosen from what the sentence says, before looking at any result; each
threshold carries its reason. CLAIMS are the reference's sentences; CONTROL_CLAIMS are sentences
of ours that the controls decide (held-out inputs, the optimizer). The per-run numbers come from
runstats.run_statistics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

# Claims about the query vectors only make sense when the update acts on W_Q.
QUERY_UPDATES = (("q", "lora"), ("q", "full"))


@dataclass(frozen=True)
class Claim:
    name: str
    sentence: str          # the reference's words this claim tests
    statistic: str         # what is measured, in words
    key: str               # the per-run statistic (run_statistics) it reads
    op: str                # "<=", ">=", "<" or "between"
    threshold: float | str | tuple[float, float]   # a number, or a per-run statistic's name
    why: str               # why this threshold says what the sentence says
    partner: str | None = None   # "lora_k" or "full_q": compares with that run of the same seed
    query_only: bool = False     # needs the update on W_Q (Q is unchanged otherwise)
    sites: tuple[str, ...] | None = None   # only for updates of these projections (None: any)
    label: str = ""              # a few words for figures and narrow tables

    def threshold_text(self) -> str:
        if self.op == "between":
            lo, hi = self.threshold
            return f"in [{lo:g}, {hi:g}]"
        if isinstance(self.threshold, str):
            value = THRESHOLD_NAMES.get(self.threshold, self.threshold)
        else:
            value = f"{self.threshold:g}"
        return f"{OP_TEXT[self.op]} {value}"


# How thresholds read in tables (plain text that is safe in a Markdown table cell).
OP_TEXT = {"<=": "≤", "<": "<", ">=": "≥"}
THRESHOLD_NAMES = {"stop_prob": "stop probability", "rank": "r"}


CLAIMS: tuple[Claim, ...] = (
    Claim("diffuse_before",
          "For query 0, attention mass is spread across many keys (e.g. A[0,5] ≈ 0.11)",
          "target weight before training, in units of the uniform weight 1/n",
          "target_weight_over_uniform", "between", (0.5, 2.0),
          "'near 1/n' read as within a factor 2 of uniform",
          label="target weight near 1/n before"),
    Claim("no_key_dominates_before",
          "No single key dominates the attention distribution",
          "largest attention weight anywhere in the map before training",
          "max_weight_before", "<", 0.5,
          "'dominates' read as holding a majority of a row's mass",
          label="no key dominates before"),
    Claim("reaches_target",
          "LoRA introduces a targeted reallocation of attention mass",
          "target weight when training stops",
          "target_weight_after", ">=", "stop_prob",
          "training is meant to stop at the stop probability; a run that hits the step cap first fails",
          label="reaches stop probability"),
    Claim("only_target_row",
          "Only the intended query changes behavior; the rest of the attention structure is "
          "preserved",
          "largest total-variation change of another row, over that of the target row",
          "tv_other_over_target", "<=", 0.1,
          "'only' read as every other row moving less than a tenth as much as the target row",
          label="only the target row changes"),
    Claim("score_change_localized",
          "A strong, localized increase appears at (query=0, key=5); most other entries remain "
          "similar to the pre-LoRA matrix",
          "largest absolute score change off the target cell, over the target cell's increase",
          "dscore_offtarget_over_target", "<=", 0.5,
          "'localized' read as no other cell changing by more than half the target's increase",
          label="score change localised"),
    Claim("target_cosine_drops",
          "Token 0 exhibits a large drop in cosine similarity",
          "cosine between the target query before and after training",
          "cos_target", "<=", 0.9,
          "'large drop' read as a rotation of at least 25.8 degrees (cos <= 0.9)",
          query_only=True,
          label="target query rotates"),
    Claim("other_cosines_near_one",
          "Most other tokens remain close to 1.0",
          "median over the other queries of the cosine before/after",
          "cos_others_median", ">=", 0.95,
          "'most' read as the median, 'close to 1' as cos >= 0.95 (within 18.2 degrees)",
          query_only=True,
          label="other queries keep direction"),
    Claim("target_update_dominates",
          "Token 0 shows a significantly larger ‖ΔQ‖; other tokens have near-zero updates",
          "norm of the target query's update, over the mean norm of the others'",
          "dq_ratio", ">=", 10.0,
          "'near-zero' read as the others moving at most a tenth as much on average",
          query_only=True,
          label="target ‖Δq‖ dominates"),
    Claim("update_is_rotation",
          "LoRA performs controlled rotations of specific query vectors",
          "length of the target query after training, over its length before",
          "q_norm_ratio_target", "between", (0.9, 1.1),
          "a rotation keeps the norm: within 10% of 1",
          query_only=True,
          label="update is a rotation"),
    Claim("score_change_low_rank",
          "It introduces a structured, low-rank perturbation",
          "numerical rank of the score change ΔS",
          "dscore_rank", "<=", "rank",
          "ΔS = ΔQ Kᵀ / √d cannot exceed the rank r of ΔW; numerical rank as numpy's "
          "matrix rank",
          label="ΔS has rank ≤ r"),
    Claim("queries_disturb_less_than_keys",
          "Keys serve as anchors; excessive modification destabilizes similarity structure",
          "largest other-row TV change with LoRA on Q, over the same with LoRA on K "
          "(same seed, same stopping rule)",
          "tv_others_max", "<", 1.0,
          "adapting queries should disturb the other rows less than adapting keys",
          partner="lora_k",
          label="Q disturbs less than K"),
    Claim("lora_more_local_than_full",
          "LoRA enables localized control over attention routing rather than wholesale "
          "retraining",
          "largest other-row TV change with LoRA on Q, over the same with full "
          "fine-tuning of WQ stopped at the same target weight (same seed)",
          "tv_others_max", "<", 1.0,
          "LoRA should be more local than updating all of WQ",
          partner="full_q",
          label="LoRA more local than full FT"),
)

# The audit's own tests, not the reference's: they are summarised in every setting like the
# claims, and shown with the controls rather than in the claims table.
CONTROL_CLAIMS: tuple[Claim, ...] = (
    Claim("heldout_rows_unchanged",
          "On sequences it never saw, the trained update leaves attention nearly unchanged",
          "largest total-variation change of any row of a fresh sequence (mean over the fresh "
          "sequences), over the target row's change on the training sequence",
          "heldout_tv_over_target", "<=", 0.1,
          "the reading of 'only the target row changes' carried to unseen inputs: no row of a "
          "fresh sequence moves more than a tenth as much as the target row did",
          sites=("q", "k"),
          label="fresh sequences unchanged"),
    Claim("leakage_follows_sign",
          "The other queries move in proportion to their overlap with the sign of the target "
          "token, not with the token itself",
          "mean absolute error of the sign prediction of the other queries' leakage, over that "
          "of the dot-product prediction (no fitted constant)",
          "leakage_sign_error_over_dot", "<", 1.0,
          "the sign of the target token predicts each other query's update better than its dot "
          "product with the target token does",
          query_only=True,
          label="leakage follows sign(x₀)"),
)

CLAIMS_BY_NAME = {c.name: c for c in CLAIMS + CONTROL_CLAIMS}


def claim_values(claim: Claim, stats: Mapping[str, np.ndarray],
                 partner: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """The claim's statistic per run, (N,) float64; a ratio to the partner run when paired."""
    value = np.asarray(stats[claim.key], dtype=np.float64)
    if claim.partner is None:
        return value
    if partner is None:
        raise ValueError(f"claim {claim.name} needs the {claim.partner} partner runs")
    other = np.asarray(partner[claim.key], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(other > 0, value / np.where(other > 0, other, 1.0), np.inf)


def claim_holds(claim: Claim, values: np.ndarray, stats: Mapping[str, np.ndarray]) -> np.ndarray:
    """(N,) bool: does the claim hold in each run? NaN never holds."""
    if isinstance(claim.threshold, str):
        limit = np.asarray(stats[claim.threshold], dtype=np.float64)
    else:
        limit = claim.threshold
    with np.errstate(invalid="ignore"):
        if claim.op == "<=":
            held = values <= limit
        elif claim.op == "<":
            held = values < limit
        elif claim.op == ">=":
            held = values >= limit
        elif claim.op == "between":
            lo, hi = limit
            held = (values >= lo) & (values <= hi)
        else:
            raise ValueError(f"unknown op {claim.op!r}")
    return held & np.isfinite(values)


def applies(claim: Claim, site: str, update: str) -> bool:
    """Whether a claim is meaningful for runs whose update acts on (site, update)."""
    if claim.query_only and (site, update) not in QUERY_UPDATES:
        return False
    if claim.partner is not None and (site, update) != ("q", "lora"):
        return False
    if claim.sites is not None and site not in claim.sites:
        return False
    return True
