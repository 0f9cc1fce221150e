// The HTML report's script (src/html/mod.rs): sorting and filtering of the
// actors, and a filter from the address (report.html#class=threat).
"use strict";
// Errors are recorded on the page itself (data-js-errors), where a test
// or an analyst's devtools finds them; the page works without the script.
(function () {
  var root = document.documentElement;
  root.classList.add("js");
  function record(what) {
    var had = root.getAttribute("data-js-errors");
    root.setAttribute("data-js-errors", (had ? had + " | " : "") + what);
  }
  window.addEventListener("error", function (e) {
    record((e.message || "error") + " at " + (e.filename || "?") + ":" + (e.lineno || 0));
  });
  window.addEventListener("unhandledrejection", function (e) { record("unhandled rejection: " + e.reason); });
  document.addEventListener("securitypolicyviolation", function (e) {
    record("blocked by the page's policy: " + e.violatedDirective + " " + (e.blockedURI || ""));
  });

  var state = { cls: "all", q: "" };

  function actors() { return Array.prototype.slice.call(document.querySelectorAll("tbody.actor")); }

  // #class=threat&q=curl selects; any other fragment (#actors) is a plain anchor.
  function fromHash() {
    var h = location.hash.replace(/^#/, "");
    if (!/(^|&)(class|q)=/.test(h)) return false;
    var p = new URLSearchParams(h);
    state.cls = p.get("class") || "all";
    state.q = p.get("q") || "";
    return true;
  }

  function toHash() {
    var p = new URLSearchParams();
    if (state.cls !== "all") p.set("class", state.cls);
    if (state.q) p.set("q", state.q);
    var h = p.toString();
    history.replaceState(null, "", h ? "#" + h : location.pathname + location.search);
  }

  function apply() {
    var q = state.q.toLowerCase(), shown = 0, all = actors();
    all.forEach(function (t) {
      var ok = (state.cls === "all" || t.getAttribute("data-class") === state.cls) &&
        (!q || t.textContent.toLowerCase().indexOf(q) >= 0);
      t.hidden = !ok;
      if (ok) shown++;
    });
    document.querySelectorAll(".filters button[data-filter]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-filter") === state.cls));
    });
    var search = document.getElementById("actor-search");
    if (search && search.value !== state.q) search.value = state.q;
    var out = document.getElementById("actors-shown");
    if (out) out.textContent = "Showing " + shown + " of " + all.length + " actors" +
      (state.cls !== "all" ? " (" + state.cls + ")" : "") + (state.q ? " matching \u201c" + state.q + "\u201d" : "");
    root.setAttribute("data-filter", state.cls);
  }

  function sortBy(th) {
    var table = th.closest("table"), key = th.getAttribute("data-sort"), num = th.getAttribute("data-type") === "num";
    var dir = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending";
    if (!th.hasAttribute("aria-sort") && (key === "id" || key === "rank")) dir = "ascending";
    table.querySelectorAll("th[data-sort]").forEach(function (o) { o.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    var sign = dir === "ascending" ? 1 : -1;
    var rows = Array.prototype.slice.call(table.querySelectorAll("tbody.actor"));
    rows.sort(function (a, b) {
      var x = a.getAttribute("data-" + key), y = b.getAttribute("data-" + key), c;
      c = num ? Number(x) - Number(y) : (x < y ? -1 : x > y ? 1 : 0);
      if (c === 0) c = Number(a.getAttribute("data-rank")) - Number(b.getAttribute("data-rank"));
      return c * sign;
    });
    rows.forEach(function (r) { table.appendChild(r); });
  }

  function init() {
    document.querySelectorAll(".filters button[data-filter]").forEach(function (b) {
      b.addEventListener("click", function () { state.cls = b.getAttribute("data-filter"); apply(); toHash(); });
    });
    document.querySelectorAll("a[data-filter-link]").forEach(function (a) {
      a.addEventListener("click", function (e) {
        e.preventDefault();
        state.cls = a.getAttribute("data-filter-link");
        apply();
        toHash();
        var s = document.getElementById("actors");
        if (s) s.scrollIntoView({ behavior: "smooth" });
      });
    });
    var search = document.getElementById("actor-search");
    if (search) search.addEventListener("input", function () { state.q = search.value; apply(); toHash(); });
    document.querySelectorAll("#actor-table th[data-sort] button").forEach(function (b) {
      b.addEventListener("click", function () { sortBy(b.closest("th")); });
    });
    // A link to an actor (from the prospects or misconfigurations) shows it
    // even when a filter hid it.
    document.querySelectorAll("a[href^=\"#actor-\"]").forEach(function (a) {
      a.addEventListener("click", function () {
        var t = document.getElementById(a.getAttribute("href").slice(1));
        if (t && t.hidden) { state.cls = "all"; state.q = ""; apply(); }
        if (t) { var d = t.querySelector("details"); if (d) d.open = true; }
      });
    });
    window.addEventListener("hashchange", function () { if (fromHash()) apply(); });
    fromHash();
    apply();
    root.setAttribute("data-js-ready", "1");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
