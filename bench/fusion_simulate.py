"""Score fusion variants on evidence dumped by ``bench/fusion_probe.py``, in milliseconds.

``baseline`` re-derives the detector's decision from the dumped numbers (it must agree
with the ``found`` the detector itself gave, which this script checks); other variants
change one decision rule each. Report per family micro-F1, per-rule recall and false
alarms on harmless agent/customer lines, per probe file.

    python bench/fusion_simulate.py /tmp/probe_a.jsonl /tmp/probe_d.jsonl --variant baseline
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

from qa_service.detection.detect import FusionParams, fusion_decision

P_RULES = [f"P{i:02d}" for i in range(1, 11)]
C_RULES = ["C01", "C02", "C03"]


def decide(row: dict, variant: dict) -> list[str]:
    """The rules that fire for one dumped line under ``variant`` (the detector's own
    :func:`fusion_decision`, with the variant's parameters and thresholds)."""
    params = FusionParams()
    if "lex_floor" in variant:
        params = replace(params, lexicon_alone_floor=variant["lex_floor"])
    if "encoder_alone" in variant:
        params = replace(params, encoder_alone=variant["encoder_alone"])
    out: list[tuple[str, float, str]] = []
    for rule, e in row["rules"].items():
        if rule == "C02" and not row["third"]:
            continue
        if rule == "P06" and not row["third"] and e["lex"] == 0.0:
            continue
        if e["lex"] == 0.0 and not e["fires"] and row["chars"] < params.semantic_min_chars:
            continue
        thr = e["thr"] + variant.get("thr_shift", {}).get(rule, variant.get("thr_all", 0.0))
        # The detector treats a disavowal as a denial; a variant may switch that off.
        relayed = bool(variant.get("disavowal", True) and row.get("disavowal") and rule[0] == "P")
        relayed = relayed or rule in row.get("withdrawn", ())
        excused = bool(e.get("excused"))
        denied = (bool(e["neg"]) and not excused) or relayed
        floor = variant.get("lex_floor_rules", {}).get(rule)
        how = fusion_decision(
            e["prob"],
            min(thr, 0.995),
            e["lex"],
            example=e["fires"],
            denied=denied,
            relayed=relayed,
            params=params if floor is None else replace(params, lexicon_alone_floor=floor),
            excused=excused,
            encoder=e.get("enc_judged", 0.0),
        )
        if how is not None:
            out.append((rule, e["prob"], how))
    if len(out) > 1:  # a second rule on the models' word alone needs secondary_rule
        top = max(p for _, p, _ in out)
        out = [
            (r, p, h)
            for r, p, h in out
            if not (h in ("fusion", "encoder") and p < params.secondary_rule and round(p, 3) < top)
        ]
    return sorted(r for r, _, _ in out)


def score(rows: list[dict], variant: dict) -> dict:
    tp, fp, fn = Counter(), Counter(), Counter()
    harmless = Counter()
    harmless_hit = Counter()
    mismatch = 0
    for row in rows:
        found = set(decide(row, variant))
        if not variant.get("name") or variant["name"] == "baseline":
            mismatch += found != set(row["found"])
        gold = set(row["labels"])
        for r in found & gold:
            tp[r] += 1
        for r in found - gold:
            fp[r] += 1
        for r in gold - found:
            fn[r] += 1
        if not gold:
            harmless[row["speaker"]] += 1
            harmless_hit[row["speaker"]] += bool(found)

    def f1(rules):
        t = sum(tp[r] for r in rules)
        p = t / max(1, t + sum(fp[r] for r in rules))
        r_ = t / max(1, t + sum(fn[r] for r in rules))
        return 2 * p * r_ / max(1e-9, p + r_), p, r_

    return {
        "P": f1(P_RULES),
        "C": f1(C_RULES),
        "fa_agent": harmless_hit["agent"] / max(1, harmless["agent"]),
        "fa_customer": harmless_hit["customer"] / max(1, harmless["customer"]),
        "recall": {r: tp[r] / max(1, tp[r] + fn[r]) for r in P_RULES + C_RULES},
        "mismatch": mismatch,
    }


VARIANTS = {
    "baseline": {},
    "no_encoder_alone": {"encoder_alone": 1.01},
    "encoder_alone_0.93": {"encoder_alone": 0.93},
    "encoder_alone_0.97": {"encoder_alone": 0.97},
    "lex_floor_0.2": {"lex_floor": 0.2},
    "lex_floor_0.3": {"lex_floor": 0.3},
    "lex_floor_0.35": {"lex_floor": 0.35},
    "lex_floor_0.5": {"lex_floor": 0.5},
    "c03_floor_0.2": {"lex_floor_rules": {"C03": 0.2}},
    "c_floor_0.2": {"lex_floor_rules": {"C01": 0.2, "C02": 0.2, "C03": 0.2}},
    "p03_p04_floor_0.2": {"lex_floor_rules": {"P03": 0.2, "P04": 0.2}},
    "p03_p04_floor_0.3": {"lex_floor_rules": {"P03": 0.3, "P04": 0.3}},
    "no_disavowal": {"disavowal": False},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("probes", nargs="+", type=Path)
    ap.add_argument("--variant", action="append")
    args = ap.parse_args()
    names = args.variant or list(VARIANTS)
    for path in args.probes:
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
        print(f"== {path} ({len(rows)} lines)")
        for name in names:
            v = {"name": name, **VARIANTS[name]}
            s = score(rows, v)
            weak = {r: round(x, 2) for r, x in s["recall"].items() if x < 0.85}
            print(
                f"  {name:22s} P {s['P'][0]:.3f} ({s['P'][1]:.2f}/{s['P'][2]:.2f})"
                f"  C {s['C'][0]:.3f}  FA agent {s['fa_agent']:.1%} customer {s['fa_customer']:.1%}"
                + (f"  mismatch {s['mismatch']}" if name == "baseline" else "")
                + f"  weak recall {weak}"
            )


if __name__ == "__main__":
    main()
