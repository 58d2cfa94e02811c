// Intake console: the few things plain HTML cannot do. No inline script
// (the page's policy forbids it); htmx does the rest.
(function () {
  "use strict";
  // The port field's default follows protocol and security.
  function defaultPort(protocol, security) {
    if (protocol === "pop3") { return security === "tls" ? 995 : 110; }
    return security === "tls" ? 993 : 143;
  }
  function updatePort() {
    var protocol = document.getElementById("protocol");
    var security = document.getElementById("security");
    var shown = document.getElementById("default-port");
    if (!protocol || !security || !shown) { return; }
    shown.textContent = String(defaultPort(protocol.value, security.value));
    var port = document.getElementById("port");
    if (port) { port.placeholder = shown.textContent; }
  }
  document.addEventListener("change", function (event) {
    if (event.target && event.target.hasAttribute && event.target.hasAttribute("data-port-rule")) {
      updatePort();
    }
  });
  document.addEventListener("DOMContentLoaded", updatePort);
})();
