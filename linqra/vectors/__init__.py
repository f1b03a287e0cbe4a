"""Vectors: the :class:`VectorStore` port (:mod:`.base`), its Milvus adapter (:mod:`.milvus`,
the same code on Milvus Lite and a Milvus server), the index strategy per collection size
(:mod:`.index`), and Milvus Lite as ``linqra up`` runs it (:mod:`.embedded`, serving
:mod:`.lite_server`).
"""

from linqra.vectors.base import (
    BUILTIN_FIELDS,
    FieldType,
    VectorHit,
    VectorStore,
    VectorStoreError,
    quote,
    row_key,
)
from linqra.vectors.embedded import EmbeddedMilvus
from linqra.vectors.milvus import MilvusVectorStore, open_vector_store

__all__ = [
    "BUILTIN_FIELDS",
    "EmbeddedMilvus",
    "FieldType",
    "MilvusVectorStore",
    "VectorHit",
    "VectorStore",
    "VectorStoreError",
    "open_vector_store",
    "quote",
    "row_key",
]
