// Starts Swagger UI on the page's OpenAPI document. A same-origin file rather
// than an inline script, so the page's Content-Security-Policy needs no
// 'unsafe-inline'; the settings come from data- attributes of the page.
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    // Relative to the page (/docs), so the document, and with it the
    // operations "Try it out" calls, come from the server that served it.
    url: new URL(root.dataset.openapiUrl, document.baseURI).href,
    domNode: root,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    displayRequestDuration: true,
    // The ids generated clients name their functions after.
    displayOperationId: true,
    // No badge asking validator.swagger.io about the document.
    validatorUrl: null,
    // Never load another document named in the page's query string.
    queryConfigEnabled: false,
  });
})();
