/* lora-site figures: progressive enhancement; every page reads and works without it.
   - A figure's image links to its full-resolution file; here the link opens that file over
     the page instead (a <dialog>: Escape, the close button or a click outside closes it).
   - A figure with data-explore="<url>" gets an attention map the reader can step through
     training with, drawn from the JSON at <url> (see generator/plots/explore.py). */
(function () {
  "use strict";
  if (window.loraSiteFigures) return;          // the Jekyll tree may include this twice
  window.loraSiteFigures = true;

  function zoom() {
    var dialog = null, img = null, closeButton = null, opener = null;
    function build() {
      dialog = document.createElement("dialog");
      dialog.className = "figure-lightbox";
      dialog.setAttribute("aria-label", "Figure at full size");
      closeButton = document.createElement("button");
      closeButton.type = "button";
      closeButton.className = "lightbox-close";
      closeButton.textContent = "Close";
      img = document.createElement("img");
      dialog.appendChild(closeButton);
      dialog.appendChild(img);
      document.body.appendChild(dialog);
      closeButton.addEventListener("click", function () { dialog.close(); });
      dialog.addEventListener("click", function (e) { if (e.target === dialog) dialog.close(); });
      dialog.addEventListener("close", function () { if (opener) opener.focus(); });
    }
    // The full-resolution file of the drawing on show: a <picture>'s source for the reader's
    // colour scheme when there is one, else the link's own target.
    function fullSource(link) {
      var sources = link.querySelectorAll("picture source");
      for (var i = 0; i < sources.length; i++) {
        var media = sources[i].getAttribute("media");
        if (media && !window.matchMedia(media).matches) continue;
        var found = / ?([^ ,]+) 2x/.exec(sources[i].getAttribute("srcset") || "");
        if (found) return found[1];
      }
      return link.getAttribute("href");
    }
    // Twice the size it has in the page (tick labels readable on a phone, which pans), but
    // no wider than a desktop window: the file is drawn at twice the page's size.
    function size(small) {
      var shown = small ? small.getBoundingClientRect().width : 0;
      var width = Math.max(shown * 2, 320);
      var vw = document.documentElement.clientWidth, vh = window.innerHeight;
      if (vw > 700 && small && small.naturalWidth) {
        var ratio = small.naturalHeight / small.naturalWidth;
        width = Math.min(width, vw * 0.94 - 16, (vh * 0.92 - 48) / ratio);
      }
      return Math.round(width);
    }
    document.addEventListener("click", function (e) {
      var link = e.target.closest && e.target.closest("a.figure-zoom, p.figure-image > a");
      if (!link || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      if (!window.HTMLDialogElement) return;   // an old browser follows the link
      e.preventDefault();
      if (!dialog) build();
      var small = link.querySelector("img");
      opener = link;
      img.src = fullSource(link);
      img.alt = small ? small.alt : "";
      img.style.width = size(small) + "px";
      dialog.showModal();
      closeButton.focus();
    });
  }


  // matplotlib's viridis at 17 evenly spaced points, the colour map of the attention figures
  // (tests/test_figure_extras.py checks these against matplotlib).
  var VIRIDIS = ["#440154", "#48186a", "#472d7b", "#424086", "#3b528b", "#33638d", "#2c728e",
                 "#26828e", "#21918c", "#1fa088", "#28ae80", "#3fbc73", "#5ec962", "#84d44b",
                 "#addc30", "#d8e219", "#fde725"];

  function rgb(hex) {
    return [1, 3, 5].map(function (i) { return parseInt(hex.substr(i, 2), 16); });
  }
  var STOPS = VIRIDIS.map(rgb);
  function colour(t) {                      // t in [0, 1] -> "rgb(r, g, b)", linear between stops
    t = Math.min(1, Math.max(0, t)) * (STOPS.length - 1);
    var i = Math.min(STOPS.length - 2, Math.floor(t)), f = t - i;
    var c = STOPS[i].map(function (v, k) { return Math.round(v + f * (STOPS[i + 1][k] - v)); });
    return "rgb(" + c.join(", ") + ")";
  }
  function inkFor(t) { return t > 0.55 ? "#000" : "#fff"; }   // readable on the cell's colour

  function element(tag, props, children) {
    var el = document.createElement(tag);
    Object.keys(props || {}).forEach(function (k) {
      if (k === "text") el.textContent = props[k]; else el.setAttribute(k, props[k]);
    });
    (children || []).forEach(function (c) { el.appendChild(c); });
    return el;
  }

  // The attention map of one run at any training step: a table of coloured cells (rows are
  // queries, columns keys), a step slider, and a readout of the cell under the pointer or the
  // keyboard focus (the target cell to begin with). Shape of doc.weights: (steps+1, n*n).
  function explorer(figure, doc) {
    var n = doc.n, q = doc.query, k = doc.key, step = doc.steps;
    var id = figure.id + "-explorer";
    var table = element("table", {"class": "explorer-map", tabindex: "0",
                                  "aria-describedby": id + "-readout"});
    // The corner names rows and columns by their initials (a cell of a phone's map is narrower
    // than "query"), and in full for a screen reader and a pointer's tooltip.
    var corner = doc.row + " \\ " + doc.column;
    var head = element("tr", {}, [element("th", {scope: "col", "class": "explorer-corner",
                                               text: doc.row[0] + "\\" + doc.column[0],
                                               "aria-label": corner, title: corner})]);
    for (var j = 0; j < n; j++) head.appendChild(element("th", {scope: "col", text: String(j)}));
    table.appendChild(element("thead", {}, [head]));
    var body = element("tbody"), cells = [];
    for (var i = 0; i < n; i++) {
      var row = element("tr", {}, [element("th", {scope: "row", text: String(i)})]);
      for (j = 0; j < n; j++) {
        var td = element("td", {"data-row": String(i), "data-col": String(j)});
        if (i === q && j === k) td.className = "explorer-target";
        row.appendChild(td);
        cells.push(td);
      }
      body.appendChild(row);
    }
    table.appendChild(body);
    var slider = element("input", {type: "range", min: "0", max: String(doc.steps),
                                   value: String(doc.steps), step: "1", id: id + "-step",
                                   "aria-label": "Training step"});
    var stepText = element("output", {"for": id + "-step", "class": "explorer-step"});
    var readout = element("p", {"class": "explorer-readout", id: id + "-readout",
                                "aria-live": "polite"});
    var active = [q, k];
    function value(i, j) { return doc.weights[step][i * n + j]; }
    function show() {
      var v = value(active[0], active[1]);
      readout.textContent = doc.row + " " + active[0] + " \u2192 " + doc.column + " " +
          active[1] + ": " + doc.value + " " + v.toFixed(3) + " at step " + step +
          (active[0] === q && active[1] === k ? " (the target)" : "");
    }
    function paint() {
      stepText.textContent = "step " + step + " of " + doc.steps +
          (step === 0 ? " (before training)" : step === doc.steps ? " (after training)" : "");
      cells.forEach(function (td) {
        var t = value(+td.dataset.row, +td.dataset.col) / doc.vmax;
        td.style.background = colour(t);
        td.style.color = inkFor(t);
        td.classList.toggle("explorer-active", +td.dataset.row === active[0] &&
                                               +td.dataset.col === active[1]);
      });
      show();
    }
    slider.addEventListener("input", function () { step = +slider.value; paint(); });
    table.addEventListener("mouseover", function (e) {
      var td = e.target.closest("td");
      if (!td) return;
      active = [+td.dataset.row, +td.dataset.col];
      paint();
    });
    table.addEventListener("keydown", function (e) {
      var moves = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]};
      var m = moves[e.key];
      if (!m) return;
      e.preventDefault();
      active = [Math.min(n - 1, Math.max(0, active[0] + m[0])),
                Math.min(n - 1, Math.max(0, active[1] + m[1]))];
      paint();
    });
    var legend = element("p", {"class": "explorer-legend"}, [
      element("span", {text: "0"}),
      element("span", {"class": "explorer-ramp", "aria-hidden": "true",
                       style: "background: linear-gradient(to right, " +
                              VIRIDIS.join(", ") + ")"}),
      element("span", {text: doc.vmax.toFixed(3) + " " + doc.value})]);
    var controls = element("div", {"class": "explorer-controls"}, [
      element("label", {"for": id + "-step", text: "Training step"}), slider, stepText]);
    var box = element("div", {"class": "explorer", id: id, role: "group",
                              "aria-label": "Attention map at every training step"},
                      [controls, table, legend, readout,
                       element("p", {"class": "explorer-help",
                                     text: "Point at a cell, or focus the map and use the " +
                                           "arrow keys, to read its value."})]);
    // Inside the <figure> after its image (HTML site); after the image's paragraph in the
    // Jekyll post, whose figure is that paragraph.
    var image = figure.querySelector("a.figure-zoom");
    if (image) image.insertAdjacentElement("afterend", box);
    else figure.insertAdjacentElement("afterend", box);
    figure.classList.add("explorer-ready");
    paint();
  }

  function explorers() {
    var found = document.querySelectorAll("[data-explore]");
    Array.prototype.forEach.call(found, function (figure) {
      fetch(figure.getAttribute("data-explore"))
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (doc) { if (doc.format === 1) explorer(figure, doc); })
        .catch(function () { /* the drawn figure stays: nothing is lost */ });
    });
  }

  function start() { zoom(); explorers(); }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
