// Sorting and filtering of the run table; works offline, no dependencies.
(function () {
  var table = document.getElementById("runs");
  if (!table) return;
  var body = table.tBodies[0];
  var headers = table.tHead.rows[0].cells;
  function value(row, i, kind) {
    var v = row.cells[i].getAttribute("data-value") || row.cells[i].textContent;
    if (kind === "num") { var n = parseFloat(v); return isNaN(n) ? -Infinity : n; }
    return v.toLowerCase();
  }
  function sortBy(i) {
    var th = headers[i], kind = th.getAttribute("data-sort");
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    for (var k = 0; k < headers.length; k++) headers[k].removeAttribute("aria-sort");
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, i, kind), y = value(b, i, kind);
      return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  Array.prototype.forEach.call(headers, function (th, i) {
    if (!th.hasAttribute("data-sort")) return;
    th.addEventListener("click", function () { sortBy(i); });
    th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(i); } });
  });
  var filter = document.getElementById("filter"), shown = document.getElementById("shown");
  var cards = document.querySelectorAll("button.count"), verdict = "";
  function applyFilter() {
    var q = filter.value.trim().toLowerCase(), n = 0;
    Array.prototype.forEach.call(body.rows, function (r) {
      var hit = (!q || r.textContent.toLowerCase().indexOf(q) !== -1) &&
        (!verdict || r.cells[1].getAttribute("data-verdict") === verdict);
      r.hidden = !hit; if (hit) n++;
    });
    shown.textContent = n + " of " + body.rows.length + " runs shown" + (verdict ? " (" + verdict + ")" : "");
  }
  // A verdict count filters the table to its runs; clicked again, it shows every run.
  Array.prototype.forEach.call(cards, function (card) {
    card.addEventListener("click", function () {
      verdict = verdict === card.getAttribute("data-verdict") ? "" : card.getAttribute("data-verdict");
      Array.prototype.forEach.call(cards, function (c) {
        c.setAttribute("aria-pressed", String(c.getAttribute("data-verdict") === verdict));
      });
      applyFilter();
    });
  });
  filter.addEventListener("input", applyFilter);
  applyFilter();
  // Optional columns: shown or hidden as a whole.
  Array.prototype.forEach.call(document.querySelectorAll("input[data-column]"), function (box) {
    box.addEventListener("change", function () {
      table.classList.toggle("hide-" + box.getAttribute("data-column"), !box.checked);
    });
  });
})();
