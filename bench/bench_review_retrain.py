"""Learning from reviews, end to end: review decisions → exported labels → retrained head.

Issue 10's last item, reproduced in a temporary directory with the documented commands:

1. **Calls.** A fresh SQLite database and audio store (``QA_DATA_DIR``; ``DATABASE_URL`` and
   ``REDIS_URL`` empty) filled by ``qa-service demo --no-serve`` (the four samples, the
   sample roster and the demo accounts) and, with ``--corpus``, ``qa-service analyze
   --store`` of that corpus's recordings (by default all of ``dev-hard``: its fast, noisy,
   half-mono calls give the machine something to get wrong).
2. **Reviews over HTTP.** The demo inspector logs in to the app (in process, FastAPI's
   TestClient: a browser session with its CSRF token), takes the review queue, claims each
   call and decides every finding as the corpus's ground truth (``labels/<id>.json``)
   says — the inspector is simulated, so the run is reproducible: a text-rule finding is
   confirmed if a scripted turn carrying its rule lies within ±0.5 s, otherwise dismissed
   (``rule_not_applicable`` when that turn carries another rule, ``wrong_speaker`` when the
   other party said it, else ``compliant_in_context``); whole-call and acoustic findings
   are confirmed or dismissed by the call's ``expected_rules``. Each labelled turn the
   machine missed is added (``POST /calls/{id}/findings``) over the span of the
   transcript utterance that holds its words. Then the review is completed. Calls the
   machine passed are not in the queue and are not reviewed.
3. **Export.** ``qa-service export review-labels -o review-labels.jsonl``.
4. **Retrain.** ``python models/train_encoder_head.py --extra review-labels.jsonl --out
   encoder_head`` (the sentence-vector cache of earlier runs, ``~/.cache/qa-service``, is
   reused). ``--wait-for FILE`` first waits for another training run to finish.
5. **Compare.** On the exported lines, each decided rule's encoder-head probability
   (``EncoderHead.load(...).predict``) under the shipped head (``models/encoder_head``),
   an optional ``--baseline`` head (the same command without ``--extra``: the same training
   data without the review labels) and the retrained head; and ``qa-service eval-text``
   with ``QA_ENCODER_HEAD_DIR`` pointing at each head, on the exported lines and on
   ``--check`` (labelled lines nobody reviewed: did the retrain break anything?).

    nice -n 5 .venv/bin/python bench/bench_review_retrain.py --out bench/results/review_retrain.json

The exported lines are training lines of the retrained head: the figures on them show that
the decisions were learned and that the service loads the new head, not how it generalises
(``--check`` is the regression check).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa_service.cli.demo import DEMO_ACCOUNTS  # noqa: E402
from qa_service.detection.classifier import LABELS as TEXT_RULES  # noqa: E402
from qa_service.settings import Settings  # noqa: E402
from qa_service.text.overlap import char_bigrams  # noqa: E402

QA_SERVICE = Path(sys.executable).with_name("qa-service")
SHIPPED_HEAD = ROOT / "models" / "encoder_head"
TOLERANCE_S = 0.5  # as `qa-service eval` localises a finding against a labelled turn
INSPECTOR = next(a for a in DEMO_ACCOUNTS if a.role == "inspector")
AUDIO_SUFFIXES = (".wav", ".mp3")


# --- 1. calls -----------------------------------------------------------------------------


def service_env(data_dir: Path, head_dir: Path | None = None) -> dict[str, str]:
    """The environment of every ``qa-service`` command: this run's database and store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env.update(DATABASE_URL="", REDIS_URL="", QA_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    if head_dir is not None:
        env["QA_ENCODER_HEAD_DIR"] = str(head_dir)
    return env


def run(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> tuple[float, str]:
    """Run a command (stderr to ``log``); its wall time and stdout, or stop with the log."""
    t0 = time.perf_counter()
    with log.open("w", encoding="utf-8") as err:
        proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=err, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + log.read_text(encoding="utf-8")[-4000:])
        raise SystemExit(f"{' '.join(map(str, cmd))}: exit {proc.returncode} (log: {log})")
    return elapsed, proc.stdout


