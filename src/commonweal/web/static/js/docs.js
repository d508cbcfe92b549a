// Swagger UI over the hub's own OpenAPI document, from files the package ships.
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" });
