// Login and password change: the API's Chinese messages are shown as they come.
(function () {
  "use strict";
  function showError(id, message) {
    const el = document.getElementById(id);
    el.textContent = message;
    el.hidden = false;
  }
  function nextUrl() {
    const next = new URLSearchParams(location.search).get("next") || "/";
    return next.startsWith("/") && !next.startsWith("//") ? next : "/";
  }
  document.addEventListener("DOMContentLoaded", () => {
    const login = document.getElementById("login-form");
    if (login) {
      login.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        document.getElementById("login-error").hidden = true;
        const username = document.getElementById("username").value.trim();
        const password = document.getElementById("password").value;
        if (!username || !password) return showError("login-error", "请输入用户名和密码。");
        try {
          const r = await fetch("/api/v1/auth/login", {
            method: "POST", credentials: "same-origin",
            headers: { "Content-Type": "application/json", Accept: "application/json" },
            body: JSON.stringify({ username, password }),
          });
          const data = await r.json();
          if (!r.ok) {
            const msg = (data.error && data.error.message) || "登录失败";
            return showError("login-error", r.status === 401 ? "用户名或密码错误。" + (msg.includes("剩余") ? msg : "") : msg);
          }
          location.href = data.user.must_change_password ? "/password" : nextUrl();
        } catch (e) {
          showError("login-error", "无法连接服务，请稍后重试。");
        }
      });
    }
    const pw = document.getElementById("password-form");
    if (pw) {
      pw.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        document.getElementById("pw-error").hidden = true;
        const current = document.getElementById("current").value;
        const n1 = document.getElementById("new1").value;
        const n2 = document.getElementById("new2").value;
        if (n1 !== n2) return showError("pw-error", "两次输入的新密码不一致。");
        try {
          await QA.api("POST", "/api/v1/auth/password",
            { current_password: current, new_password: n1 });
          QA.toast("密码已修改。", "ok");
          location.href = "/";
        } catch (e) {
          showError("pw-error", e.message);
        }
      });
    }
  });
})();
