// Keyboard shortcuts for the review loop. No inline script: served from /static under a strict CSP.
(function () {
  "use strict";
  function typing(event) {
    const t = event.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }
  function click(id) {
    const el = document.getElementById(id);
    if (el) { el.click(); return true; }
    return false;
  }
  function clickLink(selector) {
    const el = document.querySelector(selector);
    if (el) { el.click(); return true; }
    return false;
  }
  function queueRows() { return Array.from(document.querySelectorAll("table.queue tbody tr[data-href]")); }
  let selected = -1;
  function select(index) {
    const rows = queueRows();
    if (!rows.length) { return; }
    selected = Math.max(0, Math.min(rows.length - 1, index));
    rows.forEach(function (r, i) { r.classList.toggle("selected", i === selected); });
    rows[selected].scrollIntoView({block: "nearest"});
  }
  // Choosing a reject reason decides nothing: Reject (or Enter in the list after r) does. Enter in any
  // one-line field never decides either (the form's first, disabled button also stops it without script).
  document.addEventListener("keydown", function (event) {
    const t = event.target;
    if (t && t.id === "reason") {
      if (event.key === "Enter") {
        event.preventDefault();
        if (t.value) { click("reject"); }
      }
      return;
    }
    if (event.key === "Enter" && t && t.tagName === "INPUT" && t.form && t.form.id === "decision-form") {
      event.preventDefault();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event)) { return; }
    const help = document.getElementById("help");
    const onQueue = document.querySelector("[data-keyboard=queue]") !== null;
    const key = event.key;
    if (key === "?") { help.hidden = !help.hidden; event.preventDefault(); return; }
    if (key === "Escape") { help.hidden = true; return; }
    if (onQueue) {
      const rows = queueRows();
      // Past the last row (or before the first) j/k turn the page; the new page starts at its top row.
      if (key === "j" && selected >= rows.length - 1 && rows.length) { if (!clickLink("a[rel=next]")) { select(selected + 1); } }
      else if (key === "k" && selected <= 0 && rows.length) { if (!clickLink("a[rel=prev]")) { select(0); } }
      else if (key === "j") { select(selected + 1); }
      else if (key === "k") { select(selected - 1); }
      else if ((key === "o" || key === "Enter") && selected >= 0) { window.location = queueRows()[selected].dataset.href; }
      else if (key === "u") { if (!click("undo-done")) { return; } }
      else { return; }
      event.preventDefault();
      return;
    }
    if (key === "j") { click("next"); }
    else if (key === "k") { click("prev"); }
    else if (key === "a") { click("accept"); }
    else if (key === "d") { click("defer"); }
    else if (key === "u") { if (!click("undo-done")) { click("undo"); } }
    else if (key === "r") {
      const reason = document.getElementById("reason");
      if (reason) { reason.focus(); }
    } else { return; }
    event.preventDefault();
  });
})();
