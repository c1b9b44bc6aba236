// The review queue (risk order comes from the API), with filters and claiming.
function reviewQueue() {
  "use strict";
  const page = JSON.parse(document.getElementById("page-data").textContent);
  return {
    items: [], rules: [], error: "", loaded: false,
    canClaim: page.role === "inspector",
    canUpload: page.role === "inspector",
    meta: { call_id: "", agent_id: "", team_id: "", started_at: "" }, uploading: false, uploaded: null,
    STATUS: { queued: "排队分析中", processing: "分析中", analyzed: "已分析", failed: "分析失败", error: "无法分析" },
    filters: { rule: "", team: "", weak: "", calibration: "", mine: false },
    async load() {
      this.error = "";
      const q = new URLSearchParams({ include_claimed: "true", limit: "200" });
      for (const [k, v] of Object.entries(this.filters)) if (v !== "" && v !== false) q.set(k, v);
      try {
        if (!this.rules.length) this.rules = (await QA.api("GET", "/api/v1/rules")).items;
        this.items = (await QA.api("GET", "/api/v1/review/queue?" + q)).items;
      } catch (e) { this.error = e.message; }
      this.loaded = true;
    },
    // Upload one recording (multipart, as the API takes it); the time is typed as
    // yyyy-mm-dd hh:mm (China time) so the format never depends on the browser's locale.
    async upload(form) {
      const file = form.querySelector("#up-file").files[0];
      if (!file) { QA.toast("请选择录音文件。", "error"); return; }
      const meta = {};
      if (this.meta.agent_id.trim()) meta.agent_id = this.meta.agent_id.trim();
      if (this.meta.team_id.trim()) meta.team_id = this.meta.team_id.trim();
      const when = this.meta.started_at.trim();
      // The API's metadata needs a call id; without any metadata it derives one itself.
      if (when) {
        const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})$/.exec(when);
        if (!m) { QA.toast("通话时间格式应为 yyyy-mm-dd hh:mm，例如 2026-11-06 14:32。", "error"); return; }
        meta.started_at = `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:00+08:00`;
      }
      const body = new FormData();
      body.append("file", file, file.name);
      if (Object.keys(meta).length || this.meta.call_id.trim()) {
        meta.call_id = this.meta.call_id.trim() || file.name.replace(/\.[^.]+$/, "");
        body.append("metadata", JSON.stringify(meta));
      }
      this.uploading = true;
      try {
        const r = await fetch("/api/v1/recordings", { method: "POST", body, credentials: "same-origin",
          headers: { "X-CSRF-Token": QA.csrf, Accept: "application/json" } });
        const data = await r.json().catch(() => null);
        if (!r.ok) throw new Error((data && data.error && data.error.message) || `上传失败（HTTP ${r.status}）`);
        this.uploaded = data;
        QA.toast(r.status === 200 ? "该录音此前已上传。" : "已上传，正在排队分析。", "ok");
        form.reset();
      } catch (e) { QA.toast(e.message, "error"); }
      this.uploading = false;
    },
    async claim(item) {
      try {
        await QA.api("POST", `/api/v1/calls/${encodeURIComponent(item.call_id)}/claim`);
        location.href = "/ui/calls/" + encodeURIComponent(item.call_id);
      } catch (e) { QA.toast(e.message, "error"); this.load(); }
    },
  };
}
