// Berth catalogue: search as you type and copy buttons. The pages work
// without this file; it only adds to them. Text from the server is set
// with textContent, never parsed as HTML.
"use strict";

(function () {
  // Copy buttons: hidden until this script can make them work.
  function copyText(button) {
    const text = button.getAttribute("data-copy") || "";
    const done = function () {
      const label = button.textContent;
      button.textContent = "Copied";
      button.classList.add("done");
      setTimeout(function () {
        button.textContent = label;
        button.classList.remove("done");
      }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {});
      return;
    }
    // Plain http: select the command so the reader can copy it.
    const code = button.parentElement && button.parentElement.querySelector("code");
    if (code) {
      const range = document.createRange();
      range.selectNodeContents(code);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      try {
        if (document.execCommand("copy")) {
          done();
        }
      } catch (e) {
        // the text stays selected
      }
    }
  }
  document.querySelectorAll("button.copy[data-copy]").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () { copyText(b); });
  });

  // Filters on the search page apply at once.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (s) {
    s.addEventListener("change", function () { s.form.submit(); });
    const apply = s.form && s.form.querySelector(".apply");
    if (apply) {
      apply.hidden = true;
    }
  });

  // Search as you type.
  const input = document.getElementById("q");
  const box = document.getElementById("suggest");
  if (!input || !box || !window.fetch) {
    return;
  }
  const kinds = { app: "App", runtime: "Runtime", image: "Image" };
  let timer = 0;
  let seq = 0;

  function safePath(u, prefixes) {
    return typeof u === "string" && prefixes.some(function (p) { return u.indexOf(p) === 0; }) && u.indexOf("//") !== 0;
  }

  function hide() {
    box.hidden = true;
    box.textContent = "";
    input.setAttribute("aria-expanded", "false");
  }

  function show(q, data) {
    box.textContent = "";
    const results = (data && data.results) || [];
    results.forEach(function (r) {
      if (!safePath(r.url, ["/apps/", "/repositories/"])) {
        return;
      }
      const a = document.createElement("a");
      a.href = r.url;
      a.setAttribute("role", "option");
      const img = document.createElement("img");
      img.alt = "";
      img.width = 32;
      img.height = 32;
      if (safePath(r.icon, ["/icons/"])) {
        img.src = r.icon;
      } else {
        img.src = r.kind === "image" ? box.getAttribute("data-image-icon") : box.getAttribute("data-app-icon");
      }
      a.appendChild(img);
      const text = document.createElement("span");
      text.className = "s-text";
      const name = document.createElement("span");
      name.className = "s-name";
      name.textContent = r.name;
      const sub = document.createElement("span");
      sub.className = "s-sub";
      let line = kinds[r.kind] || r.kind;
      if (r.matched_tags && r.matched_tags.length) {
        line += " · tags " + r.matched_tags.slice(0, 3).join(", ");
      } else if (r.summary) {
        line += " · " + r.summary;
      } else if (r.kind !== "image") {
        line += " · " + r.id;
      }
      sub.textContent = line;
      text.appendChild(name);
      text.appendChild(sub);
      a.appendChild(text);
      box.appendChild(a);
    });
    const all = document.createElement("a");
    all.className = "s-all";
    all.href = "/search?q=" + encodeURIComponent(q);
    all.textContent = results.length ? "All results (" + data.total + ")" : "No matches. Search everything";
    box.appendChild(all);
    box.hidden = false;
    input.setAttribute("aria-expanded", "true");
  }

  function lookup() {
    const q = input.value.trim();
    if (q === "") {
      hide();
      return;
    }
    const mine = ++seq;
    fetch("/api/v1/search?per_page=8&q=" + encodeURIComponent(q), { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (mine === seq && data && input.value.trim() === q) {
          show(q, data);
        }
      })
      .catch(function () {});
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(lookup, 120);
  });
  input.addEventListener("keydown", function (e) {
    const items = Array.prototype.slice.call(box.querySelectorAll("a"));
    if (e.key === "ArrowDown" && items.length && !box.hidden) {
      e.preventDefault();
      items[0].focus();
    } else if (e.key === "Escape") {
      hide();
    }
  });
  box.addEventListener("keydown", function (e) {
    const items = Array.prototype.slice.call(box.querySelectorAll("a"));
    const i = items.indexOf(document.activeElement);
    if (e.key === "ArrowDown") {
      e.preventDefault();
      (items[i + 1] || items[0]).focus();
    } else if (e.key === "ArrowUp") {
      e.preventDefault();
      if (i <= 0) {
        input.focus();
      } else {
        items[i - 1].focus();
      }
    } else if (e.key === "Escape") {
      hide();
      input.focus();
    }
  });
  document.addEventListener("click", function (e) {
    if (!box.contains(e.target) && e.target !== input) {
      hide();
    }
  });
})();
