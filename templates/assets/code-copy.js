/* lora-site: a "Copy" button on every code block of a post.

   Progressive enhancement: without this script the page reads the same, with no button. The
   button copies the code exactly as its source has it: the text of the block's <code> element
   without line numbers or shell prompts (Pygments and Rouge give both their own classes) and
   without the newline that ends the block. "Copied" (or the failure) is announced through one
   polite live region, and the button says it for two seconds. */
(function () {
  "use strict";

  var SKIP = ".linenos, .lineno, .gutter, .gp";       // line numbers, prompts
  var BOX = ".highlighter-rouge, .highlight, .code-box";

  function codeText(pre) {
    var code = (pre.querySelector("code") || pre).cloneNode(true);
    Array.prototype.forEach.call(code.querySelectorAll(SKIP), function (el) {
      el.parentNode.removeChild(el);
    });
    return code.textContent.replace(/\n$/, "");
  }

  function copyWithSelection(text) {
    // No asynchronous clipboard (a page served over plain http): a hidden text area.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(text) {
    if (navigator.clipboard && navigator.clipboard.writeText && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () {
        return copyWithSelection(text);
      });
    }
    return copyWithSelection(text);
  }

  function nameOf(pre) {
    // A listing's figure names its function or class first in its summary or caption.
    var figure = pre.closest("figure.listing");
    var code = figure && figure.querySelector("summary code, figcaption code");
    return code ? code.textContent : "";
  }

  function init() {
    var blocks = document.querySelectorAll("article pre");
    if (!blocks.length) return;
    var status = document.createElement("div");
    status.className = "visually-hidden";
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    document.body.appendChild(status);

    function say(text) {
      status.textContent = "";
      window.setTimeout(function () { status.textContent = text; }, 50);
    }

    Array.prototype.forEach.call(blocks, function (pre) {
      var box = pre.parentElement && pre.parentElement.closest(BOX);
      if (!box) {
        box = document.createElement("div");
        box.className = "code-box";
        pre.parentNode.insertBefore(box, pre);
        box.appendChild(pre);
      }
      if (box.querySelector(".code-copy")) return;
      var timer = null;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "code-copy";
      button.textContent = "Copy";
      var name = nameOf(pre);
      button.setAttribute("aria-label", name ? "Copy " + name : "Copy the code");
      button.addEventListener("click", function () {
        copy(codeText(pre)).then(function () {
          say("Copied");
          button.textContent = "Copied";
        }, function () {
          say("Could not copy: select the code and copy it by hand");
          button.textContent = "Not copied";
        }).then(function () {
          window.clearTimeout(timer);
          timer = window.setTimeout(function () { button.textContent = "Copy"; }, 2000);
        });
      });
      box.classList.add("has-copy");
      box.insertBefore(button, box.firstChild);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
