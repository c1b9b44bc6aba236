// The Alpine.js components of the list pages: inbox, appeals, alerts, scorecards,
// trends, complaints, accounts and settings. Every figure comes from the JSON API.
/* exported inbox, appeals, alertsPage, scorecard, trends, complaints, accountsPage, settingsPage */
"use strict";

function inbox() {
  return {
    items: [], error: "", loaded: false, openAppeal: null, reason: "",
    async load() {
      try { this.items = (await QA.api("GET", "/api/v1/inbox")).items; } catch (e) { this.error = e.message; }
      this.loaded = true;
    },
    appealOf(item, f) { return item.appeals.find((a) => a.finding_id === f.finding_id); },
    play(item, f) {
      const audio = document.getElementById("inbox-audio");
      const src = `/api/v1/calls/${encodeURIComponent(item.call_id)}/audio`;
      if (!audio.src.endsWith(src)) audio.src = src;
      const start = () => { audio.currentTime = f.start_s || 0; audio.play().catch(() => {}); };
      if (audio.readyState >= 1) start(); else audio.addEventListener("loadedmetadata", start, { once: true });
      audio.load && audio.readyState === 0 && audio.load();
    },
    async appeal(f) {
      if (!this.reason.trim()) { QA.toast("请填写申诉理由。", "error"); return; }
      try {
        await QA.api("POST", `/api/v1/findings/${f.finding_id}/appeal`, { reason: this.reason.trim() });
        QA.toast("申诉已提交，等待组长裁决。", "ok");
        this.openAppeal = null; this.reason = "";
        await this.load();
      } catch (e) { QA.toast(e.message, "error"); }
    },
    async acknowledge(item) {
      try {
        await QA.api("POST", `/api/v1/calls/${encodeURIComponent(item.call_id)}/acknowledge`);
        QA.toast("已确认反馈。", "ok");
        await this.load();
      } catch (e) { QA.toast(e.message, "error"); }
    },
  };
}

function appeals(role) {
  return {
    items: [], error: "", loaded: false, status: "open", notes: {}, canRule: role === "supervisor",
    async load() {
      try { this.items = (await QA.api("GET", "/api/v1/appeals?status=" + this.status)).items; } catch (e) { this.error = e.message; }
      this.loaded = true;
    },
    async rule(a, ruling) {
      try {
        await QA.api("POST", `/api/v1/appeals/${a.appeal_id}/ruling`, { ruling, note: this.notes[a.appeal_id] || "" });
        QA.toast(ruling === "overturned" ? "已改判撤销该命中，得分已重算。" : "已维持原判。", "ok");
        await this.load();
      } catch (e) { QA.toast(e.message, "error"); }
    },
  };
}

function alertsPage(role) {
  return {
    items: [], error: "", loaded: false, canAck: role === "supervisor",
    KINDS: { complaint: "投诉倾向", fatal: "一票否决" },
    async load() {
      try { this.items = (await QA.api("GET", "/api/v1/alerts?limit=100")).items; } catch (e) { this.error = e.message; }
      this.loaded = true;
      document.addEventListener("qa:alert", (ev) => {
        if (!this.items.some((a) => a.id === ev.detail.id)) this.items.unshift(ev.detail);
      });
    },
    async ack(a) {
      try {
        const out = await QA.api("POST", `/api/v1/alerts/${a.id}/ack`);
        Object.assign(a, out);
        QA.setAlertCount(Math.max(0, QA.alertCount - 1));
      } catch (e) { QA.toast(e.message, "error"); }
    },
  };
}

// The calendar day of an ISO time in the browser's time zone (the call centre's): the ISO
// text's first ten characters are the UTC day, a day early for a call before 08:00 in China.
function localDay(iso) {
  const d = new Date(iso || "");
  if (isNaN(d)) return "";
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}
const dayStart = (day) => { const [y, m, d] = day.split("-").map(Number); return new Date(y, m - 1, d).getTime() / 1000; };
const dayOf = (ts) => localDay(new Date(ts * 1000).toISOString());
// At most this many labelled ticks on the x axis: every k-th day or period beyond it.
const MAX_TICKS = 12;

function niceTop(max) {
  if (!(max > 0)) return 1;
  const step = Math.pow(10, Math.floor(Math.log10(max))) / 2;
  return Math.ceil((max * 1.1) / step) * step;
}

