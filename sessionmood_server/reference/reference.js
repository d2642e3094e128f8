// Swagger UI on this server's /openapi.json. A file of its own, not an
// inline script: the page's Content-Security-Policy allows this server only.
window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#reference',
  deepLinking: true,
  // No badge from the public validator: the page talks to this server only.
  validatorUrl: null,
  tryItOutEnabled: false,
});