def fill_database(work: Path, corpus: Path | None, calls: int) -> dict[str, Any]:
    """Step 1: ``qa-service demo --no-serve``, then the corpus calls with ``analyze``."""
    env = service_env(work / "var")
    demo_s, _ = run([str(QA_SERVICE), "demo", "--no-serve"], env, work, work / "demo.log")
    out: dict[str, Any] = {"demo_s": round(demo_s, 1), "calls": 4}
    if corpus is None or calls == 0:
        return out
    recordings = sorted(p for p in (corpus / "calls").iterdir() if p.suffix in AUDIO_SUFFIXES)
    chosen = recordings[:calls] if calls > 0 else recordings
    batch = work / "corpus-calls"
    batch.mkdir()
    for audio in chosen:
        shutil.copy2(audio, batch / audio.name)
        shutil.copy2(audio.with_suffix(".json"), batch / f"{audio.stem}.json")
    cmd = [str(QA_SERVICE), "analyze", str(batch), "--store"]
    if (corpus / "cdr.csv").is_file():
        cmd += ["--cdr", str(corpus / "cdr.csv")]
    analyze_s, _ = run(cmd, env, work, work / "analyze.log")
    audio_s = sum(
        json.loads(a.with_suffix(".json").read_text(encoding="utf-8"))["duration_s"] for a in chosen
    )
    out.update(analyze_s=round(analyze_s, 1), calls=4 + len(chosen), corpus_audio_s=audio_s)
    return out


# --- 2. reviews over HTTP -----------------------------------------------------------------


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _family_speaker(rule: str) -> str:
    return "agent" if rule.startswith("P") else "customer"


def _near(turn: dict[str, Any], start: float, end: float) -> bool:
    """Whether a span lies within the tolerance of a labelled turn."""
    return _overlap(turn["start"] - TOLERANCE_S, turn["end"] + TOLERANCE_S, start, end) > 0


def verdict(finding: dict[str, Any], truth: dict[str, Any]) -> tuple[str, str | None]:
    """What the simulated inspector decides: ("confirm", None) or ("dismiss", reason)."""
    rule = finding["rule"]
    if rule not in TEXT_RULES or finding.get("start") is None:
        ok = rule in truth["expected_rules"]
        return ("confirm", None) if ok else ("dismiss", "rule_not_applicable")
    s, e = finding["start"], finding["end"]
    near = [t for t in truth["turns"] if _near(t, s, e)]
    if any(rule in t["labels"] for t in near):
        return "confirm", None
    said = max(near, key=lambda t: _overlap(t["start"], t["end"], s, e), default=None)
    if said is None:
        return "dismiss", "compliant_in_context"
    if said["speaker"] != _family_speaker(rule):
        return "dismiss", "wrong_speaker"
    if any(r in TEXT_RULES for r in said["labels"]):
        return "dismiss", "rule_not_applicable"
    return "dismiss", "compliant_in_context"


