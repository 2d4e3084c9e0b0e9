// The API reference at /docs: Swagger UI (served by the gateway from the pinned swagger-ui-py package, no CDN)
// rendering /openapi.json. "Try it out" sends requests from the browser with the x-api-key given in "Authorize".
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#reference",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
    persistAuthorization: true,
  });
});
