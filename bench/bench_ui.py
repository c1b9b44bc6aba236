"""Benchmark the call page: time to interactive of a 10-minute call with 200 utterances.

A throw-away service (SQLite, no Redis, uvicorn in a thread, as ``tests/browser`` runs it)
is seeded through the real save path (``save_analysis`` and ``classify_call``) with one
10-minute 8 kHz stereo recording (tones and noise, generated here) and 200 utterances of
both speakers with 10 findings, scored by the rubric. An inspector opens
``/ui/calls/<id>`` at 1366×768 in Debian's headless Chromium, ``--runs`` times, each in a
new browser context (cold: empty HTTP cache, new renderer state; the login cookie only).

Time to interactive = navigation start → ``performance.mark("qa:ready")``, which
``reviewer_ui/static/call.js`` sets in the first animation frame after the player's
``ready`` event: the call JSON is loaded, the transcript (all 200 lines), findings and
score are rendered, the waveform peaks (``GET /api/v1/calls/<id>/waveform``) are in and the
two waveform lanes and the finding regions are drawn; the recording itself streams through
the media element when played, off this path. ``#call-page[data-ready]`` is set at the same
moment. The page's other marks (``qa:call-json``, ``qa:rendered``, ``qa:waveform-json``)
give the breakdown. The seeded call's peaks are computed by the warm-up load (the worker
computes them after analysis in production); ``--cold-peaks`` deletes the cache before
every load, to measure a first open that must compute them.

    .venv/bin/python bench/bench_ui.py --runs 5 --out bench/results/ui.json

Only meaningful on a quiet machine (check ``uptime``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # api_support: the tests' service and accounts

from api_support import CST, PASSWORDS, add_role_users, make_service  # noqa: E402

from qa_service.db.repository import save_analysis  # noqa: E402
from qa_service.domain import (  # noqa: E402
    CallAnalysis,
    CallMetadata,
    CallStatus,
    Finding,
    Speaker,
    Utterance,
)
from qa_service.review.queue import classify_call  # noqa: E402
from qa_service.scoring.rubric import load_rubric  # noqa: E402
from qa_service.scoring.score import score_call  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
CALL_ID = "bench-long"
DURATION_S = 600.0
RATE = 8000
N_UTTERANCES = 200

AGENT_LINES = (
    "您好，这里是信用卡中心，请问是王先生本人吗",
    "您这张卡的账单已经逾期四十五天了，最低还款额是三千二百元",
    "我们这边需要跟您确认一下还款时间",
    "如果今天能还上最低还款，就不会继续产生滞纳金",
    "您看月底之前能不能先还一部分",
    "这个我理解，最近大家手头都比较紧",
    "我们可以帮您申请分期，但需要您先还一期",
    "请您通过手机银行或者柜台还款都可以",
    "麻烦您记一下，还款账号就是您的卡号",
    "好的，我这边给您备注一下承诺还款日期",
    "不然天天给你打电话，打到你还为止",
    "你这种老赖真不要脸，欠钱不还还有理了",
    "投诉也没用，你投诉到哪里都一样",
    "再不还我们就上门找你家里人谈谈",
    "感谢您的配合，祝您生活愉快，再见",
)
CUSTOMER_LINES = (
    "是我，什么事",
    "最近生意不好，实在拿不出来",
    "我下个月发工资了就还",
    "能不能把滞纳金免了",
    "你们再这样我就去投诉你们",
    "我知道了，我会想办法的",
    "分期要怎么申请",
    "你们天天打电话，我还怎么上班",
    "好吧，月底之前我先还一千",
    "行，那就这样吧",
)
# (rule, agent line index it quotes, how many times): 10 findings in all.
FINDINGS = (("P07", 10, 3), ("P02", 11, 3), ("R04", 12, 2), ("P03", 13, 1), ("C01", None, 1))


def make_wav(path: Path) -> None:
    """10 minutes of 8 kHz 16-bit stereo: speech-like bursts (tones and noise) per lane."""
    rng = np.random.default_rng(7)
    n = int(DURATION_S * RATE)
    t = np.arange(n) / RATE
    left = 0.02 * rng.standard_normal(n)
    right = 0.02 * rng.standard_normal(n)
    # Alternating 3-s turns: the agent (left) on even turns, the customer (right) on odd.
    turn = (t // 3).astype(int)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    voice = envelope * (0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * rng.standard_normal(n))
    left += np.where(turn % 2 == 0, voice, 0.0)
    right += np.where(turn % 2 == 1, voice, 0.0)
    pcm = (np.clip(np.stack([left, right], axis=1), -1, 1) * 32000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def make_analysis(metadata: CallMetadata, sha256: str, rubric_path: Path) -> CallAnalysis:
    rng = random.Random(12)
    step = DURATION_S / N_UTTERANCES  # 3 s a line
    utterances = []
    for i in range(N_UTTERANCES):
        agent = i % 2 == 0
        pool = AGENT_LINES[:10] + AGENT_LINES[14:] if agent else CUSTOMER_LINES
        text = rng.choice(pool)
        speaker = Speaker.AGENT if agent else Speaker.CUSTOMER
        start = round(i * step, 2)
        utterances.append(
            Utterance(speaker, start, round(start + step - 0.2, 2), text, 0 if agent else 1)
        )
    findings = []
    slots = iter(range(8, N_UTTERANCES, 18))  # spread over the call, agent lines (even)
    for rule, line, times in FINDINGS:
        for _ in range(times):
            ui = next(slots)
            if line is None:  # the customer's complaint: the line after
                ui += 1
                text = "我就去投诉你们"
                utterances[ui] = replace(utterances[ui], text="你们再这样我就去投诉你们")
            else:
                text = AGENT_LINES[line]
                utterances[ui] = replace(utterances[ui], text=text)
            u = utterances[ui]
            findings.append(
                Finding(
                    rule=rule,
                    source="lexicon",
                    confidence=0.9,
                    speaker=u.speaker,
                    text=text,
                    start=u.start,
                    end=u.end,
                    evidence={"terms": [{"term": text[:4], "how": "chars"}]},
                )
            )
    detail = score_call(tuple(findings), load_rubric(rubric_path))
    return CallAnalysis(
        call_id=metadata.call_id,
        recording=metadata.recording,
        status=CallStatus.ANALYZED,
        duration_s=DURATION_S,
        channels="stereo",
        sha256=sha256,
        metadata=metadata,
        utterances=tuple(utterances),
        findings=tuple(findings),
        score=detail.score,
        score_detail=detail,
    )


def seed(tmp: Path):  # type: ignore[no-untyped-def]
    service = make_service(f"sqlite:///{tmp / 'qa.sqlite3'}", tmp)
    add_role_users(service)
    wav = tmp / f"{CALL_ID}.wav"
    make_wav(wav)
    stored = service.state.store.put_file(wav, ext=".wav")
    metadata = CallMetadata(
        call_id=CALL_ID,
        recording=wav.name,
        agent_id="A1",
        team_id="T1",
        agency_id="AG1",
        started_at=datetime(2026, 11, 6, 14, 32, 18, tzinfo=CST),
        channels="stereo",
        has_sidecar=True,
    )
    analysis = make_analysis(metadata, stored.sha256, service.state.settings.rubric_path)
    with service.state.sessions.begin() as session:
        call_pk = save_analysis(session, analysis=analysis, source_path=None, versions={})
        assert call_pk is not None
        classify_call(session, call_pk=call_pk, settings=service.state.settings)
    return service, wav.stat().st_size


def serve(app):  # type: ignore[no-untyped-def]
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the service did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


MARKS_JS = """() => {
  const m = {};
  for (const e of performance.getEntriesByType('mark')) {
    if (e.name.startsWith('qa:')) m[e.name] = e.startTime;
  }
  const nav = performance.getEntriesByType('navigation')[0];
  m['dom-content-loaded'] = nav.domContentLoadedEventEnd;
  m['load'] = nav.loadEventEnd;
  const wave = performance.getEntriesByType('resource').find((r) => r.name.includes('/waveform'));
  if (wave) { m['wave-fetch-start'] = wave.startTime; m['wave-fetch-end'] = wave.responseEnd; }
  const lines = document.querySelectorAll('#lines .utt').length;
  return {marks: m, lines};
}"""


def measure(  # type: ignore[type-arg]
    url: str, runs: int, trace: Path | None, before_load: Callable[[], None] | None = None
) -> list[dict]:
    from playwright.sync_api import ViewportSize, sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        viewport: ViewportSize = {"width": 1366, "height": 768}
        login = browser.new_context(viewport=viewport, locale="zh-CN")
        r = login.request.post(
            url + "/api/v1/auth/login",
            data={"username": "inspector", "password": PASSWORDS["inspector"]},
        )
        assert r.ok, r.text()
        state = login.storage_state()
        login.close()
        for i in range(runs + 1):  # the first load warms the server (imports, templates)
            context = browser.new_context(storage_state=state, viewport=viewport, locale="zh-CN")
            if trace and i == runs:
                context.tracing.start(screenshots=True, snapshots=True)
            page = context.new_page()
            if before_load is not None:
                before_load()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))  # noqa: B023
            page.goto(f"{url}/ui/calls/{CALL_ID}", wait_until="commit")
            page.wait_for_selector("#call-page[data-ready='true']", timeout=60_000)
            got = page.evaluate(MARKS_JS)
            if trace and i == runs:
                context.tracing.stop(path=str(trace))
            if i == 0:
                shot = Path(tempfile.gettempdir()) / "bench-ui-call.png"
                page.screenshot(path=str(shot))
                print(f"screenshot: {shot}", file=sys.stderr)
            context.close()
            assert got["lines"] == N_UTTERANCES, got
            assert not errors, errors
            if i:
                out.append(got["marks"])
                print(json.dumps({k: round(v) for k, v in got["marks"].items()}), file=sys.stderr)
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--trace", type=Path, help="save a Playwright trace of the last load")
    ap.add_argument(
        "--cold-peaks",
        action="store_true",
        help="delete the cached waveform peaks before every load (a first open)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        service, wav_bytes = seed(Path(tmp))
        url, server, thread = serve(service.app)
        before_load = None
        if args.cold_peaks:
            from qa_service.ingest.recordings import sha256_file
            from qa_service.ingest.waveform import CACHE_SUFFIX

            sha256, _ = sha256_file(Path(tmp) / f"{CALL_ID}.wav")
            cache = service.state.store.derived_path(sha256, CACHE_SUFFIX)

            def before_load() -> None:
                cache.unlink(missing_ok=True)

        try:
            runs = measure(url, args.runs, args.trace, before_load)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    tti = [r["qa:ready"] for r in runs]
    result = {
        "what": "call page time to interactive (navigation start -> qa:ready), ms",
        "call": {"duration_s": DURATION_S, "utterances": N_UTTERANCES, "wav_bytes": wav_bytes},
        "viewport": "1366x768",
        "peaks": "computed on every load" if args.cold_peaks else "cached",
        "runs": runs,
        "tti_median_ms": round(statistics.median(tti)),
        "tti_min_ms": round(min(tti)),
        "tti_max_ms": round(max(tti)),
        "breakdown_median_ms": {
            k: round(statistics.median(r[k] for r in runs)) for k in runs[0] if k in runs[-1]
        },
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "date": datetime.now().date().isoformat(),
    }
    print(json.dumps(result, ensure_ascii=False, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")


if __name__ == "__main__":
    main()
