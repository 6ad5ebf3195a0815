/* The demo website's page logic: ask our server for a nonce, let eid-agent identify or
 * sign, hand the result to our server to verify, show what happened. With a relay
 * configured (data-relay), the order goes through it when the agent's bridge does not
 * answer: our server starts it, the page opens the eid-agent:// link, and the agent sends
 * the browser back to /eid/return, which brings it here with ?relay=returned. */
(function () {
  "use strict";
  // The server chose the page's language (?lang= or the browser's); the agent speaks it too.
  var lang = document.documentElement.lang === "sv" ? "sv" : "en";
  var when = new Intl.DateTimeFormat(lang === "sv" ? "sv-SE" : "en-GB",
                                     { dateStyle: "long", timeStyle: "medium" });
  var relay = document.body.dataset.relay || null;
  var agent = new EidAgent({ port: Number(document.body.dataset.agentPort), lang: lang,
                             relay: relay });
  var type = document.body.dataset.type;
  var $ = function (id) { return document.getElementById(id); };
  var query = new URLSearchParams(window.location.search);

  function show(msg, state) {
    var box = $("status");
    box.dataset.state = state;
    box.dataset.code = msg ? String(msg.code) : "";
    $("status-title").textContent = msg ? msg.title : "";
    $("status-body").textContent = msg ? msg.body : "";
  }

  function door(name) {
    $("status").dataset.door = name;
    $("door-bridge").hidden = name !== "bridge";
    $("door-relay").hidden = name !== "relay";
  }

  function busy(on) {
    $("go").disabled = on;
    $("cancel").hidden = !on;
    if (!on) $("open-agent").hidden = true;
  }

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    }).then(function (r) { return r.json().then(function (d) { return { ok: r.ok, data: d }; }); });
  }

  function done(result) {
    busy(false);
    show(null, "done");
    var p = result.person;
    $("who").textContent = p.name + " (" + p.personalNumber + ")";
    $("when").dateTime = result.signedAt;
    $("when").textContent = when.format(new Date(result.signedAt));
    if ($("signed-text")) $("signed-text").textContent = result.text;
    $("result").hidden = false;
  }

  function failed(error) {
    busy(false);
    if (!(error instanceof EidAgent.Error)) throw error;
    show(error.detail, "error");
    $("status").dataset.hint = error.code;
  }

  function onStatus(s) {
    show(s.message, "pending");
    door(s.door);
    if (s.link) {
      $("open-agent").href = s.link; // a click of the person's own, if the browser did not open it
      $("open-agent").hidden = false;
    }
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
        onStatus: onStatus,
        door: query.get("door") === "relay" && relay ? "relay" : undefined, // ?door=relay
      };
      var work = type === "sign" ? agent.sign(options) : agent.identify(options);
      return work.then(function (outcome) {
        door(agent.door);
        if (agent.door === "relay") return done(outcome); // our server verified it already
        return post("/api/finish", { completionData: outcome }).then(function (fin) {
          if (!fin.ok) {
            busy(false);
            show(EidAgent.siteMessage("verificationFailed", lang), "error");
            $("status").dataset.reason = fin.data.reason || "";
            return;
          }
          done(fin.data);
        });
      }, failed);
    });
  }

  // Back from the agent through the return URL: our server knows this session came back;
  // the result is one collect away.
  function resume() {
    door("relay");
    if (query.get("relay") === "refused") {
      show(EidAgent.siteMessage("verificationFailed", lang), "error");
      $("status").dataset.reason = "returnRefused";
      return;
    }
    post(relay + "/collect", {}).then(function (r) {
      if (r.ok && r.data.status === "complete") return done(r.data.result);
      if (r.ok && r.data.status === "pending") return setTimeout(resume, 1000);
      if (r.ok && r.data.status === "failed") {
        show(EidAgent.hintMessage(r.data.hintCode, type, lang, "relay"), "error");
        $("status").dataset.hint = r.data.hintCode;
        return;
      }
      show(EidAgent.siteMessage(r.data.site || "verificationFailed", lang), "error");
    });
  }

  $("form").addEventListener("submit", run);
  $("cancel").addEventListener("click", function () { agent.cancel(); });
  if (relay && query.get("relay")) resume();
})();
