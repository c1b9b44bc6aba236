// The call page: player (wavesurfer; two lanes on stereo, speaker colours on mono),
// transcript in speaker lanes, findings with evidence and cited clauses, review decisions
// with the score updated at once, missed findings from a text selection, feedback, and
// the keyboard (J/K, C, D, space, N).
(function () {
  "use strict";
  const root = document.getElementById("call-page");
  const callId = root.dataset.callId;
  const role = root.dataset.role;
  const me = root.dataset.user;
  const enc = encodeURIComponent(callId);
  const $ = (id) => document.getElementById(id);
  const COLORS = { agent: "#1d4ed8", customer: "#c2410c", third_party: "#c2410c", unknown: "#6b7280" };
  const PROGRESS = { agent: "#1e3a8a", customer: "#7c2d12", third_party: "#7c2d12", unknown: "#374151" };

  let call = null;
  let rules = [];
  let selected = -1;
  let ws = null;
  let regions = null;
  let dismissOpen = -1;
  let firstLoad = true;
  // Cold-load speed (bench/bench_ui.py): the call, the rules and the waveform peaks are
  // asked for at once, as soon as this script runs, not one after the other. The lanes are
  // drawn from the server's peaks (~40 KB for 10 minutes); the recording itself (19 MB for
  // 10 minutes of 8 kHz stereo) is never downloaded whole and decoded here: the media
  // element streams it with range requests when it is played or sought.
  const early = {
    call: QA.api("GET", `/api/v1/calls/${enc}`),
    rules: QA.api("GET", "/api/v1/rules"),
    wave: QA.api("GET", `/api/v1/calls/${enc}/waveform`),
  };
  for (const p of Object.values(early)) p.catch(() => {}); // each is reported where used

  const canReview = () => role === "inspector" && call && call.review &&
    call.review.state === "in_review" && call.review.assignee === me;
  // An inspector's own finding is stored confirmed; shown as "added" (人工补充).
  const status = (f) => (f.source === "inspector" && f.review_status === "confirmed" ? "added" : f.review_status || "pending");
  const ruleName = (f) => (f.citation && f.citation.name) ||
    ((rules.find((r) => r.id === f.rule) || {}).name_zh) || "";

  // --- loading -------------------------------------------------------------------------
  async function load() {
    try {
      call = await (firstLoad ? early.call : QA.api("GET", `/api/v1/calls/${enc}`));
      if (firstLoad) performance.mark("qa:call-json");
    } catch (e) {
      $("call-error").textContent = e.status === 404 ? "找不到该通话，或您无权查看。" : e.message;
      $("call-error").hidden = false;
      return;
    }
    $("call-body").hidden = false;
    renderHead();
    renderTranscript();
    renderFindings();
    renderBreakdown();
    renderActions();
    loadScores();
    if (firstLoad) {
      performance.mark("qa:rendered");
      firstLoad = false;
      startPlayer();
      const params = new URLSearchParams(location.search);
      const fid = params.get("f");
      if (fid) {
        const i = call.findings.findIndex((f) => String(f.finding_id) === fid);
        if (i >= 0) select(i, true);
      } else if (call.findings.length) {
        select(0, false);
      }
    }
  }

  async function loadScores() {
    try {
      const h = await QA.api("GET", `/api/v1/calls/${enc}/scores`);
      $("score-history").innerHTML = h.items.map((s) =>
        `<li>${QA.fmtDate(s.created_at)}：${s.score} 分（${s.reason === "review" ? "复核" : QA.esc(s.reason)}）${s.note ? " " + QA.esc(s.note) : ""}</li>`).join("");
    } catch (e) { /* the history is a detail */ }
  }

  function renderHead() {
    const parts = [
      call.agent_id ? `坐席 ${call.agent_id}` : null,
      call.team_id ? `团队 ${call.team_id}` : null,
      call.started_at ? QA.fmtDate(call.started_at) : null,
      call.duration_s ? `时长 ${QA.fmtClock(call.duration_s)}` : null,
      call.channels === "stereo" ? "双声道" : "单声道",
      call.dialed_number ? `被叫 ${call.dialed_number}` : null,
    ].filter(Boolean);
    $("call-meta").textContent = parts.join(" · ");
    const st = call.review && call.review.state;
    $("call-state").textContent = QA.STATES[st] || st || call.status;
    const score = $("score");
    const bd = call.score_breakdown;
    score.textContent = call.score === null || call.score === undefined ? "—" : call.score;
    score.className = "score " + (bd ? (bd.passed ? "pass" : "fail") : "");
    const box = $("claim-box");
    box.innerHTML = "";
    if (role === "inspector" && st === "flagged") {
      box.innerHTML = '<button class="btn primary" id="claim" type="button">认领复核</button>';
      $("claim").addEventListener("click", () => act("POST", `/api/v1/calls/${enc}/claim`, null, "已认领，请逐条复核命中。"));
    } else if (call.review && call.review.assignee) {
      box.innerHTML = `<span class="muted">复核人：${QA.esc(call.review.assignee)}</span>` +
        (canReview() ? ' <button class="btn small" id="release" type="button">放回队列</button>' : "");
      const rel = $("release");
      if (rel) rel.addEventListener("click", () => act("POST", `/api/v1/calls/${enc}/release`, null, "已放回队列。"));
    }
  }

  // --- transcript ------------------------------------------------------------------------
  function spansFor(u, ui) {
    // Findings on this utterance: the quoted clause when it is in the text, else the line.
    const spans = [];
    call.findings.forEach((f, fi) => {
      if (f.start === null || f.start === undefined) return;
      const inside = f.start >= u.start - 0.05 && f.start < u.end - 0.01;
      if (!inside) return;
      const at = f.text ? u.text.indexOf(f.text) : -1;
      spans.push({ fi, from: at >= 0 ? at : 0, to: at >= 0 ? at + f.text.length : u.text.length, ui });
    });
    spans.sort((a, b) => a.from - b.from);
    const out = [];
    let end = 0;
    for (const s of spans) {
      if (s.from < end) continue; // overlapping quotes: the first one is marked
      out.push(s);
      end = s.to;
    }
    return out;
  }
  function renderTranscript() {
    const html = call.utterances.map((u, ui) => {
      const spans = spansFor(u, ui);
      let text = "";
      let pos = 0;
      for (const s of spans) {
        const f = call.findings[s.fi];
        text += QA.esc(u.text.slice(pos, s.from));
        text += `<mark class="f ${status(f)}" data-fi="${s.fi}" title="${QA.esc(f.rule + " " + ruleName(f))}">${QA.esc(u.text.slice(s.from, s.to))}</mark>`;
        pos = s.to;
      }
      text += QA.esc(u.text.slice(pos));
      const cls = `utt ${u.speaker}${spans.length ? " has-finding" : ""}`;
      return `<div class="${cls}" data-ui="${ui}" data-start="${u.start}" data-end="${u.end}"><div><span class="t">${QA.fmtClock(u.start)} ${QA.SPEAKERS[u.speaker] || u.speaker}</span>${text}</div></div>`;
    }).join("");
    $("lines").innerHTML = html || '<p class="empty">没有转写文本。</p>';
    markActive();
  }

  // --- findings ------------------------------------------------------------------------
  function evidenceText(f) {
    const ev = f.evidence || {};
    const bits = [];
    const HOW = { chars: "字面", pinyin: "拼音", fuzzy: "近音", near_miss: "近似", across_words: "跨词" };
    if (Array.isArray(ev.terms) && ev.terms.length) {
      bits.push("命中词：" + ev.terms.map((t) => `${QA.esc(t.term)}（${HOW[t.how] || QA.esc(t.how)}）`).join("、"));
    }
    if (ev.nearest_example) bits.push("相近示例：" + QA.esc(ev.nearest_example.text || ev.nearest_example));
    for (const [k, label] of [["char_model", "字符模型"], ["encoder", "语义模型"]]) {
      if (typeof ev[k] === "number") bits.push(`${label} ${ev[k].toFixed(2)}`);
    }
    if (Array.isArray(ev.weak_evidence) && ev.weak_evidence.length) {
      bits.push(ev.weak_evidence.map((w) => `<span class="tag weak">${QA.WEAK[w] || QA.esc(w)}</span>`).join(""));
    }
    return bits.join("；");
  }
  function citationHtml(c) {
    if (!c) return "";
    const clauses = (c.clauses || []).map((cl) =>
      `<div class="clause"><strong>${QA.esc(cl.document)}</strong>${cl.article ? " " + QA.esc(cl.article) : ""}${cl.section ? " · " + QA.esc(cl.section) : ""}<br>${QA.esc(cl.requirement)}</div>`).join("");
    return `<details><summary>依据条款（${(c.clauses || []).length}）</summary><p>${QA.esc(c.summary)}</p>${clauses}</details>`;
  }
  function renderFindings() {
    const n = call.findings.length;
    const pending = call.findings.filter((f) => status(f) === "pending").length;
    $("finding-count").textContent = n ? `共 ${n} 条，待定 ${pending} 条` : "";
    $("findings").innerHTML = call.findings.map((f, fi) => {
      const st = status(f);
      const speaker = f.speaker ? (QA.SPEAKERS[f.speaker] || f.speaker) : "";
      const actions = canReview() ? `<div class="actions">
          <button class="btn small ok" data-act="confirm" data-fi="${fi}" type="button">确认 <kbd>C</kbd></button>
          <button class="btn small" data-act="dismiss" data-fi="${fi}" type="button">驳回 <kbd>D</kbd></button>
          <button class="btn small" data-act="play" data-fi="${fi}" type="button">▶ 从此播放</button></div>`
        : `<div class="actions"><button class="btn small" data-act="play" data-fi="${fi}" type="button">▶ 从此播放</button></div>`;
      const dismiss = dismissOpen === fi ? `<form class="dismiss-form" data-fi="${fi}">
          <label>驳回原因 <select class="reason" aria-label="驳回原因"><option value="">请选择…</option>${QA.REASONS.map(([v, l], i) => `<option value="${v}">${i + 1}. ${l}</option>`).join("")}</select></label>
          <input class="comment" placeholder="补充说明（可选）" aria-label="补充说明">
          <div><button class="btn small danger" type="submit">确认驳回 <kbd>Enter</kbd></button>
          <button class="btn small" type="button" data-act="cancel">取消 <kbd>Esc</kbd></button></div></form>` : "";
      return `<article class="finding ${st}${fi === selected ? " active" : ""}" data-fi="${fi}" data-finding-id="${f.finding_id}" tabindex="-1">
        <div><span class="tag rule">${QA.esc(f.rule)}</span> <strong>${QA.esc(ruleName(f))}</strong>
          <span class="tag ${st === "confirmed" ? "bad" : st === "dismissed" ? "" : "state"} verdict">${QA.VERDICTS[st] || st}</span></div>
        <div class="muted">${speaker} · ${QA.fmtClock(f.start)}–${QA.fmtClock(f.end)} · 置信度 ${f.confidence !== undefined ? f.confidence : "—"} · ${QA.esc(f.source || "")}</div>
        ${f.text ? `<div class="quote">“${QA.esc(f.text)}”</div>` : ""}
        <div class="muted">${evidenceText(f)}</div>
        ${citationHtml(f.citation)}${actions}${dismiss}</article>`;
    }).join("") || '<p class="muted">本通话没有命中。</p>';
    const form = document.querySelector(".dismiss-form");
    if (form) {
      form.addEventListener("submit", (ev) => { ev.preventDefault(); submitDismiss(form); });
      form.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter") { ev.preventDefault(); submitDismiss(form); }
        if (ev.key === "Escape") { ev.preventDefault(); dismissOpen = -1; renderFindings(); }
        if (/^[1-5]$/.test(ev.key) && ev.target.tagName !== "INPUT") {
          ev.preventDefault();
          form.querySelector(".reason").selectedIndex = Number(ev.key);
        }
      });
      form.querySelector(".reason").focus();
    }
  }
  function renderBreakdown() {
    const bd = call.score_breakdown;
    if (!bd) { $("breakdown").innerHTML = '<p class="muted">暂无评分。</p>'; return; }
    const rows = bd.items.map((it) =>
      `<tr><td>${QA.esc(it.name_zh)}</td><td class="num">×${it.occurrences}</td><td class="num">−${it.deduction}</td><td>${it.fatal ? '<span class="tag bad">一票否决</span>' : ""}${it.capped ? '<span class="tag">封顶</span>' : ""}</td></tr>`).join("");
    const excluded = (bd.excluded_findings || []).length;
    $("breakdown").innerHTML = `<p><strong>${bd.score}</strong> 分（及格线 ${bd.pass_mark}，${bd.passed ? "合格" : "不合格"}）${bd.fatal ? ' <span class="tag bad">触发一票否决</span>' : ""}</p>
      <table class="breakdown" aria-label="扣分项"><tbody>${rows || '<tr><td class="muted">无扣分</td></tr>'}</tbody></table>
      <p class="muted">合计扣分 ${bd.total_deduction}${excluded ? `；已驳回不计分的命中 ${excluded} 条` : ""}；评分表版本 ${QA.esc(bd.rubric_version)}</p>`;
  }
  function renderActions() {
    const box = $("review-actions");
    const st = call.review && call.review.state;
    box.innerHTML = "";
    if (canReview()) {
      const pending = call.findings.filter((f) => status(f) === "pending").length;
      box.innerHTML = `<button class="btn primary" id="complete" type="button" ${pending ? "disabled" : ""}>完成复核</button>` +
        (pending ? ` <span class="muted">还有 ${pending} 条命中待确认或驳回</span>` : "");
      $("complete").addEventListener("click", () => act("POST", `/api/v1/calls/${enc}/complete`, null, "复核已完成，可以发送辅导反馈。"));
    }
    const fb = $("feedback-card");
    fb.hidden = !(role === "inspector" && st === "reviewed");
    if (!fb.hidden) {
      const confirmed = call.findings.filter((f) => status(f) === "confirmed" || status(f) === "added");
      $("feedback-form").innerHTML = confirmed.map((f) =>
        `<label>${QA.esc(f.rule)} ${QA.esc(ruleName(f))} · ${QA.fmtClock(f.start)}<textarea data-finding-id="${f.finding_id}" aria-label="辅导意见 ${QA.esc(f.rule)}">请注意：${QA.esc(ruleName(f))}。参照依据条款调整话术。</textarea></label>`).join("") +
        `<label>总结<textarea id="fb-summary" aria-label="反馈总结"></textarea></label><button class="btn primary" type="submit">发送反馈</button>`;
      $("feedback-form").onsubmit = (ev) => {
        ev.preventDefault();
        const notes = {};
        $("feedback-form").querySelectorAll("textarea[data-finding-id]").forEach((t) => { notes[t.dataset.findingId] = t.value; });
        act("POST", `/api/v1/calls/${enc}/feedback`, { notes, summary: $("fb-summary").value }, "反馈已发送给坐席。");
      };
    }
  }

  // --- actions -------------------------------------------------------------------------
  async function act(method, url, body, okMessage) {
    try {
      const out = await QA.api(method, url, body === null ? undefined : body);
      if (okMessage) QA.toast(okMessage, "ok");
      await load();
      return out;
    } catch (e) {
      QA.toast(e.message, "error");
      return null;
    }
  }
  async function decide(fi, decision, reason, comment) {
    const f = call.findings[fi];
    if (!f || !canReview()) return;
    const before = call.score;
    const out = await act("POST", `/api/v1/findings/${f.finding_id}/decision`,
      { decision, reason_code: reason || null, comment: comment || "" }, null);
    if (!out) return;
    dismissOpen = -1;
    renderFindings();
    const delta = out.score !== null && before !== null ? out.score - before : 0;
    $("score-delta").textContent = out.score_changed ? `（${before} → ${out.score}）` : "";
    QA.toast(`${f.rule} 已${decision === "confirm" ? "确认" : "驳回"}${out.score_changed ? `，得分 ${delta > 0 ? "+" : ""}${delta.toFixed(1)}` : ""}`, "ok");
    // On to the next undecided finding: keyboard reviewing runs C, C, D… without aiming.
    const next = call.findings.findIndex((g, i) => i > fi && status(g) === "pending");
    if (next >= 0) select(next, false);
    else select(fi, false);
  }
  function openDismiss(fi) {
    if (!canReview() || fi < 0) return;
    dismissOpen = fi;
    renderFindings();
  }
  function submitDismiss(form) {
    const reason = form.querySelector(".reason").value;
    if (!reason) { QA.toast("请选择驳回原因。", "error"); form.querySelector(".reason").focus(); return; }
    decide(Number(form.dataset.fi), "dismiss", reason, form.querySelector(".comment").value);
  }

  // --- selection and playback ----------------------------------------------------------
  function markActive() {
    document.querySelectorAll("mark.f").forEach((m) => m.classList.toggle("active", Number(m.dataset.fi) === selected));
    document.querySelectorAll(".finding").forEach((c) => c.classList.toggle("active", Number(c.dataset.fi) === selected));
  }
  // Scroll inside the panel only: scrollIntoView would also move the page and hide the
  // player and the header the reviewer works with.
  function scrollWithin(box, el) {
    if (!box || !el) return;
    const b = box.getBoundingClientRect();
    const r = el.getBoundingClientRect();
    if (r.top < b.top) box.scrollTop -= b.top - r.top + 8;
    else if (r.bottom > b.bottom) box.scrollTop += r.bottom - b.bottom + 8;
  }
  function select(fi, play) {
    if (fi < 0 || fi >= call.findings.length) return;
    selected = fi;
    markActive();
    scrollWithin(document.querySelector(".side"), document.querySelector(`.finding[data-fi="${fi}"]`));
    scrollWithin($("transcript"), document.querySelector(`mark.f[data-fi="${fi}"]`));
    const f = call.findings[fi];
    if (f.start !== null && f.start !== undefined) seek(f.start, play);
  }
  function seek(t, play) {
    if (!ws) return;
    const d = ws.getDuration() || call.duration_s || 0;
    if (d > 0) ws.setTime(Math.min(t, d));
    if (play) ws.play().catch(() => {});
  }
  async function startPlayer() {
    if (!window.WaveSurfer) return;
    const failed = (what, e) => {
      $("call-error").textContent = what + ((e && e.message) || "浏览器无法读取该录音");
      $("call-error").hidden = false;
    };
    let wave;
    try {
      wave = await early.wave;
      performance.mark("qa:waveform-json");
    } catch (e) {
      failed("录音波形无法加载：", e);
      return;
    }
    // Agent then customer on a recording of two channels (the server orders them by the
    // sidecar's channel map); one lane with speaker colours on mono.
    const lanes = wave.channels;
    const stereo = lanes.length >= 2;
    regions = WaveSurfer.Regions.create();
    const media = document.createElement("audio");
    media.preload = "metadata"; // the header only: the audio streams when played
    const opts = {
      container: "#waveform", height: stereo ? 48 : 72,
      waveColor: "#64748b", progressColor: "#334155", cursorColor: "#111827", normalize: true,
      media, url: `/api/v1/calls/${enc}/audio`,
      peaks: lanes.map((c) => c.peaks), duration: wave.duration_s,
      plugins: [regions, WaveSurfer.Timeline.create({ container: "#wave-timeline", height: 14 })],
    };
    if (stereo) {
      opts.splitChannels = lanes.map((c) => ({
        waveColor: COLORS[c.speaker] || COLORS.unknown,
        progressColor: PROGRESS[c.speaker] || PROGRESS.unknown,
      }));
      $("lane-labels").innerHTML = lanes.map((c) =>
        `<span class="${QA.esc(c.speaker || "unknown")}">${QA.SPEAKERS[c.speaker] || `声道 ${c.channel + 1}`}</span>`).join("");
    } else {
      $("lane-labels").innerHTML = '<span class="muted">单声道</span>';
    }
    ws = WaveSurfer.create(opts);
    window.QA.player = ws;
    ws.on("ready", () => {
      if (!stereo) { // one lane: speaker colours as background bands
        for (const u of call.utterances) {
          regions.addRegion({ start: u.start, end: u.end, drag: false, resize: false,
            color: u.speaker === "agent" ? "#1d4ed81f" : "#c2410c1f" });
        }
      }
      call.findings.forEach((f, fi) => {
        if (f.start === null || f.start === undefined) return;
        const r = regions.addRegion({ start: f.start, end: Math.max(f.end || f.start + 0.3, f.start + 0.1),
          drag: false, resize: false, color: "#dc262640", content: f.rule });
        r.on("click", (e) => { e.stopPropagation(); select(fi, true); });
      });
      // The finding selected while the lanes were on their way (?f=, J/K) is where the
      // cursor starts; ?t= wins.
      const t = parseFloat(new URLSearchParams(location.search).get("t"));
      const f = call.findings[selected];
      if (!isNaN(t)) seek(t, false);
      else if (f && f.start !== null && f.start !== undefined) seek(f.start, false);
      root.dataset.playerReady = "true";
      updateTime();
      // Interactive: transcript rendered, waveform drawn and painted (bench/bench_ui.py).
      requestAnimationFrame(() => {
        performance.mark("qa:ready");
        root.dataset.ready = "true";
      });
    });
    ws.on("error", (e) => failed("录音无法播放：", e));
    ws.on("timeupdate", updateTime);
    ws.on("play", () => { $("play").textContent = "⏸ 暂停"; });
    ws.on("pause", () => { $("play").textContent = "▶ 播放"; });
    $("play").addEventListener("click", () => ws.playPause());
    $("rate").addEventListener("change", (e) => ws.setPlaybackRate(parseFloat(e.target.value)));
    document.addEventListener("qa:lock", () => ws.pause());
  }
  function updateTime() {
    const t = ws.getCurrentTime();
    $("time").textContent = `${QA.fmtClock(t)} / ${QA.fmtClock(ws.getDuration())}`;
    document.querySelectorAll(".utt.playing").forEach((e) => e.classList.remove("playing"));
    if (!ws.isPlaying()) return;
    const idx = call.utterances.findIndex((u) => t >= u.start && t < u.end);
    const line = document.querySelector(`.utt[data-ui="${idx}"]`);
    if (line) line.classList.add("playing");
  }

  // --- missed findings from a text selection -------------------------------------------
  function lineOf(node) {
    const el = node && (node.nodeType === 1 ? node : node.parentElement);
    return el ? el.closest(".utt") : null;
  }
  let pendingSpan = null;
  function onSelection() {
    if (!canReview()) return;
    const sel = window.getSelection();
    if (!sel || sel.isCollapsed || !sel.toString().trim()) return;
    const a = lineOf(sel.anchorNode);
    const b = lineOf(sel.focusNode);
    if (!a || !b) return;
    const starts = [a, b].map((e) => parseFloat(e.dataset.start));
    const ends = [a, b].map((e) => parseFloat(e.dataset.end));
    pendingSpan = { start: Math.min(...starts), end: Math.max(...ends), text: sel.toString().trim() };
    const pop = $("selection-pop");
    $("sel-span").textContent = `${QA.fmtClock(pendingSpan.start)}–${QA.fmtClock(pendingSpan.end)}：“${pendingSpan.text.slice(0, 40)}”`;
    $("sel-rule").innerHTML = rules.map((r) => `<option value="${r.id}">${r.id} ${QA.esc(r.name_zh)}</option>`).join("");
    $("sel-note").value = pendingSpan.text;
    const rect = sel.getRangeAt(0).getBoundingClientRect();
    pop.style.left = `${Math.max(8, rect.left + window.scrollX)}px`;
    pop.style.top = `${rect.bottom + window.scrollY + 6}px`;
    pop.hidden = false;
  }
  async function addMissed() {
    if (!pendingSpan) return;
    const out = await act("POST", `/api/v1/calls/${enc}/findings`,
      { rule: $("sel-rule").value, start: pendingSpan.start, end: pendingSpan.end, note: $("sel-note").value || pendingSpan.text },
      "已补充漏检命中，得分已更新。");
    if (out) { $("selection-pop").hidden = true; pendingSpan = null; }
  }

  // --- keyboard ------------------------------------------------------------------------
  async function nextCall() {
    try {
      const mine = (await QA.api("GET", "/api/v1/review/queue?mine=true&include_claimed=true&limit=50")).items;
      const open = (await QA.api("GET", "/api/v1/review/queue?limit=50")).items;
      const next = [...mine, ...open].find((i) => i.call_id !== callId);
      if (next) location.href = "/ui/calls/" + encodeURIComponent(next.call_id);
      else QA.toast("队列中没有下一通待复核的通话。", "info");
    } catch (e) { QA.toast(e.message, "error"); }
  }
  function onKey(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || QA.locked || !call) return;
    const tag = ev.target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || ev.target.isContentEditable) return;
    const key = ev.key.toLowerCase();
    if (key === " " && tag !== "BUTTON") { ev.preventDefault(); if (ws) ws.playPause(); return; }
    if (key === "j") { ev.preventDefault(); select(Math.min(selected + 1, call.findings.length - 1), true); }
    else if (key === "k") { ev.preventDefault(); select(Math.max(selected - 1, 0), true); }
    else if (key === "c") { ev.preventDefault(); decide(selected, "confirm"); }
    else if (key === "d") { ev.preventDefault(); openDismiss(selected); }
    else if (key === "n") { ev.preventDefault(); nextCall(); }
    else if (key === "escape") { $("selection-pop").hidden = true; }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    try { rules = (await early.rules).items; } catch (e) { rules = []; }
    await load();
    document.addEventListener("keydown", onKey);
    $("findings").addEventListener("click", (ev) => {
      const btn = ev.target.closest("button[data-act]");
      const card = ev.target.closest(".finding");
      if (btn) {
        const fi = Number(btn.dataset.fi !== undefined ? btn.dataset.fi : card.dataset.fi);
        if (btn.dataset.act === "confirm") decide(fi, "confirm");
        else if (btn.dataset.act === "dismiss") { selected = fi; openDismiss(fi); }
        else if (btn.dataset.act === "play") select(fi, true);
        else if (btn.dataset.act === "cancel") { dismissOpen = -1; renderFindings(); }
        return;
      }
      if (card && !ev.target.closest("form, details")) select(Number(card.dataset.fi), false);
    });
    $("lines").addEventListener("click", (ev) => {
      if (!window.getSelection().isCollapsed) return;
      const mark = ev.target.closest("mark.f");
      if (mark) { select(Number(mark.dataset.fi), true); return; }
      const line = ev.target.closest(".utt");
      if (line) seek(parseFloat(line.dataset.start), true);
    });
    $("lines").addEventListener("mouseup", () => setTimeout(onSelection, 0));
    $("sel-add").addEventListener("click", addMissed);
    $("sel-cancel").addEventListener("click", () => { $("selection-pop").hidden = true; });
  });
})();
