"""Utterance classifier: rule probabilities (P01–P10, C01–C03) for one turn of a call.

Lexicons find the wordings someone foresaw; this model scores paraphrases and
ASR-garbled wordings nobody listed. It reads the speaker as well as the text, because
the same words are a violation from the agent and only a signal from the customer
(a customer saying 我要报警 is C01, never P03).

Two kinds of model directory load the same way (``transformers`` format, local files
only, nothing fetched from a hub):

* the committed default, ``models/classifier/``: a small BERT trained from scratch on
  ``models/data`` with a character vocabulary (``vocab.txt``), input ``[CLS] [坐席] 字 字 … [SEP]``;
* a fine-tuned bigger checkpoint (``models/train_classifier.py --base DIR``): its own
  tokenizer, input as the sentence pair (坐席, text).

``labels.json`` beside the weights names the label order, the per-rule decision
thresholds (tuned on a dev split, never on held-out data) and which tokenizer applies.
torch and transformers are imported only when a model is loaded, so the web process and
the tests that do not classify never pay for them.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from qa_service.errors import ModelError

LABELS: tuple[str, ...] = (
    *(f"P{i:02d}" for i in range(1, 11)),
    "C01",
    "C02",
    "C03",
)
# The speaker as the model reads it: one vocabulary token for the char model, one word
# (the first sentence of a pair) for a pretrained tokenizer.
SPEAKER_WORDS = {"agent": "坐席", "customer": "客户", "unknown": "未知"}
SPEAKER_TOKENS = {speaker: f"[{word}]" for speaker, word in SPEAKER_WORDS.items()}
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *SPEAKER_TOKENS.values())
CHAR_TOKENIZER = "char"
PRETRAINED_TOKENIZER = "pretrained"
# Heads: "mean_max" pools every position (the from-scratch model, see _mean_max_class);
# "auto" is whatever AutoModelForSequenceClassification builds for a checkpoint.
MEAN_MAX_HEAD = "mean_max"
AUTO_HEAD = "auto"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Whisper utterances can run past the model's length; longer texts are scored in
# overlapping windows and each rule keeps its highest window.
_WINDOW_OVERLAP = 16


def normalize_text(text: str) -> str:
    """Full-width → half-width, Latin lower-cased, whitespace dropped (as in training)."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(text.split())


def speaker_key(speaker: object) -> str:
    """'agent' | 'customer' | 'unknown' from a str or a ``Speaker``; anything else is a bug."""
    key = str(getattr(speaker, "value", speaker)).lower()
    if key not in SPEAKER_WORDS:
        raise ValueError(f"unknown speaker {speaker!r}; expected one of {sorted(SPEAKER_WORDS)}")
    return key


class CharEncoder:
    """Character-level tokenizer of the from-scratch model: one id per character."""

    kind = CHAR_TOKENIZER

    def __init__(self, vocab: Sequence[str], max_length: int) -> None:
        self.vocab = list(vocab)
        self.max_length = max_length
        self._ids = {token: i for i, token in enumerate(self.vocab)}
        missing = [t for t in SPECIAL_TOKENS if t not in self._ids]
        if missing:
            raise ModelError(f"分类器词表缺少特殊符号 / vocab lacks {missing}")
        self._pad, self._unk = self._ids["[PAD]"], self._ids["[UNK]"]
        self._cls, self._sep = self._ids["[CLS]"], self._ids["[SEP]"]

    @classmethod
    def load(cls, model_dir: Path, max_length: int) -> CharEncoder:
        lines = (model_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
        return cls([line for line in lines if line], max_length)

    def save(self, model_dir: Path) -> None:
        (model_dir / "vocab.txt").write_text("\n".join(self.vocab) + "\n", encoding="utf-8")

    @property
    def window(self) -> int:
        """Characters of text that fit beside [CLS], the speaker token and [SEP]."""
        return self.max_length - 3

    def ids(self, speaker: str, text: str) -> list[int]:
        body = [self._ids.get(c, self._unk) for c in text[: self.window]]
        return [self._cls, self._ids[SPEAKER_TOKENS[speaker]], *body, self._sep]

    def __call__(self, items: Sequence[tuple[str, str]]) -> dict[str, Any]:
        import torch

        rows = [self.ids(speaker, text) for speaker, text in items]
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}


