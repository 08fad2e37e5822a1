// Forms that ask before they submit: <form data-confirm="Question?"> (a static file, not an
// onsubmit= attribute, which the Content-Security-Policy refuses). htmx forms use hx-confirm.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
