/* Tester un pass and Scanner des pass (console/scan.py).
 *
 * Every field marked data-pass-input maps the AZERTY top row back to digits as it is typed: a USB
 * barcode reader ("douchette") emulating a US keyboard on an AZERTY host types "&é\"'(-è_çà" for
 * "1234567890". Once such a character is seen, "-" is the 6 key too (as aptic.passnumber.normalise reads
 * it; the server normalises again anyway).
 *
 * On the scan page, Enter in the field no longer submits the form: the pass goes into the list, with the
 * server's pre-check verdict (no side effect), and the field is emptied for the next scan. The form's
 * button then submits every listed pass (hidden inputs named "pass"). Without JavaScript the form still
 * works: Enter records the one pass typed.
 */
(function () {
  "use strict";

  var AZERTY = { "&": "1", "é": "2", "\"": "3", "'": "4", "(": "5", "-": "6", "è": "7", "_": "8", "ç": "9", "à": "0" };

  function mapInput(input) {
    var azerty = false;
    input.addEventListener("input", function () {
      var value = input.value;
      if (!value) { azerty = false; return; }
      var out = "";
      for (var i = 0; i < value.length; i++) {
        var c = value.charAt(i);
        if (c !== "-" && AZERTY[c]) { azerty = true; }
      }
      for (var j = 0; j < value.length; j++) {
        var ch = value.charAt(j);
        out += (AZERTY[ch] && (ch !== "-" || azerty)) ? AZERTY[ch] : ch;
      }
      if (out !== value) {
        var end = input.selectionEnd === value.length;
        input.value = out;
        if (end) { input.setSelectionRange(out.length, out.length); }
      }
    });
  }

  function digitsOf(text) { return text.replace(/[\s.\-]/g, ""); }

  function group(digits) {
    if (!/^\d{18}$/.test(digits)) { return digits; }
    return [digits.slice(0, 1), digits.slice(1, 3), digits.slice(3, 10), digits.slice(10, 12),
            digits.slice(12, 16), digits.slice(16)].join(" ");
  }

  function scanPage(form) {
    var field = form.querySelector("[data-pass-input]");
    var fieldError = document.getElementById("f-pass-error");
    var list = document.getElementById("scan-list");
    var section = document.getElementById("scan-list-section");
    var count = document.getElementById("scan-count");
    var announce = document.getElementById("scan-announce");
    var max = parseInt(form.getAttribute("data-max"), 10) || 50;
    var checkUrl = form.getAttribute("data-check-url");

    function items() { return Array.prototype.slice.call(list.querySelectorAll(".scan-item")); }

    function refresh() {
      var n = items().length;
      count.textContent = String(n);
      section.hidden = n === 0;
    }

    function say(text) { announce.textContent = text; }

    function fieldMessage(text) {
      fieldError.textContent = text;
      if (text) { field.setAttribute("aria-invalid", "true"); } else { field.removeAttribute("aria-invalid"); }
    }

    function setCheck(item, state, text) {
      item.classList.remove("pending", "ok", "bad");
      item.classList.add(state);
      item.querySelector(".scan-check").textContent = text;
    }

    function check(item) {
      var body = new URLSearchParams();
      body.append("csrf_token", form.elements.csrf_token.value);
      body.append("point", form.elements.point.value);
      body.append("service", form.elements.service.value);
      body.append("pass", item.getAttribute("data-digits"));
      var all = items();  // the passes listed before this one, as a terminal's entry holds them
      for (var i = 0; i < all.length && all[i] !== item; i++) { body.append("entry", all[i].getAttribute("data-digits")); }
      return fetch(checkUrl, { method: "POST", body: body, credentials: "same-origin",
                               headers: { "Accept": "application/json" } })
        .then(function (response) {
          return response.json().then(function (data) { return { ok: response.ok, data: data }; });
        })
        .then(function (answer) {
          var data = answer.data;
          if (!answer.ok) {
            setCheck(item, "pending", "Vérification impossible : " + (data.message || "erreur."));
            return data;
          }
          if (data.digits) {
            item.querySelector(".scan-number").textContent = data.printed;
            item.querySelector(".visually-hidden").textContent = " le pass " + data.printed;
          }
          setCheck(item, data.valid ? "ok" : "bad", data.message);
          return data;
        })
        .catch(function () {
          setCheck(item, "pending", "Vérification impossible (réseau) : le pass sera vérifié à l’enregistrement.");
          return {};
        });
    }

    function removable(item) {
      item.querySelector(".scan-remove").addEventListener("click", function () {
        var next = item.nextElementSibling || item.previousElementSibling;
        var number = item.querySelector(".scan-number").textContent;
        item.remove();
        refresh();
        say("Pass " + number + " retiré de la liste.");
        var target = next ? next.querySelector(".scan-remove") : field;
        target.focus();
      });
    }

    function add(text) {
      var digits = digitsOf(text);
      var known = items().some(function (item) { return item.getAttribute("data-digits") === digits; });
      if (known) {
        fieldMessage("Le pass " + group(digits) + " est déjà dans la liste.");
        return;
      }
      if (items().length >= max) {
        fieldMessage("La liste est pleine (" + max + " pass) : enregistrez-la avant de scanner d’autres pass.");
        return;
      }
      fieldMessage("");
      var item = document.createElement("li");
      item.className = "scan-item pending";
      item.setAttribute("data-digits", digits);
      var hidden = document.createElement("input");
      hidden.type = "hidden"; hidden.name = "pass"; hidden.value = digits;
      var number = document.createElement("span");
      number.className = "scan-number"; number.textContent = group(digits);
      var verdict = document.createElement("span");
      verdict.className = "scan-check"; verdict.textContent = "Vérification…";
      var remove = document.createElement("button");
      remove.type = "button"; remove.className = "secondary scan-remove"; remove.textContent = "Retirer";
      var hiddenLabel = document.createElement("span");
      hiddenLabel.className = "visually-hidden"; hiddenLabel.textContent = " le pass " + group(digits);
      remove.appendChild(hiddenLabel);
      item.append(hidden, number, verdict, remove);
      list.appendChild(item);
      removable(item);
      refresh();
      check(item).then(function (data) {
        if (data.malformed) {  // not a pass number: it does not go into the list
          item.remove();
          refresh();
          fieldMessage("« " + text + " » : " + data.message);
        } else if (data.message) {
          say("Pass " + item.querySelector(".scan-number").textContent + " : " + data.message);
        }
      });
    }

    field.addEventListener("keydown", function (event) {
      if (event.key !== "Enter") { return; }
      event.preventDefault();
      var text = field.value.trim();
      field.value = "";
      field.dispatchEvent(new Event("input"));
      if (text) { add(text); }
    });

    function recheckAll() { items().forEach(check); }
    form.elements.point.addEventListener("change", recheckAll);
    form.elements.service.addEventListener("change", recheckAll);
    items().forEach(removable);
    if (items().length && form.elements.service.value) { recheckAll(); }
    refresh();
  }

  document.querySelectorAll("[data-pass-input]").forEach(mapInput);
  var form = document.getElementById("scan-form");
  if (form) { scanPage(form); }
})();
