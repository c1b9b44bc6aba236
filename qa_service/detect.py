"""Detection stage: prohibitions (P), customer signals (C) and required conduct (R).

Evidence comes from two independent sources per utterance — the lexicon matcher
(exact, pinyin and proximity matches, with negations) and the utterance classifier —
and is fused here, where the call's context is known:

* speaker gating: P rules only on the agent's speech, C rules only on the other party's
  (a customer shouting 我要报警 is a C01 signal, never a P03);
* the contact: on a call answered by a third party, an agent turn that discloses the
  debt is P06 even in mild words, and only there can the callee's refusal be C02;
* neighbouring turns: R04 looks at what the agent says after a C01, R01 at the opening,
  R03 at the close.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from qa_service.domain import CallMetadata, Finding, Speaker, Utterance
from qa_service.lexicon_schema import LexiconHit

P_RULES = tuple(f"P{i:02d}" for i in range(1, 11))
C_RULES = ("C01", "C02", "C03")


@dataclass(frozen=True)
class FusionParams:
    """How lexicon and classifier evidence combine (see :func:`fuse`)."""

    lexicon_alone: float = 0.75  # a lexicon hit this strong fires without the classifier
    # The classifier alone fires above its tuned threshold, but never below this floor:
    # an inspector's trust is lost to false alarms faster than it is won by recall.
    classifier_alone: float = 0.97
    # The classifier is over-confident on short garbled snippets (an ASR-mangled "喂，是张伟
    # 吗" scored 0.99 for insults); alone, it may only speak for a real sentence.
    classifier_alone_min_chars: int = 8
    lexicon_support: float = 0.3  # a weaker hit fires when the classifier leans the same way
    support_factor: float = 1.0  # ... i.e. reaches this fraction of its own threshold
    third_party_p06: float = 0.75  # confidence of a debt disclosure on a third-party call


@dataclass(frozen=True)
class ConductLexicon:
    """Cue lists for R01/R03/R04 and third-party disclosure (lexicons/conduct.yaml)."""

    opening_window_s: float = 30.0
    agency: tuple[str, ...] = ()
    principal: tuple[str, ...] = ()
    business: tuple[str, ...] = ()
    courteous: tuple[str, ...] = ()
    hostile: tuple[str, ...] = ()
    apology: tuple[str, ...] = ()
    escalation: tuple[str, ...] = ()
    debt: tuple[str, ...] = ()
    safe_third_party: tuple[str, ...] = ()
    why: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> ConductLexicon:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        r01, r03, r04, p06 = (raw.get(k, {}) for k in ("R01", "R03", "R04", "P06_third_party"))
        return cls(
            opening_window_s=float(r01.get("window_s", 30)),
            agency=tuple(r01.get("agency", ())),
            principal=tuple(r01.get("principal", ())),
            business=tuple(r01.get("business", ())),
            courteous=tuple(r03.get("courteous", ())),
            hostile=tuple(r03.get("hostile", ())),
            apology=tuple(r04.get("apology", ())),
            escalation=tuple(r04.get("escalation", ())),
            debt=tuple(p06.get("debt", ())),
            safe_third_party=tuple(p06.get("safe", ())),
            why={
                k: str(raw.get(k, {}).get("why", ""))
                for k in ("R01", "R03", "R04", "P06_third_party")
            },
        )


def _has_any(text: str, cues: Sequence[str]) -> list[str]:
    return [c for c in cues if c in text]


@dataclass(frozen=True)
class UtteranceEvidence:
    """Everything known about one utterance before fusion."""

    index: int
    utterance: Utterance
    lexicon: dict[str, list[LexiconHit]]  # rule -> non-negated hits
    scores: dict[str, float]  # rule -> classifier probability


class Detector:
    """Runs matcher + classifier over a call's utterances and fuses their evidence."""

    def __init__(self, matcher, classifier, conduct: ConductLexicon, params: FusionParams) -> None:
        self.matcher = matcher
        self.classifier = classifier
        self.conduct = conduct
        self.params = params

    def detect(self, utterances: Sequence[Utterance], meta: CallMetadata) -> list[Finding]:
        evidence = self._evidence(utterances)
        third_party = (meta.contact_role or "") == "third_party"
        opening = self._opening(utterances)
        scripted = self._identification_turns(utterances, opening)
        findings: list[Finding] = []
        for ev in evidence:
            findings.extend(
                self._utterance_findings(ev, third_party, evidence, scripted=ev.index in scripted)
            )
        findings.extend(self._required_conduct(utterances, opening, findings))
        return findings

    def _evidence(self, utterances: Sequence[Utterance]) -> list[UtteranceEvidence]:
        items = [(u.speaker.value, u.text) for u in utterances]
        probs = self.classifier.predict(items) if (items and self.classifier) else [{}] * len(items)
        out = []
        for i, (u, p) in enumerate(zip(utterances, probs, strict=True)):
            hits: dict[str, list[LexiconHit]] = {}
            for hit in self.matcher.match(u.text):
                if not hit.negated:
                    hits.setdefault(hit.rule, []).append(hit)
            out.append(UtteranceEvidence(i, u, hits, dict(p)))
        return out

    def _allowed(self, speaker: Speaker) -> tuple[str, ...]:
        if speaker is Speaker.AGENT:
            return P_RULES
        if speaker is Speaker.CUSTOMER:
            return C_RULES
        return P_RULES + C_RULES  # unattributed speech: let the evidence decide

    def _opening(self, utterances: Sequence[Utterance]) -> list[int]:
        """Indexes of the agent's opening turns: those in the first seconds, up to and
        including the first that gets down to the debt."""
        opening: list[int] = []
        for i, u in enumerate(utterances):
            if u.speaker is not Speaker.AGENT:
                continue
            if u.start > self.conduct.opening_window_s and opening:
                break
            opening.append(i)
            if _has_any(u.text, self.conduct.business):
                break
        return opening

    def _identification_turns(
        self, utterances: Sequence[Utterance], opening: list[int]
    ) -> set[int]:
        """Opening turns that recite the identification script (agency and principal).

        The classifier was trained on one intent per line; on the long scripted opening,
        garbled by the recogniser (受有安言行…委托林信寗), it has fired at 0.99 for
        threats that are not there. There, a prohibition needs lexicon evidence.
        """
        c = self.conduct
        return {
            i
            for i in opening
            if _has_any(utterances[i].text, c.agency) and _has_any(utterances[i].text, c.principal)
        }

    def _utterance_findings(
        self,
        ev: UtteranceEvidence,
        third_party: bool,
        evidence: list[UtteranceEvidence],
        *,
        scripted: bool = False,
    ) -> list[Finding]:
        u = ev.utterance
        out = []
        for rule in self._allowed(u.speaker):
            if rule == "C02" and not third_party:
                continue  # only a third party can refuse contact on the debtor's behalf
            lex = max((h.weight for h in ev.lexicon.get(rule, ())), default=0.0)
            prob = ev.scores.get(rule, 0.0)
            if rule == "P06" and not third_party and lex == 0.0:
                # On the debtor's own line, talking about the debt is the job; pressing a
                # third party needs words that name one (你替他还, 告诉你家人).
                continue
            threshold = self._threshold(rule)
            if lex == 0.0 and (
                scripted or _cjk_count(u.text) < self.params.classifier_alone_min_chars
            ):
                # Too short to judge, or the identification script: not without a lexicon cue.
                prob = min(prob, threshold - 1e-6)
            fired, confidence = fuse(lex, prob, threshold, self.params)
            if fired:
                out.append(
                    self._finding(
                        rule, ev, confidence, lex, prob, source=_source(lex, prob, threshold)
                    )
                )
        if third_party and u.speaker is Speaker.AGENT and not any(f.rule == "P06" for f in out):
            disclosed = self._third_party_disclosure(ev, evidence)
            if disclosed:
                out.append(
                    self._finding(
                        "P06",
                        ev,
                        self.params.third_party_p06,
                        0.0,
                        ev.scores.get("P06", 0.0),
                        source="context",
                        extra={
                            "third_party_cues": disclosed,
                            "why": self.conduct.why["P06_third_party"],
                        },
                    )
                )
        return out

    def _third_party_disclosure(
        self, ev: UtteranceEvidence, evidence: list[UtteranceEvidence]
    ) -> list[str]:
        first_agent = next((e.index for e in evidence if e.utterance.speaker is Speaker.AGENT), -1)
        if ev.index == first_agent:
            return []  # the mandatory opening names the bank; that is not a disclosure
        text = ev.utterance.text
        if _has_any(text, self.conduct.safe_third_party):
            return []
        return _has_any(text, self.conduct.debt)

    def _threshold(self, rule: str) -> float:
        thresholds = getattr(self.classifier, "thresholds", None) or {}
        return float(thresholds.get(rule, 0.5))

    def _finding(self, rule, ev, confidence, lex, prob, *, source, extra=None) -> Finding:
        hits = ev.lexicon.get(rule, [])
        evidence: dict[str, object] = {
            "classifier_score": round(prob, 3),
            "lexicon_weight": round(lex, 3),
            "matches": [
                {
                    "term": h.term,
                    "matched": h.matched_text,
                    "kind": str(h.kind),
                    "via": h.via,
                    "why": h.why,
                }
                for h in hits
            ],
        }
        if extra:
            evidence.update(extra)
        u = ev.utterance
        return Finding(
            rule=rule,
            source=source,
            confidence=round(confidence, 3),
            speaker=u.speaker,
            start=u.start,
            end=u.end,
            text=u.text,
            evidence=evidence,
        )

    def _required_conduct(
        self, utterances: Sequence[Utterance], opening: list[int], findings: list[Finding]
    ) -> list[Finding]:
        agent = [u for u in utterances if u.speaker is Speaker.AGENT]
        if not agent:
            return []
        out = []
        c = self.conduct
        # R01: agency and principal bank named in the opening agent turn(s).
        opening_text = "".join(utterances[i].text for i in opening)
        agency, principal = _has_any(opening_text, c.agency), _has_any(opening_text, c.principal)
        if not (agency and principal):
            out.append(
                _conduct_finding(
                    "R01",
                    agent[0],
                    0.8,
                    {"agency_named": agency, "bank_named": principal, "why": c.why["R01"]},
                )
            )
        # R03: the last agent turn closes courteously and is not hostile.
        last = agent[-1]
        courteous, hostile = _has_any(last.text, c.courteous), _has_any(last.text, c.hostile)
        if hostile or not courteous:
            out.append(
                _conduct_finding(
                    "R03",
                    last,
                    0.8,
                    {"courteous": courteous, "hostile": hostile, "why": c.why["R03"]},
                )
            )
        # R04: after the first C01, the agent paused the collection or handed over.
        c01 = min(
            (f.start for f in findings if f.rule == "C01" and f.start is not None), default=None
        )
        if c01 is not None:
            after = [u for u in agent if u.start > c01]
            said = "".join(u.text for u in after)
            apology, escalation = _has_any(said, c.apology), _has_any(said, c.escalation)
            if not escalation:
                anchor = after[0] if after else agent[-1]
                out.append(
                    _conduct_finding(
                        "R04",
                        anchor,
                        0.8,
                        {"apology": apology, "escalation": escalation, "why": c.why["R04"]},
                    )
                )
        return out


