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

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", zoom);
  } else {
    zoom();
  }
})();
