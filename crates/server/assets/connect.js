// The done page: hands the result to the window that opened the connect page (only to the
// origins the platform allowed), then closes; without an opener, returns to the platform.
(function () {
  var el = document.getElementById("result");
  if (!el) return;
  var result, origins;
  try {
    result = JSON.parse(el.getAttribute("data-result") || "{}");
    origins = JSON.parse(el.getAttribute("data-origins") || "[]");
  } catch (e) {
    return;
  }
  var back = el.getAttribute("data-return");
  if (window.opener && origins.length) {
    origins.forEach(function (origin) {
      window.opener.postMessage(result, origin);
    });
    setTimeout(function () { window.close(); }, 1500);
  } else if (back) {
    setTimeout(function () { window.location.replace(back); }, 2500);
  }
})();
