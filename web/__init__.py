"""The Starlette app: REST, the WebSocket feed, OpenAPI and Swagger UI."""