function lineChart(el, xs, series, { categories = null, days = false, yMax = null } = {}) {
  // xs: indexes into categories (periods such as 2026-11 or 2026-W45: an ordinal axis), or
  // with days the local midnights (unix seconds) of yyyy-mm-dd days; series: [{label, values}].
  // The x range is padded by half a step each side, so that a single day or period is one
  // point in the middle with its own label, not an axis of months or fractions around it.
  if (!window.uPlot || !el) return;
  el.innerHTML = "";
  const colors = ["#1d4ed8", "#c2410c", "#047857", "#7c3aed", "#b91c1c", "#0e7490", "#a16207"];
  const opts = {
    width: el.clientWidth || 800, height: 260,
    series: [{}].concat(series.map((s, i) => ({ label: s.label, stroke: colors[i % colors.length], width: 2, spanGaps: true }))),
    // From 0: a rate or a score is read against zero, not against its own minimum.
    scales: { y: { range: (u, min, max) => [0, yMax !== null ? yMax : niceTop(max)] } },
    axes: [{}, {}],
  };
  // uPlot widens a single x value by its own rule (years of a time axis) before a range
  // function sees it; that case takes the value from xs instead.
  const padded = (pad) => (u, min, max) => (xs.length === 1 ? [xs[0] - pad, xs[0] + pad] : [min - pad, max + pad]);
  if (categories) {
    const every = Math.ceil(categories.length / MAX_TICKS);
    opts.scales.x = { time: false, range: padded(0.5) };
    opts.axes[0] = {
      splits: () => categories.map((_, i) => i).filter((i) => i % every === 0),
      values: (u, ticks) => ticks.map((t) => categories[t] || ""),
    };
    opts.series[0] = { label: "周期", value: (u, v) => (v === null ? "--" : categories[v] || "") };
  } else if (days) {
    const half = 43200;
    opts.scales.x = { time: true, range: padded(half) };
    opts.axes[0] = {
      splits: (u, ai, min, max) => {
        const first = dayOf(min + half);
        const last = dayOf(max - half);
        const out = [];
        const [y, m, d] = first.split("-").map(Number);
        for (let i = 0; ; i++) {
          const ts = new Date(y, m - 1, d + i).getTime() / 1000;
          if (ts > dayStart(last)) break;
          out.push(ts);
        }
        const every = Math.ceil(out.length / MAX_TICKS);
        return out.filter((_, i) => i % every === 0);
      },
      values: (u, ticks) => ticks.map((t) => dayOf(t).slice(5)),
    };
    opts.series[0] = { label: "日期", value: (u, v) => (v === null ? "--" : dayOf(v)) };
  }
  return new uPlot(opts, [xs].concat(series.map((s) => s.values)), el);
}

function scorecard() {
  return {
    rows: [], error: "", loaded: false,
    async load() {
      try {
        let calls = [];
        let cursor = null;
        do {
          const q = new URLSearchParams({ limit: "200", status: "analyzed" });
          if (cursor) q.set("cursor", cursor);
          const page = await QA.api("GET", "/api/v1/calls?" + q);
          calls = calls.concat(page.items);
          cursor = page.next_cursor;
        } while (cursor && calls.length < 2000);
        calls = calls.filter((c) => c.score !== null);
        const by = {};
        for (const c of calls) {
          const k = c.agent_id || "—";
          (by[k] = by[k] || { agent: k, team: c.team_id || "—", scores: [], rules: {}, days: {} });
          by[k].scores.push(c.score);
          for (const r of c.rules) by[k].rules[r] = (by[k].rules[r] || 0) + 1;
          const day = localDay(c.started_at);
          if (day) (by[k].days[day] = by[k].days[day] || []).push(c.score);
        }
        this.rows = Object.values(by).map((r) => ({
          agent: r.agent, team: r.team, calls: r.scores.length,
          mean: r.scores.reduce((a, b) => a + b, 0) / r.scores.length,
          passRate: r.scores.filter((s) => s >= 80).length / r.scores.length,
          min: Math.min(...r.scores),
          top: Object.entries(r.rules).sort((a, b) => b[1] - a[1]).slice(0, 3).map((e) => e[0]),
          days: r.days,
        })).sort((a, b) => a.mean - b.mean);
        const days = [...new Set(calls.map((c) => localDay(c.started_at)).filter(Boolean))].sort();
        const xs = days.map(dayStart);
        const series = this.rows.slice(0, 7).map((r) => ({
          label: r.agent,
          values: days.map((d) => (r.days[d] ? r.days[d].reduce((a, b) => a + b, 0) / r.days[d].length : null)),
        }));
        if (days.length) this.$nextTick(() => lineChart(document.getElementById("score-chart"), xs, series, { days: true, yMax: 100 }));
      } catch (e) { this.error = e.message; }
      this.loaded = true;
    },
  };
}

