// Keyward pages: progressive enhancement only; every page works without this file.
(function () {
  "use strict";

  // Copy a one-time token to the clipboard: <button data-copy-target="element-id">.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      try {
        document.execCommand("copy") ? resolve() : reject(new Error("copy refused"));
      } catch (err) {
        reject(err);
      } finally {
        document.body.removeChild(area);
      }
    });
  }

  function setUpCopyButtons() {
    document.querySelectorAll("[data-copy-target]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy-target"));
        var status = document.getElementById(button.getAttribute("data-copy-status"));
        if (!source) return;
        copyText(source.textContent.trim()).then(
          function () { if (status) status.textContent = "Copied"; },
          function () { if (status) status.textContent = "Select and copy it by hand"; }
        );
      });
    });
  }

  // Show the expiry date field only when "On a date…" is chosen.
  function setUpExpiry() {
    var select = document.getElementById("id_expiry");
    var dateField = document.querySelector("[data-expiry-date]");
    if (!select || !dateField) return;
    function sync() {
      var hasError = dateField.classList.contains("field-invalid");
      dateField.hidden = select.value !== "date" && !hasError;
    }
    select.addEventListener("change", sync);
    sync();
  }

  // A publishable key: show its origins field, and only the scopes marked public.
  function setUpKeyKind() {
    var radios = document.querySelectorAll("input[name='key_kind']");
    var origins = document.querySelector("[data-origins]");
    if (!radios.length || !origins) return;
    function sync() {
      var chosen = document.querySelector("input[name='key_kind']:checked");
      var publishable = chosen && chosen.value === "publishable";
      origins.hidden = !publishable && !origins.classList.contains("field-invalid");
      document.querySelectorAll("#scopes label.choice").forEach(function (label) {
        var hide = publishable && !label.hasAttribute("data-public-scope");
        label.hidden = hide;
        if (hide) label.querySelector("input").checked = false;
      });
    }
    radios.forEach(function (radio) { radio.addEventListener("change", sync); });
    sync();
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpCopyButtons();
    setUpExpiry();
    setUpKeyKind();
  });
})();
