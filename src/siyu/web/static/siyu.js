/* siyu console behaviour beyond htmx: error toasts, clickable table rows, fading flashes. */
(function () {
  "use strict";

  function toast(title, message) {
    var box = document.getElementById("toasts");
    if (!box) { return; }
    var item = document.createElement("div");
    item.className = "toast";
    item.setAttribute("role", "alert");
    var strong = document.createElement("strong");
    strong.textContent = title;
    item.appendChild(strong);
    if (message) { item.appendChild(document.createTextNode(message)); }
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, 6000);
  }

  // htmx does not swap 4xx/5xx answers: show the console's error fragment as a toast instead.
  document.addEventListener("htmx:responseError", function (event) {
    var doc = new DOMParser().parseFromString(event.detail.xhr.responseText || "", "text/html");
    var node = doc.querySelector("[data-error-title]");
    var title = node ? node.getAttribute("data-error-title") : document.body.dataset.errorTitle;
    toast(title, node ? node.textContent.trim() : "");
  });

  document.addEventListener("htmx:sendError", function () {
    toast(document.body.dataset.networkError || "Network error", "");
  });

  // A row with data-href opens its page, except when the click was on a link or button inside it.
  document.addEventListener("click", function (event) {
    var row = event.target.closest("tr[data-href]");
    if (!row || event.target.closest("a, button, input, form")) { return; }
    if (event.metaKey || event.ctrlKey) { window.open(row.dataset.href, "_blank"); return; }
    window.location.assign(row.dataset.href);
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-flash]").forEach(function (node) {
      setTimeout(function () { node.remove(); }, 8000);
    });
  });
})();
