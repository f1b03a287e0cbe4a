"""One contract suite per port, run against every adapter of that port.

Each module holds a ``…Contract`` mixin whose test names are the sentences of the port's
docstring, and one ``Test…`` class per adapter that inherits it and provides the fixture (as
Haystack's document-store test mixins do; ``tests/test_store_contract.py`` is the first of them).
A new adapter is done when a class for it passes the mixin unchanged.

* ``test_vectors.py`` — :class:`linqra.vectors.VectorStore` on Milvus Lite;
* ``test_embedders.py`` — :class:`linqra.llm.embeddings.Embedder`: ``local:hash-512``, OpenAI,
  Gemini, Cohere (against their wire-protocol fakes);
* ``test_blobs.py`` — :class:`linqra.knowledge.blobs.BlobStore` on files;
* ``test_event_bus.py`` — :class:`linqra.events.EventBus`: in-process, Redis Streams, Kafka
  (tansu) and ``RayEventBus`` (the cluster default, ``ray://``);
* ``test_llm_models.py`` — :class:`linqra.llm.base.Model`: ``local``, OpenAI, Anthropic,
  Gemini, Cohere (against their fakes).
"""
