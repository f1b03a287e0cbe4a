"""The OpenAI fake ships with the library (:mod:`linqra.testing.fake_openai`, the benchmarks use
it too); re-exported here for the tests that import it from ``tests.support``."""

from __future__ import annotations

from linqra.testing.fake_openai import FakeOpenAI, fake_openai_app

__all__ = ["FakeOpenAI", "fake_openai_app"]