def _conduct_finding(rule: str, u: Utterance, confidence: float, evidence: dict) -> Finding:
    return Finding(
        rule=rule,
        source="conduct",
        confidence=confidence,
        speaker=u.speaker,
        start=u.start,
        end=u.end,
        text=u.text,
        evidence=evidence,
    )


def fuse(lex: float, prob: float, threshold: float, params: FusionParams) -> tuple[bool, float]:
    """Decide one rule on one utterance from a lexicon weight and a classifier probability.

    Fires on a strong lexicon hit alone, on the classifier alone above its tuned
    threshold, or on a weaker hit the classifier supports. The confidence is the
    noisy-OR of the two sources.
    """
    confidence = 1.0 - (1.0 - lex) * (1.0 - prob)
    fired = (
        lex >= params.lexicon_alone
        or prob >= max(threshold, params.classifier_alone)
        or (lex >= params.lexicon_support and prob >= threshold * params.support_factor)
    )
    return fired, confidence


def _cjk_count(text: str) -> int:
    return sum("\u4e00" <= ch <= "\u9fff" for ch in text)


def _source(lex: float, prob: float, threshold: float) -> str:
    if lex > 0 and prob >= threshold:
        return "lexicon+classifier"
    return "lexicon" if lex > 0 else "classifier"
