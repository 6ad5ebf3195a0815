// The login page's status: asks the provider every 1.5 s what the relay says, shows it,
// and follows the provider to the website once the login is done. Nothing else.
(function () {
  "use strict";
  var poll = document.getElementById("poll");
  if (!poll) {
    return;
  }
  var login = poll.getAttribute("data-login");
  function show(state) {
    var box = document.getElementById("status");
    if (box && state.title) {
      box.querySelector("strong").textContent = state.title;
      box.querySelector("p").textContent = state.body || "";
    }
  }
  function tick() {
    fetch("/login/status?l=" + encodeURIComponent(login), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (r) {
        return r.json();
      })
      .then(function (state) {
        show(state);
        if (state.next) {
          window.location.assign(state.next);
          return;
        }
        if (state.finished) {
          window.location.reload();
          return;
        }
        setTimeout(tick, 1500);
      })
      .catch(function () {
        setTimeout(tick, 3000);
      });
  }
  setTimeout(tick, 1500);
})();
