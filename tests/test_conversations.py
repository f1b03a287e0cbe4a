"""Conversations, messages and chat runs (:mod:`linqra.assistants.conversations`), the same suite
on SQLite and on MongoDB (SecantusDB): the store port is all the repository relies on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from linqra.assistants.conversations import (
    MESSAGES,
    ConversationRepository,
    Message,
    MessageStatus,
    RunStatus,
)
from linqra.clock import iso, utcnow
from linqra.errors import Conflict, NotFound, ValidationError
from linqra.llm.types import Usage
from linqra.store import open_store

TEAM, OTHER = "team-a", "team-b"


class ConversationContract:
    """Fixture: ``repo``, a :class:`ConversationRepository` over an empty store."""

    # -- conversations ---------------------------------------------------------------------
    async def test_conversations_are_created_listed_renamed_and_hidden(
        self, repo: ConversationRepository
    ) -> None:
        first = await repo.create(TEAM, "asst_1", title="Hello", created_by="alice")
        assert first.id.startswith("conv_") and first.message_count == 0
        assert first.totals.cost == "0" and first.deleted_at is None
        second = await repo.create(TEAM, "asst_2")
        third = await repo.create(TEAM, "asst_1")
        await repo.create(OTHER, "asst_1")
        got = await repo.get(TEAM, first.id)
        assert got == first and "team_id" not in got.model_dump()
        items, total = await repo.list(TEAM)
        assert total == 3 and [c.id for c in items] == [third.id, second.id, first.id]
        items, total = await repo.list(TEAM, assistant_id="asst_1", limit=1, offset=1)
        assert total == 2 and [c.id for c in items] == [first.id]
        renamed = await repo.rename(TEAM, first.id, "Renamed")
        assert renamed.title == "Renamed" and renamed.updated_at >= first.updated_at
        with pytest.raises(NotFound):
            await repo.get(OTHER, first.id)
        with pytest.raises(NotFound):
            await repo.rename(OTHER, first.id, "x")
        with pytest.raises(ValidationError) as bad:
            await repo.rename(TEAM, first.id, "x" * 501)
        assert bad.value.field == "title"

        await repo.append(TEAM, first.id, role="user", content="hi", status="completed")
        await repo.delete(TEAM, first.id)
        for call in (
            repo.get(TEAM, first.id),
            repo.messages(TEAM, first.id),
            repo.history(TEAM, first.id),
            repo.append(TEAM, first.id, role="user", content="x", status="completed"),
            repo.delete(TEAM, first.id),
            repo.create_run(TEAM, first.id),
        ):
            with pytest.raises(NotFound):
                await call
        assert [c.id for c in (await repo.list(TEAM))[0]] == [third.id, second.id]

    # -- messages --------------------------------------------------------------------------
    async def test_messages_are_numbered_in_order_with_their_fields(
        self, repo: ConversationRepository
    ) -> None:
        conv = await repo.create(TEAM, "asst_1")
        user, created = await repo.append(
            TEAM, conv.id, role="user", content="What is Ray?", status="completed"
        )
        assert created and user.seq == 1 and user.id.startswith("msg_")
        reply, _ = await repo.append(
            TEAM,
            conv.id,
            role="assistant",
            content="",
            status="pending",
            run_id="run_1",
            model="openai:gpt-4o",
            tool_calls=[{"id": "t1"}],
        )
        assert reply.seq == 2 and reply.model == "openai:gpt-4o" and reply.run_id == "run_1"
        assert reply.model_extra == {"tool_calls": [{"id": "t1"}]}
        assert await repo.get_message(TEAM, reply.id) == reply
        assert (await repo.get(TEAM, conv.id)).message_count == 2
        with pytest.raises(NotFound):
            await repo.get_message(OTHER, reply.id)
        for field, kwargs in (
            ("role", {"role": "robot", "content": "x", "status": "completed"}),
            ("status", {"role": "user", "content": "x", "status": "done"}),
            ("content", {"role": "user", "content": 7, "status": "completed"}),
        ):
            with pytest.raises(ValidationError) as bad:
                await repo.append(TEAM, conv.id, **kwargs)  # type: ignore[arg-type]
            assert bad.value.field == field
        with pytest.raises(ValueError):
            await repo.append(TEAM, conv.id, role="user", content="x", status="completed", seq=9)

    async def test_fifty_concurrent_appends_get_distinct_gap_free_numbers(
        self, repo: ConversationRepository
    ) -> None:
        conv = await repo.create(TEAM, "asst_1")
        results = await asyncio.gather(
            *(
                repo.append(TEAM, conv.id, role="user", content=f"m{i}", status="completed")
                for i in range(50)
            )
        )
        assert all(created for _, created in results)
        assert sorted(m.seq for m, _ in results) == list(range(1, 51))
        listed, total = await repo.messages(TEAM, conv.id, limit=100)
        assert total == 50 and [m.seq for m in listed] == list(range(1, 51))
        assert {m.content for m in listed} == {f"m{i}" for i in range(50)}
        assert (await repo.get(TEAM, conv.id)).message_count == 50

    async def test_the_seq_index_is_unique(self, repo: ConversationRepository) -> None:
        conv = await repo.create(TEAM, "asst_1")
        msg, _ = await repo.append(TEAM, conv.id, role="user", content="x", status="completed")
        with pytest.raises(Conflict):
            await repo.store.insert(
                MESSAGES, TEAM, {**msg.model_dump(), "id": "msg_other", "seq": 1}
            )

    async def test_a_repeated_client_message_id_returns_the_first_message(
        self, repo: ConversationRepository
    ) -> None:
        conv = await repo.create(TEAM, "asst_1")
        other = await repo.create(TEAM, "asst_1")
        await repo.append(TEAM, conv.id, role="user", content="no key", status="completed")
        await repo.append(TEAM, conv.id, role="user", content="no key", status="completed")
        first, created = await repo.append(
            TEAM, conv.id, role="user", content="hi", status="completed", client_message_id="c-1"
        )
        again, created_again = await repo.append(
            TEAM,
            conv.id,
            role="user",
            content="changed",
            status="completed",
            client_message_id="c-1",
        )
        assert created and not created_again and again == first and again.content == "hi"
        racing = await asyncio.gather(
            *(
                repo.append(
                    TEAM,
                    conv.id,
                    role="user",
                    content="race",
                    status="completed",
                    client_message_id="c-2",
                )
                for _ in range(10)
            )
        )
        assert sum(created for _, created in racing) == 1
        assert len({m.id for m, _ in racing}) == 1
        _, total = await repo.messages(TEAM, conv.id)
        assert total == 4 and (await repo.get(TEAM, conv.id)).message_count == 4
        elsewhere, created = await repo.append(
            TEAM, other.id, role="user", content="hi", status="completed", client_message_id="c-1"
        )
        assert created and elsewhere.id != first.id and elsewhere.seq == 1

    async def test_update_message_is_a_compare_and_set_on_the_status(
        self, repo: ConversationRepository
    ) -> None:
        conv = await repo.create(TEAM, "asst_1")
        msg, _ = await repo.append(TEAM, conv.id, role="assistant", content="", status="pending")
        assert await repo.update_message(
            TEAM, msg.id, {"status": "streaming", "content": "Hel"}, expect_status="pending"
        )
        assert not await repo.update_message(
            TEAM, msg.id, {"status": "streaming"}, expect_status="pending"
        )
        assert await repo.update_message(TEAM, msg.id, {"content": "Hello"})
        assert not await repo.update_message(OTHER, msg.id, {"content": "x"})
        got = await repo.get_message(TEAM, msg.id)
        assert got.status == MessageStatus.STREAMING and got.content == "Hello"
        with pytest.raises(ValueError):
            await repo.update_message(TEAM, msg.id, {"seq": 5})
        with pytest.raises(ValidationError):
            await repo.update_message(TEAM, msg.id, {"status": "nearly"})

    async def test_finishing_a_message_adds_its_usage_and_cost_to_the_totals_once(
        self, repo: ConversationRepository
    ) -> None:
        conv = await repo.create(TEAM, "asst_1")
        one, _ = await repo.append(TEAM, conv.id, role="assistant", content="", status="streaming")
        two, _ = await repo.append(TEAM, conv.id, role="assistant", content="", status="pending")
        usage = Usage(input_tokens=10, cache_read_tokens=4, output_tokens=7, reasoning_tokens=2)
        done = await asyncio.gather(
            repo.finish_message(
                TEAM,
                one.id,
                "completed",
                content="Hello",
                usage=usage,
                cost=Decimal("0.1"),
                currency="USD",
                model="openai:gpt-4o",
                citations=[{"n": 1}],
            ),
            repo.finish_message(
                TEAM,
                two.id,
                "cancelled",
                content="Hi",
                cost="0.2",
                currency="USD",
                usage={"input_tokens": 1, "output_tokens": 1},
            ),
        )
        assert done == [True, True]
        assert not await repo.finish_message(TEAM, one.id, "completed", usage=usage, cost="5")
        assert not await repo.finish_message(TEAM, one.id, "failed")
        finished = await repo.get_message(TEAM, one.id)
        assert finished.status == "completed" and finished.content == "Hello"
        assert finished.cost == "0.1" and finished.currency == "USD" and finished.finished_at
        assert finished.usage is not None and finished.usage.cache_read_tokens == 4
        assert finished.citations == [{"n": 1}] and finished.model == "openai:gpt-4o"
        totals = (await repo.get(TEAM, conv.id)).totals
        assert (totals.input_tokens, totals.output_tokens, totals.cache_read_tokens) == (11, 8, 4)
        assert totals.reasoning_tokens == 2
        assert Decimal(totals.cost) == Decimal("0.3") and totals.currency == "USD"
        with pytest.raises(ValueError):
            await repo.finish_message(TEAM, one.id, "streaming")
        with pytest.raises(ValidationError):
            await repo.finish_message(TEAM, one.id, "completed", cost="lots")

    async def test_pages_and_history(self, repo: ConversationRepository) -> None:
        conv = await repo.create(TEAM, "asst_1")
        plan = [
            ("user", "q1", "completed"),
            ("assistant", "a1", "completed"),
            ("user", "q2", "completed"),
            ("assistant", "", "cancelled"),  # cancelled before a word: not history
            ("user", "q3", "completed"),
            ("assistant", "half an answ", "cancelled"),
            ("assistant", "boom", "failed"),
            ("user", "q4", "completed"),
            ("assistant", "", "streaming"),
        ]
        for role, content, status in plan:
            await repo.append(TEAM, conv.id, role=role, content=content, status=status)
        page, total = await repo.messages(TEAM, conv.id, limit=3, offset=2)
        assert total == 9 and [m.seq for m in page] == [3, 4, 5]
        page, total = await repo.messages(TEAM, conv.id, after_seq=7)
        assert total == 2 and [m.seq for m in page] == [8, 9]
        history = await repo.history(TEAM, conv.id, before_seq=8, limit=4)
        assert [m.content for m in history] == ["a1", "q2", "q3", "half an answ"]
        history = await repo.history(TEAM, conv.id, before_seq=8, limit=50)
        assert [m.seq for m in history] == [1, 2, 3, 5, 6]
        assert [m.seq for m in await repo.history(TEAM, conv.id, limit=2)] == [6, 8]

    async def test_rolling_back_a_turn_deletes_from_a_seq_and_reuses_the_numbers(
        self, repo: ConversationRepository
    ) -> None:
        conv = await repo.create(TEAM, "asst_1")
        for i in range(3):
            await repo.append(TEAM, conv.id, role="user", content=f"m{i}", status="completed")
        turn, _ = await repo.append(
            TEAM, conv.id, role="user", content="q", status="completed", client_message_id="c-9"
        )
        await repo.append(TEAM, conv.id, role="assistant", content="", status="failed")
        assert await repo.delete_from(TEAM, conv.id, turn.seq) == 2
        listed, total = await repo.messages(TEAM, conv.id)
        assert total == 3 and [m.seq for m in listed] == [1, 2, 3]
        assert (await repo.get(TEAM, conv.id)).message_count == 3
        retry, created = await repo.append(
            TEAM, conv.id, role="user", content="q", status="completed", client_message_id="c-9"
        )
        assert created and retry.seq == 4  # the retried turn is a new message
        assert await repo.delete_from(TEAM, conv.id, 10) == 0

    # -- runs ------------------------------------------------------------------------------
    async def test_run_status_changes_are_compare_and_set(
        self, repo: ConversationRepository
    ) -> None:
        conv = await repo.create(TEAM, "asst_7")
        user, _ = await repo.append(TEAM, conv.id, role="user", content="q", status="completed")
        run = await repo.create_run(TEAM, conv.id, user_message_id=user.id, policy={"tasks": 1})
        assert run.id.startswith("run_") and run.status == RunStatus.QUEUED
        assert run.assistant_id == "asst_7" and run.policy == {"tasks": 1}
        assert [r.id for r in await repo.active_runs(TEAM, conv.id)] == [run.id]
        assert await repo.set_run_status(TEAM, run.id, "running", owner="worker-1")
        assert not await repo.set_run_status(TEAM, run.id, "running", owner="worker-2")
        running = await repo.get_run(TEAM, run.id)
        assert running.owner == "worker-1" and running.started_at and running.heartbeat_at
        assert await repo.heartbeat_run(TEAM, run.id, owner="worker-1")
        assert not await repo.heartbeat_run(TEAM, run.id, owner="worker-2")
        assert await repo.update_run(TEAM, run.id, {"reply_message_id": "msg_x"})
        assert await repo.request_cancel(TEAM, run.id)
        assert (await repo.get_run(TEAM, run.id)).cancel_requested
        assert await repo.set_run_status(TEAM, run.id, "cancelled")
        assert not await repo.set_run_status(TEAM, run.id, "completed")
        assert not await repo.request_cancel(TEAM, run.id)
        assert not await repo.heartbeat_run(TEAM, run.id)
        ended = await repo.get_run(TEAM, run.id)
        assert ended.status == "cancelled" and ended.finished_at and ended.reply_message_id
        assert await repo.active_runs(TEAM, conv.id) == []
        with pytest.raises(NotFound):
            await repo.get_run(OTHER, run.id)
        assert not await repo.set_run_status(OTHER, run.id, "failed", expect=["cancelled"])
        with pytest.raises(ValidationError):
            await repo.set_run_status(TEAM, run.id, "paused")

    async def test_stale_runs_are_interrupted_with_their_partial_reply(
        self, repo: ConversationRepository
    ) -> None:
        replies: dict[str, Message] = {}
        runs: dict[str, str] = {}
        for team in (TEAM, OTHER):  # the supervisor sees every team
            conv = await repo.create(team, "asst_1")
            run = await repo.create_run(team, conv.id)
            reply, _ = await repo.append(
                team, conv.id, role="assistant", content="", status="streaming", run_id=run.id
            )
            await repo.update_message(team, reply.id, {"content": "Half a th"})
            assert await repo.set_run_status(team, run.id, "running", owner="w")
            replies[team], runs[team] = reply, run.id
        queued_conv = await repo.create(TEAM, "asst_1")
        queued = await repo.create_run(TEAM, queued_conv.id)

        assert await repo.interrupt_stale(utcnow(), stale_after=60) == []  # all fresh
        later = utcnow() + timedelta(seconds=61)
        stale = await repo.interrupt_stale(later, stale_after=60)
        # a queued run nobody heartbeats any more (its worker died) is interrupted too
        assert sorted(stale) == sorted([*runs.items(), (TEAM, queued.id)])
        assert await repo.interrupt_stale(later, stale_after=60) == []
        for team in (TEAM, OTHER):
            run = await repo.get_run(team, runs[team])
            assert run.status == RunStatus.INTERRUPTED and run.finished_at
            msg = await repo.get_message(team, replies[team].id)
            assert msg.status == MessageStatus.INTERRUPTED and msg.content == "Half a th"
            assert not await repo.set_run_status(team, run.id, "completed")  # the owner lost
            assert not await repo.finish_message(team, msg.id, "completed", content="late")
        assert (await repo.get_run(TEAM, queued.id)).status == RunStatus.INTERRUPTED

    async def test_a_stale_run_its_worker_still_holds_is_renewed_not_interrupted(
        self, repo: ConversationRepository
    ) -> None:
        conv = await repo.create(TEAM, "asst_1")
        alive, dead = [await repo.create_run(TEAM, conv.id) for _ in range(2)]
        for run in (alive, dead):
            assert await repo.set_run_status(TEAM, run.id, "running", owner="w")
        asked: list[tuple[str, str, str]] = []

        async def holds(team_id: str, conversation_id: str, run_id: str) -> bool:
            asked.append((team_id, conversation_id, run_id))
            if run_id == dead.id:  # its worker's process is gone: asking it fails
                raise ConnectionError("no such worker")
            return run_id == alive.id

        later = utcnow() + timedelta(seconds=61)
        assert await repo.interrupt_stale(later, 60, holds) == [(TEAM, dead.id)]
        assert sorted(asked) == sorted([(TEAM, conv.id, alive.id), (TEAM, conv.id, dead.id)])
        kept = await repo.get_run(TEAM, alive.id)
        assert kept.status == RunStatus.RUNNING and kept.heartbeat_at == iso(later)  # renewed
        assert (await repo.get_run(TEAM, dead.id)).status == RunStatus.INTERRUPTED
        asked.clear()
        assert await repo.interrupt_stale(later, 60, holds) == [] and asked == []  # fresh again


class TestConversationsOnSQLite(ConversationContract):
    @pytest.fixture
    async def repo(self, tmp_path: Path) -> AsyncIterator[ConversationRepository]:
        store = open_store(f"sqlite:///{tmp_path}/chat.db")
        repo = ConversationRepository(store)
        await repo.init()
        await repo.init()  # idempotent
        yield repo
        await store.close()


class TestConversationsOnMongoDB(ConversationContract):
    @pytest.fixture
    async def repo(self, mongo_url: str) -> AsyncIterator[ConversationRepository]:
        store = open_store(mongo_url.rsplit("/", 1)[0] + f"/c{uuid.uuid4().hex[:12]}")
        repo = ConversationRepository(store)
        await repo.init()
        await repo.init()
        yield repo
        await store.close()
