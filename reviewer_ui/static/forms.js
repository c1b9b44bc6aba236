// The Alpine.js components of the data-entry and report pages: coaching trainings, the
// agency evaluation report, the complaint register's form and CSV import, the roster import.
// Dates are typed as yyyy-mm-dd (QA.parseDay), times in China time (+08:00).
/* exported coaching, agencyReport, complaintEntry, rosterImport */
"use strict";

async function postFile(url, file) {
  const body = new FormData();
  body.append("file", file, file.name);
  const r = await fetch(url, { method: "POST", body, credentials: "same-origin",
    headers: { "X-CSRF-Token": QA.csrf, Accept: "application/json" } });
  const data = await r.json().catch(() => null);
  if (!r.ok) throw new Error((data && data.error && data.error.message) || `导入失败（HTTP ${r.status}）`);
  return data;
}

function coaching(role) {
  return {
    items: [], trainings: [], rules: [], passMark: null, error: "", loaded: false,
    canRecord: role === "supervisor",
    form: { agent_id: "", rule: "", day: "", note: "" },
    async load() {
      try {
        const d = await QA.api("GET", "/api/v1/coaching");
        this.items = d.items; this.trainings = d.trainings; this.passMark = d.pass_mark;
        if (this.canRecord && !this.rules.length) this.rules = (await QA.api("GET", "/api/v1/rules")).items;
      } catch (e) { this.error = e.message; }
      this.loaded = true;
    },
    async record() {
      const day = QA.parseDay(this.form.day);
      if (!day) { QA.toast("培训日期格式应为 yyyy-mm-dd，例如 2026-11-20。", "error"); return; }
      try {
        await QA.api("POST", "/api/v1/coaching/trainings", {
          agent_id: this.form.agent_id.trim(), rule: this.form.rule || null,
          trained_at: `${day}T09:00:00+08:00`, note: this.form.note.trim(),
        });
        QA.toast(`已登记坐席 ${this.form.agent_id.trim()} 的培训。`, "ok");
        this.form = { agent_id: "", rule: "", day: "", note: "" };
        await this.load();
      } catch (e) { QA.toast(e.message, "error"); }
    },
  };
}

function agencyReport() {
  return {
    rows: [], period: "", agency: "", from: "", to: "", error: "", loaded: false,
    pct(v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%"; },
    topViolations(r) {
      const v = Object.entries(r.violations || {}).sort((a, b) => b[1].count - a[1].count).slice(0, 3);
      return v.length ? v.map(([rule, x]) => `${rule}×${x.count}`).join("、") : "—";
    },
    async load() {
      this.error = "";
      const from = QA.parseDay(this.from);
      const to = QA.parseDay(this.to);
      if (from === null || to === null) { this.error = "日期格式应为 yyyy-mm-dd，例如 2026-11-06。"; return; }
      const q = new URLSearchParams();
      if (from) q.set("from", from);
      if (to) q.set("to", to);
      if (this.agency.trim()) q.set("agency", this.agency.trim());
      try {
        const d = await QA.api("GET", "/api/v1/reports/agency?" + q);
        this.rows = d.rows;
        this.period = `${d.period.from} 至 ${d.period.to}`;
      } catch (e) { this.error = e.message; }
      this.loaded = true;
    },
  };
}

// Mixed into the register page's component: register one complaint, import the bank's list.
function complaintEntry(reload) {
  return {
    entry: { source: "hotline", level: "general", type: "improper_method", day: "", time: "",
      customer_id: "", phone: "", reference: "", description: "" },
    importResult: null,
    async register() {
      const e = this.entry;
      const day = QA.parseDay(e.day);
      if (!day) { QA.toast("受理日期格式应为 yyyy-mm-dd，例如 2026-11-20。", "error"); return; }
      const time = e.time.trim() || "09:00";
      if (!/^\d{1,2}:\d{2}$/.test(time)) { QA.toast("受理时间格式应为 hh:mm。", "error"); return; }
      if (!e.customer_id.trim() && !e.phone.trim()) { QA.toast("请填写客户编号或电话号码，用于关联通话。", "error"); return; }
      try {
        const out = await QA.api("POST", "/api/v1/complaints", {
          source: e.source, level: e.level, type: e.type,
          received_at: `${day}T${time.padStart(5, "0")}:00+08:00`,
          customer_id: e.customer_id.trim() || null, phone: e.phone.trim() || null,
          reference: e.reference.trim() || null, description: e.description.trim(),
        });
        QA.toast(out.created ? `投诉已登记，关联通话 ${out.linked_calls} 通。` : "该投诉此前已登记。", "ok");
        this.entry = { ...this.entry, customer_id: "", phone: "", reference: "", description: "" };
        await reload.call(this);
      } catch (err) { QA.toast(err.message, "error"); }
    },
    async importList(form) {
      const file = form.querySelector("input[type=file]").files[0];
      if (!file) { QA.toast("请选择投诉清单 CSV 文件。", "error"); return; }
      try {
        this.importResult = await postFile("/api/v1/complaints/import", file);
        QA.toast(`已导入 ${this.importResult.imported} 条投诉。`, "ok");
        form.reset();
        await reload.call(this);
      } catch (err) { QA.toast(err.message, "error"); }
    },
  };
}

function rosterImport() {
  return {
    rosterResult: null,
    async importRoster(form) {
      const file = form.querySelector("input[type=file]").files[0];
      if (!file) { QA.toast("请选择坐席名单 CSV 文件。", "error"); return; }
      try {
        this.rosterResult = await postFile("/api/v1/admin/roster", file);
        const r = this.rosterResult;
        QA.toast(`名单已导入：新增 ${r.created}，更新 ${r.updated}，未变 ${r.unchanged}。`, "ok");
        form.reset();
      } catch (err) { QA.toast(err.message, "error"); }
    },
  };
}
