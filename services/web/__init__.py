"""The web console: the pages (`/`, `/chat`, `/agents`, `/status`) and their static assets.

A grpc-free aiohttp process behind Envoy; the pages call the REST API like any client.
"""