def missed_spans(detail: dict[str, Any], truth: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(rule, start, end) of each labelled turn no finding of its rule is near: the span of
    the transcript utterance around the turn that holds its words (most character pairs in
    common, as an inspector reads the transcript; the transcript's speaker may be wrong on a
    mono call), less the time of other utterances."""
    out = []
    utterances = detail["utterances"]
    for turn in truth["turns"]:
        for rule in turn["labels"]:
            if rule not in TEXT_RULES or any(
                f["rule"] == rule
                and f.get("start") is not None
                and _near(turn, f["start"], f["end"])
                for f in detail["findings"]
            ):
                continue
            words = char_bigrams(turn["text"])
            window = (turn["start"] - 1.0, turn["end"] + 1.0)
            fits = [
                (len(words & char_bigrams(u["text"])), _overlap(u["start"], u["end"], *window), n)
                for n, u in enumerate(utterances)
                if _overlap(u["start"], u["end"], *window) > 0
            ]
            if not fits or max(fits)[0] == 0:
                continue  # its words are not in the transcript: no line to point at
            free = _free_span(utterances[max(fits)[2]], utterances)
            if free is not None:
                out.append((rule, *free))
    return out


def _free_span(u: dict[str, Any], utterances: list[dict[str, Any]]) -> tuple[float, float] | None:
    """The longest part of ``u`` that no other utterance overlaps (an added finding takes
    the text of every utterance its span touches)."""
    cuts = sorted(
        (max(v["start"], u["start"]), min(v["end"], u["end"]))
        for v in utterances
        if v is not u and _overlap(v["start"], v["end"], u["start"], u["end"]) > 0
    )
    pieces, at = [], u["start"]
    for c0, c1 in cuts:
        if c0 > at:
            pieces.append((at, c0))
        at = max(at, c1)
    if at < u["end"]:
        pieces.append((at, u["end"]))
    pieces = [(round(a + 0.01, 2), round(b - 0.01, 2)) for a, b in pieces if b - a > 0.05]
    return max(pieces, key=lambda p: p[1] - p[0], default=None)


def review_calls(data_dir: Path, truth_dirs: list[Path]) -> dict[str, Any]:
    """Step 2: the demo inspector works through the queue over the HTTP API."""
    from fastapi.testclient import TestClient

    from qa_service.api.app import create_app

    settings = Settings(DATABASE_URL="", REDIS_URL="", data_dir=data_dir)
    counts: Counter[str] = Counter()
    skipped: list[str] = []
    t0 = time.perf_counter()
    with TestClient(create_app(settings)) as client:

        def ok(response: Any, status: int = 200) -> Any:
            if response.status_code != status:
                raise SystemExit(f"{response.request.url}: {response.status_code} {response.text}")
            return response.json()

        login = ok(
            client.post(
                "/api/v1/auth/login",
                json={"username": INSPECTOR.username, "password": INSPECTOR.password},
            )
        )
        client.headers["X-CSRF-Token"] = login["csrf_token"]
        queue = ok(client.get("/api/v1/review/queue", params={"limit": 200}))["items"]
        counts["queued"] = len(queue)
        for item in queue:
            call_id = item["call_id"]
            truth_path = next(
                (d / f"{call_id}.json" for d in truth_dirs if (d / f"{call_id}.json").is_file()),
                None,
            )
            if truth_path is None:
                skipped.append(call_id)
                continue
            truth = json.loads(truth_path.read_text(encoding="utf-8"))
            ok(client.post(f"/api/v1/calls/{call_id}/claim"))
            counts["claimed"] += 1
            detail = ok(client.get(f"/api/v1/calls/{call_id}"))
            for finding in detail["findings"]:
                decision, reason = verdict(finding, truth)
                body: dict[str, Any] = {"decision": decision}
                if reason is not None:
                    body.update(reason_code=reason, comment="与标注不符 / not in the ground truth")
                ok(client.post(f"/api/v1/findings/{finding['finding_id']}/decision", json=body))
                family = "text rule" if finding["rule"] in TEXT_RULES else "other rule"
                counts[f"{decision} {reason or ''} ({family})".replace("  ", " ")] += 1
            for rule, start, end in missed_spans(detail, truth):
                note = "漏检：标注中该句违反此规则 / missed: the ground truth labels this turn"
                ok(
                    client.post(
                        f"/api/v1/calls/{call_id}/findings",
                        json={"rule": rule, "start": start, "end": end, "note": note},
                    ),
                    201,
                )
                counts["add missed (text rule)"] += 1
            ok(client.post(f"/api/v1/calls/{call_id}/complete"))
            counts["completed"] += 1
    return {
        "review_s": round(time.perf_counter() - t0, 1),
        "counts": dict(sorted(counts.items())),
        "no_ground_truth": skipped,
    }


# --- 3. export ----------------------------------------------------------------------------


def export_labels(work: Path, labels: Path) -> dict[str, Any]:
    """Step 3: the documented export; labelled lines per rule and decision."""
    export_s, stdout = run(
        [str(QA_SERVICE), "export", "review-labels", "-o", str(labels)],
        service_env(work / "var"),
        work,
        work / "export.log",
    )
    lines = read_jsonl(labels)
    per: Counter[str] = Counter()
    for line in lines:
        for d in line["decisions"]:
            per[f"{d['rule']} {_kind(d)}"] += 1
    return {
        "export_s": round(export_s, 1),
        "message": stdout.strip(),
        "skipped": (work / "export.log").read_text(encoding="utf-8").strip(),
        "lines": len(lines),
        "positive_lines": sum(1 for line in lines if line["labels"]),
        "negative_lines": sum(1 for line in lines if not line["labels"]),
        "by_rule_and_decision": dict(sorted(per.items())),
    }


def _kind(d: dict[str, Any]) -> str:
    """confirmed / added / dismissed (reason) / overturned: how a decision labels a line."""
    if d["decision"] == "dismissed":
        return f"dismissed ({d['reason_code']})"
    return str(d["decision"])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


# --- 4. retrain ---------------------------------------------------------------------------


def wait_for(path: Path, minutes: float, every_s: float = 30.0) -> float:
    """Wait until ``path`` exists (another training run has finished); seconds waited."""
    t0 = time.perf_counter()
    while not path.exists():
        if time.perf_counter() - t0 > minutes * 60:
            raise SystemExit(f"gave up waiting {minutes:g} min for {path}")
        print(f"  waiting for {path} ({(time.perf_counter() - t0) / 60:.1f} min)", file=sys.stderr)
        time.sleep(every_s)
    return time.perf_counter() - t0


def retrain(work: Path, labels: Path, head: Path, threads: int) -> dict[str, Any]:
    """Step 4: the documented retrain with the exported labels."""
    cmd = [
        sys.executable,
        str(ROOT / "models" / "train_encoder_head.py"),
        "--extra",
        str(labels),
        "--out",
        str(head),
        "--threads",
        str(threads),
    ]
    train_s, _ = run(cmd, service_env(work / "var"), ROOT, work / "train.log")
    log = (work / "train.log").read_text(encoding="utf-8").splitlines()
    encoded = [x.strip() for x in log if x.strip().startswith("encoded")]
    return {"train_s": round(train_s, 1), "encoded_log": encoded[-2:], "command": cmd[1:]}


# --- 5. compare ---------------------------------------------------------------------------


def head_probabilities(lines: list[dict[str, Any]], heads: dict[str, Path]) -> dict[str, Any]:
    """Each decided rule's encoder-head probability on its exported line, per head."""
    from qa_service.detection.semantic import EncoderHead, SentenceEncoder

    encoder = SentenceEncoder(num_threads=2)
    vectors = encoder.encode([line["text"] for line in lines])
    speakers = [line["speaker"] for line in lines]
    probs = {
        name: EncoderHead.load(path).predict(vectors, speakers) for name, path in heads.items()
    }
    rows = []
    for i, line in enumerate(lines):
        for d in line["decisions"]:
            rows.append(
                {
                    "id": line["id"],
                    "speaker": line["speaker"],
                    "text": line["text"],
                    "rule": d["rule"],
                    "kind": _kind(d),
                    **{name: round(p[i][d["rule"]], 4) for name, p in probs.items()},
                }
            )
    by_kind: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r["kind"]].append(r)
    last, first = list(heads)[-1], list(heads)[0]
    for kind, group in sorted(groups.items()):
        by_kind[kind] = {
            "decisions": len(group),
            **{name: round(float(np.mean([r[name] for r in group])), 4) for name in heads},
            f"up_vs_{first}": sum(r[last] > r[first] for r in group),
            f"down_vs_{first}": sum(r[last] < r[first] for r in group),
        }
        if len(heads) > 2:
            base = list(heads)[1]
            by_kind[kind][f"up_vs_{base}"] = sum(r[last] > r[base] for r in group)
            by_kind[kind][f"down_vs_{base}"] = sum(r[last] < r[base] for r in group)
    return {"by_kind": by_kind, "rows": rows}


