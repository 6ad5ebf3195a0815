/* eid-agent.js — identification and signing with eid-agent from a web page. No dependencies.
 *
 *   var agent = new EidAgent({ lang: "sv", relay: "/eid/relay" });   // relay: optional
 *   agent.identify({ nonce: nonce, personalNumber: "198112189876", onStatus: show })
 *     .then(function (result) { ... });
 *   agent.sign({ nonce: nonce, text: "I agree …", nonVisibleData: "ref:42", onStatus: show });
 *   agent.cancel();
 *
 * Two doors. The bridge: the page calls the agent on 127.0.0.1 (port 24721) and resolves
 * with its completionData, which your server verifies (rp.verify_auth / verify_sign).
 * The relay: your server starts the order at its order relay and the page opens an
 * eid-agent:// link; with `relay` set the page uses it when the bridge does not answer
 * (not running, or the browser's local-network permission denied) or when asked
 * (`door: "relay"`). It posts to three paths of your own server under `relay`:
 *   POST relay/start   {type, personalNumber?, text?}  -> {link}
 *   POST relay/collect {}                               -> {status, hintCode?, result?}
 *   POST relay/cancel  {}
 * and resolves with `result` (what your server decided, e.g. who logged in).
 * `agent.door` says which door the last order used.
 *
 * onStatus({ status, hintCode, door, link?, message: { code, title, body } }) runs whenever
 * the status changes; on the relay door `link` is the eid-agent:// link, for an "open the
 * agent" link of the page's own in case the browser did not open it. Failures reject with
 * EidAgent.Error { kind: "failed" | "error", code (the hintCode or errorCode), message }.
 * Every message comes from the agent's catalogue, in Swedish and English (table below,
 * generated: python -m rp.webmessages --write).
 *
 * The bridge is on the loopback address. Chromium-based browsers ask the person once
 * whether the site may reach local devices (Local Network Access); fetch is called with
 * targetAddressSpace: "loopback", which browsers without that feature ignore.
 */
