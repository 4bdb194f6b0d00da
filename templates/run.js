// The heatmap's read-out: the layer, step and RMS of the cell under the pointer. Works offline.
(function () {
  var data = document.querySelector("script.heatmap-data");
  var svg = document.querySelector("svg.heatmap");
  if (!data || !svg) return;
  var d = JSON.parse(data.textContent), box = d.box, values = null;
  if (d.log10_rms_milli) {
    var bytes = Uint8Array.from(atob(d.log10_rms_milli), function (c) { return c.charCodeAt(0); });
    values = new Int32Array(bytes.buffer);
  }
  var out = document.createElement("p");
  out.className = "hover-value muted";
  out.setAttribute("aria-live", "polite");
  out.textContent = "Point at a cell for its layer, step and RMS.";
  svg.parentNode.insertBefore(out, svg.nextSibling);
  function rms(milli) { return milli === -2147483648 ? "NaN/Inf or empty" : Math.pow(10, milli / 1000).toExponential(2); }
  svg.addEventListener("mousemove", function (e) {
    var p = svg.createSVGPoint(); p.x = e.clientX; p.y = e.clientY;
    var q = p.matrixTransform(svg.getScreenCTM().inverse());
    var col = Math.floor((q.x - box[0]) / box[2] * d.steps.length);
    var row = Math.floor((q.y - box[1]) / box[3] * d.tags.length);
    if (col < 0 || row < 0 || col >= d.steps.length || row >= d.tags.length) return;
    var text = d.tags[row] + " · step " + d.steps[col];
    if (values) text += " · RMS " + rms(values[row * d.steps.length + col]);
    out.textContent = text;
  });
})();