function trends() {
  return {
    data: {}, error: "", period: "month", by: "team", from: "", to: "",
    query() {
      const q = new URLSearchParams({ period: this.period, by: this.by });
      const from = QA.parseDay(this.from);
      const to = QA.parseDay(this.to);
      if (from) q.set("from", from);
      if (to) q.set("to", to);
      return q.toString();
    },
    exportUrl(path) { return path + "?" + this.query(); },
    pct(v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(0) + "%"; },
    fmtChange(v) { return v === null || v === undefined ? "—" : (v > 0 ? "+" : "") + v; },
    async load() {
      this.error = "";
      if (QA.parseDay(this.from) === null || QA.parseDay(this.to) === null) {
        this.error = "日期格式应为 yyyy-mm-dd，例如 2026-11-06。";
        return;
      }
      try {
        this.data = await QA.api("GET", "/api/v1/trends?" + this.query());
        const rows = this.data.violations_by_family || [];
        const periods = [...new Set(rows.map((r) => r.period))].sort();
        const keys = [...new Set(rows.map((r) => r.group + " · " + r.name))];
        const series = keys.slice(0, 7).map((k) => ({
          label: k,
          values: periods.map((p) => {
            const hit = rows.filter((r) => r.period === p && r.group + " · " + r.name === k);
            return hit.length ? hit[0].per_100_calls : null;
          }),
        }));
        this.$nextTick(() => lineChart(document.getElementById("trend-chart"), periods.map((_, i) => i), series, { categories: periods }));
      } catch (e) { this.error = e.message; }
    },
  };
}

function complaints() {
  return {
    items: [], error: "", loaded: false, status: "",
    async load() {
      try {
        this.items = (await QA.api("GET", "/api/v1/complaints" + (this.status ? "?status=" + this.status : ""))).items;
      } catch (e) { this.error = e.message; }
      this.loaded = true;
    },
  };
}

function accountsPage() {
  return {
    items: [], error: "", resetFor: null, resetPw: "",
    ROLES: { admin: "系统管理员", manager: "管理层", supervisor: "组长", inspector: "质检员", agent: "坐席" },
    form: { username: "", display_name: "", role: "inspector", teams: "", agent_id: "", password: "" },
    async load() {
      try { this.items = (await QA.api("GET", "/api/v1/admin/users")).items; } catch (e) { this.error = e.message; }
    },
    async create() {
      const f = this.form;
      try {
        await QA.api("POST", "/api/v1/admin/users", {
          username: f.username.trim(), role: f.role, password: f.password,
          display_name: f.display_name.trim() || null, agent_id: f.agent_id.trim() || null,
          team_ids: f.teams.split(/[,，、]/).map((t) => t.trim()).filter(Boolean),
        });
        QA.toast(`账号 ${f.username} 已创建。`, "ok");
        this.form = { username: "", display_name: "", role: "inspector", teams: "", agent_id: "", password: "" };
        await this.load();
      } catch (e) { QA.toast(e.message, "error"); }
    },
    async post(u, action, ok) {
      try { await QA.api("POST", `/api/v1/admin/users/${encodeURIComponent(u.username)}/${action}`); QA.toast(ok, "ok"); await this.load(); }
      catch (e) { QA.toast(e.message, "error"); }
    },
    openReset(u) {
      this.resetFor = this.resetFor === u.username ? null : u.username;
      this.resetPw = "";
      if (this.resetFor) this.$nextTick(() => document.getElementById("reset-" + u.username).focus());
    },
    async reset(u) {
      if (!this.resetPw) { QA.toast("请输入临时密码。", "error"); return; }
      try {
        await QA.api("POST", `/api/v1/admin/users/${encodeURIComponent(u.username)}/password`, { new_password: this.resetPw });
        QA.toast(`${u.username} 的密码已重置，其会话已结束；下次登录须修改密码。`, "ok");
        this.resetFor = null; this.resetPw = "";
        await this.load();
      } catch (e) { QA.toast(e.message, "error"); }
    },
  };
}

function settingsPage() {
  return {
    items: [], error: "",
    async load() {
      try { this.items = (await QA.api("GET", "/api/v1/admin/settings")).items; } catch (e) { this.error = e.message; }
    },
  };
}
