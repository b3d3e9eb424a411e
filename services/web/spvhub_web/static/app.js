// spvhub web: the few behaviours a page needs without a reload. No inline script anywhere (strict CSP).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Copy a link (delegation) to the clipboard, with a visible confirmation.
  document.querySelectorAll("[data-copy]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var field = document.querySelector(btn.getAttribute("data-copy"));
      if (!field) return;
      field.select();
      var done = function () { btn.textContent = btn.getAttribute("data-done") || "OK"; };
      if (navigator.clipboard) { navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); }); }
      else { document.execCommand("copy"); done(); }
    });
  });
  // "Select all" for a column of checkboxes (the portfolio's invitation form).
  document.querySelectorAll("[data-select-all]").forEach(function (box) {
    box.addEventListener("change", function () {
      document.querySelectorAll("input[type=checkbox][name='" + box.getAttribute("data-select-all") + "']")
        .forEach(function (b) { b.checked = box.checked; });
    });
  });
  // A select that applies at once (the company of the documents page); the form still has its button.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (sel) {
    sel.addEventListener("change", function () { sel.form.submit(); });
  });
  // Ask before a destructive action.
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (ev) { if (!window.confirm(f.getAttribute("data-confirm"))) ev.preventDefault(); });
  });
  // A submission still being processed by ANAF: follow its status.
  var live = document.querySelector("[data-refresh]");
  if (live) { setTimeout(function () { window.location.reload(); }, 1000 * parseInt(live.getAttribute("data-refresh"), 10)); }
});
