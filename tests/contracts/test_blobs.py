"""The blob store contract (:class:`linqra.knowledge.blobs.BlobStore`), run on files."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from linqra.knowledge.blobs import BlobStore, FileBlobStore


class BlobStoreContract:
    async def test_put_then_get_returns_the_same_bytes(self, blobs: BlobStore) -> None:
        data = bytes(range(256)) * 1000  # every byte value
        await blobs.put("t1", "col-1/doc-1.pdf", data)
        assert await blobs.get("t1", "col-1/doc-1.pdf") == data

    async def test_empty_bytes_are_a_blob_not_a_missing_one(self, blobs: BlobStore) -> None:
        await blobs.put("t1", "col-1/empty", b"")
        assert await blobs.get("t1", "col-1/empty") == b""
        assert await blobs.get("t1", "col-1/never-put") is None

    async def test_a_put_replaces_what_the_key_held(self, blobs: BlobStore) -> None:
        await blobs.put("t1", "k", b"old bytes, longer than the new ones")
        await blobs.put("t1", "k", b"new")
        assert await blobs.get("t1", "k") == b"new"

    async def test_the_same_key_of_two_teams_is_two_blobs(self, blobs: BlobStore) -> None:
        await blobs.put("t1", "col/doc", b"one")
        assert await blobs.get("t2", "col/doc") is None
        await blobs.put("t2", "col/doc", b"two")
        await blobs.delete("t2", "col/doc")  # a team deletes only its own
        assert await blobs.get("t1", "col/doc") == b"one"
        assert await blobs.get("t2", "col/doc") is None

    async def test_unscoped_calls_are_impossible(self, blobs: BlobStore) -> None:
        for call in (blobs.put("", "k", b"x"), blobs.get("", "k"), blobs.delete("", "k")):
            with pytest.raises(ValueError, match="unscoped"):
                await call

    @pytest.mark.parametrize(
        "key", ["", "../other-team/k", "a/../../k", "..", "a/./b", "/etc/passwd", "a//b", "a/"]
    )
    async def test_keys_that_could_leave_the_teams_space_are_refused(
        self, blobs: BlobStore, key: str
    ) -> None:
        for call in (blobs.put("t1", key, b"x"), blobs.get("t1", key), blobs.delete("t1", key)):
            with pytest.raises(ValueError, match="unsafe blob key"):
                await call

    async def test_concurrent_puts_of_one_key_are_atomic_and_one_wins(
        self, blobs: BlobStore
    ) -> None:
        versions = [bytes([i]) * 512_000 for i in range(8)]
        await blobs.put("t1", "hot", versions[0])

        async def read() -> bytes | None:
            return await blobs.get("t1", "hot")

        results = await asyncio.gather(
            *(blobs.put("t1", "hot", v) for v in versions[1:]), *(read() for _ in range(16))
        )
        # every put succeeded, every read saw one whole version, never a mix or a missing blob
        assert results[: len(versions) - 1] == [None] * (len(versions) - 1)
        assert all(seen in versions for seen in results[len(versions) - 1 :])
        assert await blobs.get("t1", "hot") in versions[1:]

    async def test_deleting_a_missing_blob_is_a_no_op(self, blobs: BlobStore) -> None:
        await blobs.delete("t1", "never/put")
        await blobs.put("t1", "k", b"x")
        await blobs.delete("t1", "k")
        await blobs.delete("t1", "k")
        assert await blobs.get("t1", "k") is None


class TestFileBlobStore(BlobStoreContract):
    @pytest.fixture
    def blobs(self, tmp_path: Path) -> BlobStore:
        return FileBlobStore(tmp_path / "blobs")

    async def test_nothing_is_left_behind_but_the_blobs(
        self, blobs: BlobStore, tmp_path: Path
    ) -> None:
        await asyncio.gather(*(blobs.put("t1", "c/k", bytes([i]) * 1000) for i in range(8)))
        files = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
        assert [p.name for p in files] == ["k"]  # no temporary files remain
