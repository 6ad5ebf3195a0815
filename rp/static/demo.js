/* The demo website's page logic: ask our server for a nonce, let eid-agent identify or
 * sign, hand the result to our server to verify, show what happened. */
(function () {
  "use strict";
  // The server chose the page's language (?lang= or the browser's); the agent speaks it too.
  var lang = document.documentElement.lang === "sv" ? "sv" : "en";
  var when = new Intl.DateTimeFormat(lang === "sv" ? "sv-SE" : "en-GB",
                                     { dateStyle: "long", timeStyle: "medium" });
  var agent = new EidAgent({ port: Number(document.body.dataset.agentPort), lang: lang });
  var type = document.body.dataset.type;
  var $ = function (id) { return document.getElementById(id); };

  function show(msg, state) {
    var box = $("status");
    box.dataset.state = state;
    box.dataset.code = msg ? String(msg.code) : "";
    $("status-title").textContent = msg ? msg.title : "";
    $("status-body").textContent = msg ? msg.body : "";
  }

  function busy(on) {
    $("go").disabled = on;
    $("cancel").hidden = !on;
  }

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    }).then(function (r) { return r.json().then(function (d) { return { ok: r.ok, data: d }; }); });
  }

  function run(event) {
    event.preventDefault();
    $("result").hidden = true;
    var pnr = $("pnr") ? $("pnr").value.trim() : "";
    var text = $("text") ? $("text").value : undefined;
    busy(true);
    show(null, "");
    post("/api/start", { type: type, personalNumber: pnr, text: text }).then(function (start) {
      if (!start.ok) {
        show(EidAgent.siteMessage(start.data.site || "verificationFailed", lang), "error");
        busy(false);
        return;
      }
      var options = {
        nonce: start.data.nonce,
        personalNumber: start.data.personalNumber || undefined,
        text: text,
        onStatus: function (s) { show(s.message, "pending"); },
      };
      var work = type === "sign" ? agent.sign(options) : agent.identify(options);
      return work.then(function (completionData) {
        return post("/api/finish", { completionData: completionData }).then(function (fin) {
          busy(false);
          if (!fin.ok) {
            show(EidAgent.siteMessage("verificationFailed", lang), "error");
            $("status").dataset.reason = fin.data.reason || "";
            return;
          }
          show(null, "done");
          var p = fin.data.person;
          $("who").textContent = p.name + " (" + p.personalNumber + ")";
          $("when").dateTime = fin.data.signedAt;
          $("when").textContent = when.format(new Date(fin.data.signedAt));
          if ($("signed-text")) $("signed-text").textContent = fin.data.text;
          $("result").hidden = false;
        });
      }, function (error) {
        busy(false);
        if (!(error instanceof EidAgent.Error)) throw error;
        show(error.detail, "error");
        $("status").dataset.hint = error.code;
      });
    });
  }

  $("form").addEventListener("submit", run);
  $("cancel").addEventListener("click", function () { agent.cancel(); });
})();
