// The review queue (risk order comes from the API), with filters and claiming.
function reviewQueue() {
  "use strict";
  const page = JSON.parse(document.getElementById("page-data").textContent);
  return {
    items: [], rules: [], error: "", loaded: false,
    canClaim: page.role === "inspector",
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
    async claim(item) {
      try {
        await QA.api("POST", `/api/v1/calls/${encodeURIComponent(item.call_id)}/claim`);
        location.href = "/ui/calls/" + encodeURIComponent(item.call_id);
      } catch (e) { QA.toast(e.message, "error"); this.load(); }
    },
  };
}