def eval_text(work: Path, lines: Path, head: Path, name: str) -> dict[str, Any]:
    """``qa-service eval-text LINES --json`` with the detector on ``head``."""
    env = service_env(work / "var", head_dir=head)
    log = work / f"eval-{lines.stem}-{name}.log"
    elapsed, stdout = run([str(QA_SERVICE), "eval-text", str(lines), "--json"], env, work, log)
    report = json.loads(stdout)
    return {
        "eval_s": round(elapsed, 1),
        "lines": report["lines"],
        "families": report["families"],
        "false_alarms": report["false_alarms"],
        "rules": report["rules"],
    }


def head_rows(head: Path) -> dict[str, int]:
    info = json.loads((head / "head.json").read_text(encoding="utf-8")).get("info", {})
    return dict(info.get("rows", {}))


# --- the report ---------------------------------------------------------------------------


def print_summary(result: dict[str, Any]) -> None:
    say = print
    steps = result["steps_s"]
    say("\n== time per step ==")
    for step, seconds in steps.items():
        say(f"  {step:<44} {seconds:>8.1f} s")
    review = result["review"]["counts"]
    say("\n== review decisions (over HTTP) ==")
    for key, n in review.items():
        say(f"  {key:<44} {n:>4}")
    export = result["export"]
    say(f"\n== export: {export['lines']} lines ({export['positive_lines']} with a violation) ==")
    for key, n in export["by_rule_and_decision"].items():
        say(f"  {key:<44} {n:>4}")
    heads = list(result["heads"])
    say("\n== encoder-head probability of the decided rule on its line (mean) ==")
    say("  " + f"{'decision':<34}{'n':>4}" + "".join(f"{h:>11}" for h in heads))
    for kind, s in result["probabilities"]["by_kind"].items():
        cells = "".join(f"{s[h]:>11.3f}" for h in heads)
        moves = ", ".join(f"{k} {v}" for k, v in s.items() if k.startswith(("up_", "down_")))
        say(f"  {kind:<34}{s['decisions']:>4}{cells}   ({moves})")
    for name, per_head in result["eval_text"].items():
        say(f"\n== qa-service eval-text {name} (QA_ENCODER_HEAD_DIR per column) ==")
        say("  " + f"{'':<34}" + "".join(f"{h:>11}" for h in per_head))
        fams = sorted({f for r in per_head.values() for f in r["families"]})
        for fam in fams:
            for metric in ("f1", "precision", "recall"):
                cells = "".join(
                    f"{r['families'].get(fam, {}).get(metric, float('nan')):>11.3f}"
                    for r in per_head.values()
                )
                say(f"  {fam + ' ' + metric:<34}{cells}")
        speakers = sorted({s for r in per_head.values() for s in r["false_alarms"]})
        for sp in speakers:
            cells = "".join(
                f"{r['false_alarms'][sp]['flagged']:>5}/{r['false_alarms'][sp]['lines']:<5}"
                for r in per_head.values()
            )
            say(f"  {'harmless ' + sp + ' lines flagged':<34}{cells}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--corpus",
        type=Path,
        default=ROOT.parent / "shared" / "corpus" / "dev-hard",
        help="a corpus (calls/, labels/, cdr.csv) whose calls are analysed after the samples",
    )
    ap.add_argument("--calls", type=int, default=-1, help="how many of its calls (-1: all)")
    ap.add_argument(
        "--truth",
        type=Path,
        action="append",
        help="ground-truth label folders (default: the corpus's and shared/corpus/dev's, "
        "where the samples come from)",
    )
    ap.add_argument("--baseline", type=Path, help="a head trained without --extra, to compare")
    ap.add_argument(
        "--check",
        type=Path,
        default=ROOT / "tests" / "data" / "blind" / "set_a.jsonl",
        help="labelled lines nobody reviewed, scored with each head (regression check)",
    )
    ap.add_argument("--wait-for", type=Path, help="wait for this file before retraining")
    ap.add_argument("--wait-minutes", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", type=Path, help="keep everything here (default: a temp dir)")
    ap.add_argument(
        "--compare-only",
        action="store_true",
        help="with --workdir of an earlier run: only step 5 on its labels and head",
    )
    ap.add_argument("--out", type=Path, help="write the figures as JSON")
    args = ap.parse_args()
    truth_dirs = args.truth or [
        args.corpus / "labels",
        ROOT.parent / "shared" / "corpus" / "dev" / "labels",
    ]

    with tempfile.TemporaryDirectory(prefix="bench-review-retrain-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        labels, head = work / "review-labels.jsonl", work / "encoder_head"
        result_path = work / "result.json"
        result: dict[str, Any] = {}
        if args.compare_only:
            result = json.loads(result_path.read_text(encoding="utf-8"))
        else:
            if (work / "var").exists():
                raise SystemExit(f"{work / 'var'} exists: give a fresh --workdir")
            steps: dict[str, float] = {}
            print("1. calls: qa-service demo --no-serve, analyze --store", file=sys.stderr)
            result["calls"] = fill_database(work, args.corpus if args.calls else None, args.calls)
            steps["1. demo (4 samples, accounts)"] = result["calls"]["demo_s"]
            if "analyze_s" in result["calls"]:
                n = result["calls"]["calls"] - 4
                steps[f"1. analyze --store ({n} corpus calls)"] = result["calls"]["analyze_s"]
            print("2. reviews over HTTP", file=sys.stderr)
            result["review"] = review_calls(work / "var", truth_dirs)
            steps["2. review over HTTP"] = result["review"]["review_s"]
            print("3. export review-labels", file=sys.stderr)
            result["export"] = export_labels(work, labels)
            steps["3. export review-labels"] = result["export"]["export_s"]
            if args.wait_for is not None:
                steps["4. waiting for the other training run"] = round(
                    wait_for(args.wait_for, args.wait_minutes), 1
                )
            print("4. retrain with --extra", file=sys.stderr)
            result["retrain"] = retrain(work, labels, head, args.threads)
            steps["4. train_encoder_head.py --extra"] = result["retrain"]["train_s"]
            result["steps_s"] = steps
            result_path.write_text(json.dumps(result, ensure_ascii=False, indent=2))

        print("5. compare the heads", file=sys.stderr)
        heads = {"shipped": SHIPPED_HEAD}
        if args.baseline is not None:
            heads["baseline"] = args.baseline
        heads["retrained"] = head
        result["heads"] = {name: str(path) for name, path in heads.items()}
        result["head_rows"] = {name: head_rows(path) for name, path in heads.items()}
        t0 = time.perf_counter()
        result["probabilities"] = head_probabilities(read_jsonl(labels), heads)
        result["eval_text"] = {}
        for lines in (labels, args.check):
            if lines is None:
                continue
            result["eval_text"][lines.name] = {
                name: eval_text(work, lines, path, name) for name, path in heads.items()
            }
        result["steps_s"]["5. compare (probabilities, eval-text)"] = round(
            time.perf_counter() - t0, 1
        )
        result["revision"] = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
        result["load_average"] = os.getloadavg()
        result["date"] = datetime.now().date().isoformat()
        print_summary(result)
        print(
            "\nhead rows (training lines without noise copies): "
            + json.dumps(result["head_rows"], ensure_ascii=False)
        )
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")


if __name__ == "__main__":
    main()
