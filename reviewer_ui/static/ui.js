// Shared page code: the API helper (CSRF header, Chinese errors), the idle lock with its
// countdown, logout, toasts, formatting, and the live alert badge for supervisors.
(function () {
  "use strict";
  const meta = (name) => {
    const el = document.querySelector(`meta[name="${name}"]`);
    return el ? el.content : "";
  };
  const QA = (window.QA = {});
  QA.csrf = meta("csrf-token");
  QA.idleSeconds = parseInt(meta("idle-seconds") || "900", 10);
  QA.lastServer = Date.now();
  QA.locked = false;

  QA.api = async function (method, url, body) {
    const opts = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = QA.csrf;
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(url, opts);
    if (r.status !== 401) QA.lastServer = Date.now();
    const type = r.headers.get("content-type") || "";
    const data = type.includes("json") ? await r.json() : null;
    if (!r.ok) {
      const message = (data && data.error && data.error.message) || `请求失败（HTTP ${r.status}）`;
      if (r.status === 401 && QA.csrf) QA.lock(message);
      const err = new Error(message);
      err.status = r.status;
      err.data = data;
      throw err;
    }
    return data;
  };

  QA.toast = function (message, kind) {
    const box = document.getElementById("toast");
    if (!box) return;
    const item = document.createElement("div");
    item.className = "toast " + (kind || "info");
    item.textContent = message;
    box.appendChild(item);
    setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
  };

  QA.fmtClock = function (s) {
    if (s === null || s === undefined || isNaN(s)) return "--:--";
    s = Math.max(0, s);
    const m = Math.floor(s / 60);
    const sec = s - m * 60;
    return `${String(m).padStart(2, "0")}:${sec.toFixed(1).padStart(4, "0")}`;
  };
  QA.fmtDate = function (iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    return d.toLocaleString("zh-CN", { hour12: false, year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit" });
  };
  // Dates are typed as yyyy-mm-dd in plain text inputs: a browser's date widget follows
  // the browser's locale (mm/dd/yyyy on an English one), not the page's zh-CN.
  QA.parseDay = function (text) {
    const t = (text || "").trim();
    if (!t) return "";
    const m = /^(\d{4})-(\d{1,2})-(\d{1,2})$/.exec(t);
    if (!m) return null;
    const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3]));
    if (d.getUTCFullYear() !== +m[1] || d.getUTCMonth() !== +m[2] - 1 || d.getUTCDate() !== +m[3]) return null;
    return `${m[1]}-${m[2].padStart(2, "0")}-${m[3].padStart(2, "0")}`;
  };
  QA.fmtDay = (iso) => (iso ? new Date(iso).toLocaleDateString("zh-CN") : "—");
  QA.esc = function (text) {
    const div = document.createElement("div");
    div.textContent = text == null ? "" : String(text);
    return div.innerHTML;
  };

  // Labels the people who read the pages see (API values stay English codes).
  QA.STATES = {
    flagged: "待复核", passed: "已通过", in_review: "复核中", reviewed: "已复核",
    feedback_sent: "已反馈", acknowledged: "已确认反馈", appealed: "申诉中", ruled: "已裁决",
  };
  QA.VERDICTS = { pending: "待定", confirmed: "已确认", dismissed: "已驳回", added: "人工补充",
    confirm: "已确认", dismiss: "已驳回", overturned: "申诉改判" };
  QA.WEAK = { model_only: "仅模型判断", low_confidence: "置信度低",
    low_asr_confidence: "转写置信度低", guessed_speaker: "说话人推断" };
  QA.REASONS = [
    ["asr_error", "转写错误"], ["wrong_speaker", "说话人错误"],
    ["compliant_in_context", "结合上下文合规"], ["rule_not_applicable", "规则不适用"],
    ["other", "其他"],
  ];
  QA.SPEAKERS = { agent: "坐席", customer: "客户", third_party: "第三方", unknown: "未知" };
  QA.APPEAL = { open: "待裁决", upheld: "维持原判", overturned: "改判撤销" };

  // --- idle lock ----------------------------------------------------------------------
  // The server ends a session after QA.idleSeconds without a request; the countdown shows
  // that clock. Keyboard and pointer activity touch the session (at most every 30 s) so a
  // reviewer who is working but not saving is not locked out.
  let lastActivityPing = 0;
  function touch() {
    if (!QA.csrf || QA.locked) return;
    const now = Date.now();
    if (now - QA.lastServer > 30000 && now - lastActivityPing > 30000) {
      lastActivityPing = now;
      QA.api("GET", "/api/v1/auth/me").catch(() => {});
    }
  }
  QA.lock = function (reason) {
    if (QA.locked) return;
    QA.locked = true;
    document.dispatchEvent(new CustomEvent("qa:lock"));
    const lock = document.getElementById("lock");
    if (!lock) return;
    if (reason) document.getElementById("lock-reason").textContent = reason;
    const here = location.pathname + location.search;
    document.getElementById("lock-login").href = "/login?next=" + encodeURIComponent(here);
    lock.hidden = false;
    document.getElementById("lock-login").focus();
    fetch("/api/v1/auth/logout", { method: "POST", headers: { "X-CSRF-Token": QA.csrf },
      credentials: "same-origin" }).catch(() => {});
  };
  function tick() {
    const el = document.getElementById("idle-countdown");
    if (!el || QA.locked) return;
    const left = Math.max(0, QA.idleSeconds - (Date.now() - QA.lastServer) / 1000);
    const m = Math.floor(left / 60);
    const s = Math.floor(left % 60);
    el.textContent = `${m}:${String(s).padStart(2, "0")} 后锁定`;
    el.classList.toggle("soon", left < 60);
    if (left <= 0) QA.lock();
  }

  async function logout() {
    try { await QA.api("POST", "/api/v1/auth/logout"); } catch (e) { /* already ended */ }
    location.href = "/login";
  }

  // --- live alerts (supervisors and managers) ----------------------------------------
  QA.muted = () => localStorage.getItem("qa-mute") === "1";
  QA.beep = function () {
    if (QA.muted()) return;
    try {
      const ctx = QA._audio || (QA._audio = new AudioContext());
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.15, ctx.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.4);
      osc.connect(gain).connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.4);
    } catch (e) { /* no audio device */ }
  };
  function setBadge(n) {
    const b = document.getElementById("alert-badge");
    if (!b) return;
    b.textContent = String(n);
    b.hidden = n <= 0;
    b.setAttribute("aria-label", `${n} 条未处理告警`);
  }
  QA.alertCount = 0;
  QA.setAlertCount = (n) => { QA.alertCount = n; setBadge(n); };
  function startAlerts() {
    if (document.getElementById("main").dataset.receivesAlerts !== "true") return;
    const btn = document.getElementById("mute-toggle");
    const show = () => {
      btn.textContent = QA.muted() ? "提示音：关" : "提示音：开";
      btn.setAttribute("aria-pressed", QA.muted() ? "true" : "false");
    };
    show();
    btn.addEventListener("click", () => {
      localStorage.setItem("qa-mute", QA.muted() ? "0" : "1");
      show();
    });
    QA.api("GET", "/api/v1/alerts?acknowledged=false&limit=200")
      .then((d) => QA.setAlertCount(d.items.length)).catch(() => {});
    const es = new EventSource("/api/v1/alerts/stream");
    es.addEventListener("alert", (ev) => {
      const alert = JSON.parse(ev.data);
      QA.setAlertCount(QA.alertCount + 1);
      QA.beep();
      QA.toast(`新告警：通话 ${alert.call_id}（${(alert.rules || []).join("、")}）`, "warn");
      document.dispatchEvent(new CustomEvent("qa:alert", { detail: alert }));
    });
    es.addEventListener("end", () => es.close());
    document.addEventListener("qa:lock", () => es.close());
    QA.alertStream = es;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const out = document.getElementById("logout");
    if (out) out.addEventListener("click", logout);
    if (QA.csrf) {
      for (const ev of ["keydown", "mousedown", "wheel", "touchstart"]) {
        document.addEventListener(ev, touch, { passive: true });
      }
      tick();
      setInterval(tick, 1000);
      startAlerts();
    }
  });
})();