class PretrainedEncoder:
    """A checkpoint's own tokenizer; the speaker goes in as the first sentence of a pair."""

    kind = PRETRAINED_TOKENIZER

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    @classmethod
    def load(cls, model_dir: Path, max_length: int) -> PretrainedEncoder:
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True), max_length)

    def save(self, model_dir: Path) -> None:
        self.tokenizer.save_pretrained(str(model_dir))

    @property
    def window(self) -> int:
        # Chinese BERT-style vocabularies hold one token per character; [CLS], the
        # speaker word and two [SEP] take the rest.
        return self.max_length - 5

    def __call__(self, items: Sequence[tuple[str, str]]) -> dict[str, Any]:
        return dict(
            self.tokenizer(
                [SPEAKER_WORDS[speaker] for speaker, _ in items],
                [text for _, text in items],
                truncation="only_second",
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            )
        )


@dataclass(frozen=True)
class ModelInfo:
    """What ``labels.json`` says about a model directory."""

    labels: tuple[str, ...]
    thresholds: dict[str, float]
    tokenizer: str
    max_length: int
    head: str = AUTO_HEAD

    @classmethod
    def read(cls, model_dir: Path) -> ModelInfo:
        try:
            raw = json.loads((model_dir / "labels.json").read_text(encoding="utf-8"))
            labels = tuple(raw["labels"])
            if sorted(labels) != sorted(LABELS):
                raise ValueError(f"labels {list(labels)} are not the rules {list(LABELS)}")
            # No default threshold: a rule without a tuned one is an incomplete model.
            thresholds = {rule: float(raw["thresholds"][rule]) for rule in labels}
            return cls(
                labels,
                thresholds,
                str(raw["tokenizer"]),
                int(raw["max_length"]),
                str(raw.get("head", AUTO_HEAD)),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(
                f"分类器 labels.json 无法读取 / unreadable labels.json: {exc}",
                model_dir=model_dir,
            ) from exc

    def write(self, model_dir: Path) -> None:
        raw = {
            "labels": list(self.labels),
            "thresholds": {rule: round(self.thresholds[rule], 4) for rule in self.labels},
            "tokenizer": self.tokenizer,
            "max_length": self.max_length,
            "head": self.head,
            "speaker_tokens": SPEAKER_TOKENS,
        }
        (model_dir / "labels.json").write_text(
            json.dumps(raw, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )


class UtteranceClassifier:
    """A loaded model: ``predict`` scores (speaker, text) pairs, ``thresholds`` decide."""

    def __init__(
        self,
        model: Any,
        encoder: CharEncoder | PretrainedEncoder,
        info: ModelInfo,
        *,
        batch_size: int = 32,
    ) -> None:
        self.model = model
        self.encoder = encoder
        self.labels = info.labels
        self.thresholds: dict[str, float] = dict(info.thresholds)
        self.max_length = info.max_length
        self.batch_size = batch_size

    @classmethod
    def load(
        cls, model_dir: Path, *, num_threads: int | None = None, batch_size: int = 32
    ) -> UtteranceClassifier:
        """Load a model directory from local disk; a missing or incomplete one is ModelError.

        ``num_threads`` sets torch's intra-op threads (a process-wide setting): give the
        worker's share of cores so that classification does not starve Whisper.
        """
        model_dir = Path(model_dir)
        check_model_dir(model_dir)
        info = ModelInfo.read(model_dir)
        try:
            import torch
            from transformers import AutoModelForSequenceClassification
        except ImportError as exc:
            raise ModelError(
                "分类器需要 torch 与 transformers / the classifier needs torch and "
                "transformers: pip install -e '.[ml]'",
                missing=exc.name,
            ) from exc
        if num_threads:
            torch.set_num_threads(num_threads)
        # transformers 5 draws a progress bar per load; a worker's log is no terminal.
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        try:
            if info.tokenizer == CHAR_TOKENIZER:
                encoder: CharEncoder | PretrainedEncoder = CharEncoder.load(
                    model_dir, info.max_length
                )
            elif info.tokenizer == PRETRAINED_TOKENIZER:
                encoder = PretrainedEncoder.load(model_dir, info.max_length)
            else:
                raise ModelError(
                    f"未知的分词器类型 / unknown tokenizer kind {info.tokenizer!r}",
                    model_dir=model_dir,
                )
            loader = (
                mean_max_class()
                if info.head == MEAN_MAX_HEAD
                else AutoModelForSequenceClassification
            )
            model = loader.from_pretrained(str(model_dir), local_files_only=True)
        except ModelError:
            raise
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(
                f"分类器无法加载 / cannot load the classifier: {exc}", model_dir=model_dir
            ) from exc
        if model.config.num_labels != len(info.labels):
            raise ModelError(
                "分类器输出数与 labels.json 不符 / model outputs do not match labels.json",
                model_dir=model_dir,
                outputs=model.config.num_labels,
                labels=len(info.labels),
            )
        model.eval()
        return cls(model, encoder, info, batch_size=batch_size)

    def predict(self, items: Sequence[tuple[str, str]]) -> list[dict[str, float]]:
        """Rule → probability (all labels) for each (speaker, text) pair, in order."""
        import torch

        windows: list[tuple[str, str]] = []
        owner: list[int] = []
        for index, (speaker, text) in enumerate(items):
            key = speaker_key(speaker)
            for piece in _windows(normalize_text(text), self.encoder.window):
                windows.append((key, piece))
                owner.append(index)
        scores = [[0.0] * len(self.labels) for _ in items]
        with torch.inference_mode():
            for start in range(0, len(windows), self.batch_size):
                batch = windows[start : start + self.batch_size]
                logits = self.model(**self.encoder(batch)).logits
                probs = torch.sigmoid(logits).tolist()
                for offset, row in enumerate(probs):
                    best = scores[owner[start + offset]]
                    for k, p in enumerate(row):
                        best[k] = max(best[k], p)
        return [dict(zip(self.labels, row, strict=True)) for row in scores]

    def decide(self, scores: Mapping[str, float]) -> list[str]:
        """The rules whose probability reaches their tuned threshold."""
        return [rule for rule in self.labels if scores.get(rule, 0.0) >= self.thresholds[rule]]


@lru_cache(maxsize=1)
def mean_max_class() -> Any:
    """BertModel + a multi-label head over mean- and max-pooled token states.

    Why not BertForSequenceClassification's [CLS] pooler: trained from scratch on a few
    thousand sentences, [CLS] learns to attend to the words that matter only slowly and
    some rules never separate; max-pooling lets any position that holds 律师函 or 个人账户
    fire directly, wherever the phrase sits in the turn. Built on first use so that
    importing this module does not import torch.
    """
    import torch
    from transformers import BertModel, BertPreTrainedModel
    from transformers.modeling_outputs import SequenceClassifierOutput

    class BertMeanMaxClassifier(BertPreTrainedModel):  # type: ignore[misc]
        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.bert = BertModel(config, add_pooling_layer=False)
            self.dropout = torch.nn.Dropout(config.hidden_dropout_prob)
            self.classifier = torch.nn.Linear(2 * config.hidden_size, config.num_labels)
            self.post_init()

        def forward(
            self,
            input_ids: Any = None,
            attention_mask: Any = None,
            labels: Any = None,
            **kwargs: Any,
        ) -> Any:
            states = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            mean = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            peak = states.masked_fill(mask == 0, torch.finfo(states.dtype).min).amax(1)
            logits = self.classifier(self.dropout(torch.cat([mean, peak], dim=-1)))
            loss = None
            if labels is not None:
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
            return SequenceClassifierOutput(loss=loss, logits=logits)

    return BertMeanMaxClassifier


def check_model_dir(model_dir: Path) -> None:
    """Raise ModelError naming what is missing, before torch is even imported."""
    if not model_dir.is_dir():
        raise ModelError(
            f"分类器目录不存在 / classifier directory not found: {model_dir}. "
            "Rebuild it with: python models/train_classifier.py",
            model_dir=model_dir,
        )
    missing = [name for name in ("config.json", "labels.json") if not (model_dir / name).is_file()]
    if not any((model_dir / name).is_file() for name in _WEIGHT_FILES):
        missing.append(_WEIGHT_FILES[0])
    if missing:
        raise ModelError(
            f"分类器目录不完整 / classifier directory incomplete, missing {', '.join(missing)}",
            model_dir=model_dir,
        )


def _windows(text: str, size: int) -> list[str]:
    if len(text) <= size:
        return [text]
    step = max(1, size - _WINDOW_OVERLAP)
    starts = range(0, len(text) - _WINDOW_OVERLAP, step)
    return [text[s : s + size] for s in starts if text[s : s + size]]
