"""OpenAPI 3.1 description of the REST API, generated from the protos."""
