"""The public REST API (/v1): authentication, validation, error envelope, OpenAPI, routing to internal services."""