(function (global) {
  "use strict";

  /* BEGIN GENERATED MESSAGES */
var TABLE = {
 "errors": {
  "alreadyInProgress": 10054,
  "forbiddenHost": 10024,
  "forbiddenOrigin": 10056,
  "forbiddenUser": 10057,
  "internalError": 10024,
  "invalidParameters": 10024,
  "notFound": 10024,
  "rateLimited": 10055,
  "requestTooLarge": 10024,
  "unreachable": 10053,
  "updateRequired": 10007
 },
 "hints": {
  "cancelled": {
   "auth": 10051,
   "sign": 10051
  },
  "certificateErr": {
   "auth": 10052,
   "sign": 10052
  },
  "expiredTransaction": {
   "auth": 10035,
   "sign": 10035
  },
  "noClient": {
   "auth": 10025,
   "sign": 10025
  },
  "notSupportedByUserApp": {
   "auth": 10097,
   "sign": 10097
  },
  "outstandingTransaction": {
   "auth": 10049,
   "sign": 10050
  },
  "startFailed": {
   "auth": 10001,
   "sign": 10001
  },
  "started": {
   "auth": 10049,
   "sign": 10050
  },
  "updateRequired": {
   "auth": 10007,
   "sign": 10007
  },
  "userCancel": {
   "auth": 10036,
   "sign": 10036
  },
  "userSign": {
   "auth": 10049,
   "sign": 10050
  }
 },
 "messages": {
  "10001": {
   "en": {
    "body": "Restart the computer and try again. If the error remains, contact the support of the bank that issued your BankID and quote message code 10001.",
    "title": "A technical error occurred"
   },
   "sv": {
    "body": "Starta om datorn och försök igen. Om felet finns kvar, kontakta supporten hos banken som gav dig ditt BankID och uppge meddelandekod 10001.",
    "title": "Ett tekniskt fel har inträffat"
   }
  },
  "10007": {
   "en": {
    "body": "Your version of the agent is too old to be used and must be updated. Click OK to update.",
    "title": "Update required"
   },
   "sv": {
    "body": "Din version av programmet är för gammal för att kunna användas och måste uppdateras. Klicka OK för att uppdatera.",
    "title": "Uppdatering krävs"
   }
  },
  "10024": {
   "en": {
    "body": "An internal technical error occurred. Contact your bank's support and quote message code 10024.",
    "title": "Internal technical error"
   },
   "sv": {
    "body": "Ett internt tekniskt fel har inträffat. Kontakta supporten hos din bank och uppge meddelandekod 10024.",
    "title": "Internt tekniskt fel"
   }
  },
  "10025": {
   "en": {
    "body": "There is no BankID on this computer that can be used for this identification or signature. If you have a BankID on card, insert it in the card reader. Otherwise you need to order a BankID from your bank.",
    "title": "BankID missing"
   },
   "sv": {
    "body": "Det finns inget BankID i den här datorn som kan användas för den här legitimeringen eller underskriften. Har du BankID på kort, sätt i kortet i kortläsaren. Annars behöver du beställa ett BankID hos din bank.",
    "title": "BankID saknas"
   }
  },
  "10034": {
   "en": {
    "body": "The personal number must be written with 12 digits and no hyphen or spaces, for example YYYYMMDDNNNN.",
    "title": "Write the personal number with 12 digits"
   },
   "sv": {
    "body": "Personnumret ska skrivas med 12 siffror utan bindestreck eller mellanslag, till exempel ÅÅÅÅMMDDNNNN.",
    "title": "Skriv personnumret med 12 siffror"
   }
  },
  "10035": {
   "en": {
    "body": "The identification or signature was not completed in time and has been stopped. Start again from the website.",
    "title": "Time ran out"
   },
   "sv": {
    "body": "Legitimeringen eller underskriften gjordes inte i tid och har avbrutits. Börja om från webbplatsen.",
    "title": "Tiden gick ut"
   }
  },
  "10036": {
   "en": {
    "body": "You cancelled the identification or signature. Nothing was sent to the website.",
    "title": "Cancelled"
   },
   "sv": {
    "body": "Du avbröt legitimeringen eller underskriften. Ingenting skickades till webbplatsen.",
    "title": "Avbrutet"
   }
  },
  "10045": {
   "en": {
    "body": "The personal number has 12 digits but is not a valid personal number (the date or the check digit is wrong). Check the digits and try again.",
    "title": "The personal number is not right"
   },
   "sv": {
    "body": "Personnumret har 12 siffror men är inte ett giltigt personnummer (datumet eller kontrollsiffran stämmer inte). Kontrollera siffrorna och försök igen.",
    "title": "Personnumret stämmer inte"
   }
  },
  "10049": {
   "en": {
    "body": "Choose your BankID and type your password or PIN in the eID agent.",
    "title": "Identify yourself in the eID agent"
   },
   "sv": {
    "body": "Välj BankID och skriv ditt lösenord eller din PIN i e-legitimationsprogrammet.",
    "title": "Legitimera dig i e-legitimationsprogrammet"
   }
  },
  "10050": {
   "en": {
    "body": "Read the text in the eID agent, choose your BankID and type your password or PIN to sign.",
    "title": "Sign in the eID agent"
   },
   "sv": {
    "body": "Läs texten i e-legitimationsprogrammet, välj BankID och skriv ditt lösenord eller din PIN för att skriva under.",
    "title": "Skriv under i e-legitimationsprogrammet"
   }
  },
  "10051": {
   "en": {
    "body": "The identification or signature was cancelled. Try again.",
    "title": "The action was cancelled"
   },
   "sv": {
    "body": "Legitimeringen eller underskriften avbröts. Försök igen.",
    "title": "Åtgärden avbröts"
   }
  },
  "10052": {
   "en": {
    "body": "There is no BankID on this computer that can be used right now: it is missing, has expired or is locked. The eID agent shows the reason. Order a new BankID from your bank if you need one.",
    "title": "The BankID could not be used"
   },
   "sv": {
    "body": "Det finns inget BankID i den här datorn som kan användas just nu: det saknas, har gått ut eller är låst. E-legitimationsprogrammet visar orsaken. Beställ vid behov ett nytt BankID hos din bank.",
    "title": "BankID:t kunde inte användas"
   }
  },
  "10053": {
   "en": {
    "body": "The web page cannot reach the eID agent. Check that it is installed and running. If the browser asks whether the site may access devices on your local network, allow it. Then try again.",
    "title": "The eID agent does not answer"
   },
   "sv": {
    "body": "Webbsidan får ingen kontakt med e-legitimationsprogrammet. Kontrollera att det är installerat och igång. Om webbläsaren frågar om webbplatsen får komma åt enheter i ditt lokala nätverk, tillåt det. Försök sedan igen.",
    "title": "E-legitimationsprogrammet svarar inte"
   }
  },
  "10054": {
   "en": {
    "body": "The eID agent is already busy with an identification or signature. Finish or cancel it in the agent and try again.",
    "title": "An identification is already in progress"
   },
   "sv": {
    "body": "E-legitimationsprogrammet håller redan på med en legitimering eller underskrift. Avsluta eller avbryt den i programmet och försök igen.",
    "title": "En legitimering pågår redan"
   }
  },
  "10055": {
   "en": {
    "body": "There were too many attempts in a short time. Wait a moment and try again.",
    "title": "Too many attempts"
   },
   "sv": {
    "body": "Det har gjorts för många försök på kort tid. Vänta en stund och försök igen.",
    "title": "För många försök"
   }
  },
  "10056": {
   "en": {
    "body": "The settings on this computer do not allow this website to use the eID agent. Contact whoever manages the computer if you think this is wrong.",
    "title": "This website may not use the eID agent"
   },
   "sv": {
    "body": "Inställningarna på den här datorn tillåter inte att den här webbplatsen använder e-legitimationsprogrammet. Kontakta den som administrerar datorn om du tror att det är fel.",
    "title": "Webbplatsen får inte använda e-legitimationsprogrammet"
   }
  },
  "10057": {
   "en": {
    "body": "The eID agent answering on this computer is running for another user. Log that user out, or start the agent for your own account.",
    "title": "The agent belongs to another user"
   },
   "sv": {
    "body": "E-legitimationsprogrammet som svarar på den här datorn körs av en annan användare. Logga ut den användaren, eller starta programmet för ditt eget konto.",
    "title": "Programmet tillhör en annan användare"
   }
  },
  "10083": {
   "en": {
    "body": "The browser is now opening the eID agent. If it does not open, click «Open the eID agent». Then follow the instructions in the eID agent.",
    "title": "Opening the eID agent"
   },
   "sv": {
    "body": "Webbläsaren öppnar nu e-legitimationsprogrammet. Om det inte öppnas, klicka på «Öppna e-legitimationsprogrammet». Följ sedan anvisningarna i e-legitimationsprogrammet.",
    "title": "Öppnar e-legitimationsprogrammet"
   }
  },
  "10084": {
   "en": {
    "body": "The eID agent did not start the identification or signature. Check that it is installed on this computer and try again.",
    "title": "The eID agent did not start"
   },
   "sv": {
    "body": "E-legitimationsprogrammet startade inte legitimeringen eller underskriften. Kontrollera att det är installerat på den här datorn och försök igen.",
    "title": "E-legitimationsprogrammet startade inte"
   }
  },
  "10097": {
   "en": {
    "body": "The website asked for something the eID agent cannot do, such as checking a passport or having the PIN typed on the card reader's own keypad. Contact the website if you need another way to identify yourself.",
    "title": "This cannot be done with the eID agent"
   },
   "sv": {
    "body": "Webbplatsen bad om något som e-legitimationsprogrammet inte kan göra, till exempel att kontrollera ett pass eller att PIN-koden skrivs på kortläsarens egen knappsats. Kontakta webbplatsen om du behöver ett annat sätt att legitimera dig.",
    "title": "Det här går inte med e-legitimationsprogrammet"
   }
  }
 },
 "relayHints": {
  "outstandingTransaction": {
   "auth": 10083,
   "sign": 10083
  },
  "startFailed": {
   "auth": 10084,
   "sign": 10084
  }
 },
 "site": {
  "personalNumberFormat": 10034,
  "personalNumberInvalid": 10045,
  "relayUnavailable": 10001,
  "verificationFailed": 10001
 }
};
  /* END GENERATED MESSAGES */

  var DEFAULT_PORT = 24721;
  var POLL_MS = 2000;
  var MIN_POLL_MS = 1000; // never poll faster: the bridge rate-limits per origin
  var PROBE_MS = 3000; // how long the bridge may take to answer before the relay is used

  function message(code, lang) {
    var entry = TABLE.messages[String(code)] || TABLE.messages["10024"];
    var text = entry[lang] || entry.en;
    return { code: Number(code), title: text.title, body: text.body };
  }

  function EidAgentError(kind, code, msg, details) {
    this.name = "EidAgentError";
    this.kind = kind;
    this.code = code;
    this.message = msg.title;
    this.detail = msg;
    this.details = details || "";
  }
  EidAgentError.prototype = Object.create(Error.prototype);
  EidAgentError.prototype.constructor = EidAgentError;

  function bytesToBase64(bytes) {
    var out = "";
    for (var i = 0; i < bytes.length; i += 0x8000) {
      out += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(out);
  }

  function textToBase64(text) {
    return bytesToBase64(new TextEncoder().encode(text));
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function EidAgent(options) {
    options = options || {};
    this.port = options.port || DEFAULT_PORT;
    this.lang = options.lang === "sv" ? "sv" : "en";
    this.pollMs = Math.max(MIN_POLL_MS, options.pollMs || POLL_MS);
    this.base = "http://127.0.0.1:" + this.port;
    this.relay = options.relay ? String(options.relay).replace(/\/+$/, "") : null;
    this.orderRef = null;
    this.door = null;
    this._relayActive = false;
  }

  EidAgent.prototype._error = function (errorCode, details) {
    var code = TABLE.errors[errorCode] || TABLE.errors.internalError;
    return new EidAgentError("error", errorCode, message(code, this.lang), details);
  };

  EidAgent.prototype._fetch = function (path, init) {
    var self = this;
    init.targetAddressSpace = "loopback";
    init.credentials = "omit";
    init.cache = "no-store";
    return fetch(self.base + path, init).then(
      function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          if (!response.ok) throw self._error(data.errorCode || "internalError", data.details);
          return data;
        });
      },
      function () { throw self._error("unreachable"); }
    );
  };

  EidAgent.prototype._post = function (path, body) {
    return this._fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Eid-Agent": "1" },
      body: JSON.stringify(body),
    });
  };

  /** Version and update state of the running agent; rejects when it does not answer. */
  EidAgent.prototype.info = function () {
    return this._fetch("/v1/info", { method: "GET" });
  };

  EidAgent.prototype.identify = function (options) {
    var body = { nonce: options.nonce };
    if (options.personalNumber) body.personalNumber = options.personalNumber;
    if (options.tokenKinds) body.tokenKinds = options.tokenKinds;
    if (options.text) body.userVisibleData = textToBase64(options.text);
    return this._run("auth", body, options);
  };

  EidAgent.prototype.sign = function (options) {
    var body = { nonce: options.nonce, userVisibleData: textToBase64(options.text) };
    if (options.format) body.userVisibleDataFormat = options.format;
    if (options.nonVisibleData !== undefined) {
      body.userNonVisibleData = typeof options.nonVisibleData === "string"
        ? textToBase64(options.nonVisibleData)
        : bytesToBase64(options.nonVisibleData);
    }
    if (options.personalNumber) body.personalNumber = options.personalNumber;
    if (options.tokenKinds) body.tokenKinds = options.tokenKinds;
    return this._run("sign", body, options);
  };

  /** Which door to use: the bridge when it answers, else the relay if the site has one. */
  EidAgent.prototype._choose = function (options) {
    var self = this;
    var wanted = options.door || (self.relay ? "auto" : "bridge");
    if (wanted === "relay" && self.relay) return Promise.resolve("relay");
    if (wanted !== "auto") return Promise.resolve("bridge");
    var abort = typeof AbortController !== "undefined" ? new AbortController() : null;
    var timer = abort ? setTimeout(function () { abort.abort(); }, PROBE_MS) : null;
    return self._fetch("/v1/info", { method: "GET", signal: abort ? abort.signal : undefined })
      .then(function () { return "bridge"; }, function (error) {
        // an agent that answers with a refusal is there: its answer is the one to show
        return error.code === "unreachable" ? "relay" : "bridge";
      })
      .then(function (door) { if (timer) clearTimeout(timer); return door; });
  };

  EidAgent.prototype._run = function (type, body, options) {
    var self = this;
    return self._choose(options).then(function (door) {
      self.door = door;
      return door === "relay" ? self._runRelay(type, options) : self._runBridge(type, body, options);
    });
  };

  EidAgent.prototype._site = function (path, body) {
    var self = this;
    return fetch(self.relay + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var code = TABLE.site[data.site] || TABLE.site.relayUnavailable;
          throw new EidAgentError("error", data.site || "relayUnavailable", message(code, self.lang));
        }
        return data;
      });
    }, function () {
      throw new EidAgentError("error", "relayUnavailable", message(TABLE.site.relayUnavailable, self.lang));
    });
  };

  EidAgent.prototype._runRelay = function (type, options) {
    var self = this;
    var last = null;
    var start = { type: type };
    if (options.personalNumber) start.personalNumber = options.personalNumber;
    if (options.text !== undefined) start.text = options.text;
    return self._site("/start", start).then(function (started) {
      self._relayActive = true;
      var link = String(started.link || "");
      if (link.indexOf("eid-agent:") !== 0) throw self._error("internalError");
      window.location.href = link; // still in the click's user activation: the browser opens it
      function hint(r) {
        var words = TABLE.relayHints[r.hintCode] || TABLE.hints[r.hintCode] || {};
        return message(words[type] || 10024, self.lang);
      }
      function poll() {
        if (!self._relayActive) {
          throw new EidAgentError("failed", "cancelled", message(TABLE.hints.cancelled[type], self.lang));
        }
        return self._site("/collect", {}).then(function (r) {
          if (r.status === "complete") {
            self._relayActive = false;
            return r.result;
          }
          if (r.status === "failed") {
            self._relayActive = false;
            throw new EidAgentError("failed", r.hintCode, hint(r));
          }
          if (r.hintCode !== last) {
            last = r.hintCode;
            if (options.onStatus) {
              options.onStatus({ status: r.status, hintCode: r.hintCode, door: "relay", link: link,
                                 message: hint(r) });
            }
          }
          return sleep(self.pollMs).then(poll);
        });
      }
      return poll();
    });
  };

  EidAgent.prototype._runBridge = function (type, body, options) {
    var self = this;
    var last = null;
    return self._post("/v1/" + type, body).then(function (started) {
      self.orderRef = started.orderRef;
      function poll() {
        return self._post("/v1/collect", { orderRef: started.orderRef }).then(function (r) {
          if (r.status === "complete") {
            self.orderRef = null;
            return r.completionData;
          }
          var hint = TABLE.hints[r.hintCode] || {};
          var msg = message(hint[type] || 10024, self.lang);
          if (r.status === "failed") {
            self.orderRef = null;
            throw new EidAgentError("failed", r.hintCode, msg);
          }
          if (r.hintCode !== last) {
            last = r.hintCode;
            if (options.onStatus) {
              options.onStatus({ status: r.status, hintCode: r.hintCode, door: "bridge", message: msg });
            }
          }
          return sleep(self.pollMs).then(poll);
        });
      }
      return poll();
    });
  };

  /** Cancel the order in progress; the pending identify/sign then rejects with "cancelled". */
  EidAgent.prototype.cancel = function () {
    if (this._relayActive) {
      this._relayActive = false;
      return this._site("/cancel", {}).catch(function () {});
    }
    if (!this.orderRef) return Promise.resolve();
    return this._post("/v1/cancel", { orderRef: this.orderRef }).catch(function () {});
  };

  EidAgent.message = function (code, lang) { return message(code, lang === "sv" ? "sv" : "en"); };
  /** The message for a status hint of an order of `type` through `door` ("bridge"/"relay"). */
  EidAgent.hintMessage = function (hintCode, type, lang, door) {
    var words = (door === "relay" && TABLE.relayHints[hintCode]) || TABLE.hints[hintCode] || {};
    return EidAgent.message(words[type] || 10024, lang);
  };
  EidAgent.siteMessage = function (name, lang) { return EidAgent.message(TABLE.site[name], lang); };
  EidAgent.Error = EidAgentError;
  EidAgent.DEFAULT_PORT = DEFAULT_PORT;
  global.EidAgent = EidAgent;
})(typeof window !== "undefined" ? window : globalThis);
