// The guide page, live: a changed form asks the server for the guide's new fragment and puts
// it in place; the address follows. Without this script the form submits as a plain GET.
(function () {
  "use strict";
  var form = document.getElementById("guide-form");
  var result = document.getElementById("guide-result");
  if (!form || !result || !window.fetch) return;
  document.body.classList.add("live");
  var pending = null, timer = null, seq = 0;

  function query() {
    return new URLSearchParams(new FormData(form)).toString();
  }

  function showCopy() {
    result.querySelectorAll("button.copy").forEach(function (b) { b.hidden = false; });
  }

  function update() {
    var mine = ++seq;
    if (pending) pending.abort();
    pending = new AbortController();
    fetch(form.dataset.fragment + "?" + query(), { signal: pending.signal, headers: { Accept: "text/html" } })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        if (mine !== seq) return;
        result.innerHTML = html;
        showCopy();
        var guide = result.querySelector("[data-page-url]");
        history.replaceState(null, "", guide ? guide.dataset.pageUrl + (sepQuery()) : form.action + "?" + query());
        result.dataset.seq = String(mine);
      })
      .catch(function () { /* aborted by a newer change, or offline: the form still submits */ });
  }

  // The separator is the page's own choice, not part of the guide URL: kept in the address.
  function sepQuery() {
    var sep = form.elements.namedItem("sep");
    return sep && sep.value !== "profile" ? "&sep=" + encodeURIComponent(sep.value) : "";
  }

  // Each object group's box ticks or clears the group's actions, and shows whether all,
  // some or none of them are ticked. It is not a form field: the form sends the actions.
  function syncGroups() {
    form.querySelectorAll("tbody[data-group]").forEach(function (body) {
      var all = body.querySelector("input.select-group");
      if (!all) return;
      var boxes = body.querySelectorAll('input[name="actions"]').length;
      var ticked = body.querySelectorAll('input[name="actions"]:checked').length;
      all.hidden = false;
      all.checked = ticked > 0 && ticked === boxes;
      all.indeterminate = ticked > 0 && ticked < boxes;
    });
  }

  form.addEventListener("change", function (e) {
    // A platform choice that departs from the profile's default is marked as a change.
    if (e.target.dataset.default) e.target.classList.toggle("changed", e.target.value !== e.target.dataset.default);
    if (e.target.classList.contains("select-group")) {
      var body = e.target.closest("tbody");
      body.querySelectorAll('input[name="actions"]').forEach(function (b) { b.checked = e.target.checked; });
    }
    syncGroups();
    update();
  });
  form.addEventListener("input", function (e) {
    if (e.target.type !== "text") return;
    clearTimeout(timer);
    timer = setTimeout(update, 250);
  });
  form.addEventListener("submit", function (e) { e.preventDefault(); update(); });

  result.addEventListener("click", function (e) {
    var button = e.target.closest("button.copy");
    if (!button) return;
    var source = document.getElementById(button.dataset.copy);
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent).then(function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    });
  });
  showCopy();
  syncGroups();
})();
