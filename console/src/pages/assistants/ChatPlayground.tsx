/**
 * Chat with one assistant: the reply streams token by token (server-sent events over fetch,
 * resumed with Last-Event-ID after a dropped connection), Stop cancels the run and keeps the
 * partial reply marked cancelled, task results and citations show under the reply, usage and
 * cost once it is finished; the assistant's conversations can be reopened (a running reply is
 * followed again).
 */
import {
  Alert,
  Anchor,
  Badge,
  Button,
  Code,
  Grid,
  Group,
  Loader,
  NavLink,
  Paper,
  ScrollArea,
  Stack,
  Text,
  Textarea,
  Title,
} from "@mantine/core";
import { useCallback, useEffect, useRef, useState, type KeyboardEvent } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { api, unwrap } from "../../api/client";
import { streamEvents } from "../../api/sse";
import { EmptyState, ErrorAlert, PageHeader, Pager, statusColor } from "../../components/common";
import { usePage } from "../../components/usePage";
import { applyEvent, emptyReply, formatCost, fromStored, TERMINAL, type ChatTurn } from "./chat";
import type { Assistant } from "./types";

const CONVERSATIONS = 20;
const FINAL = new Set(["completed", "cancelled", "failed", "interrupted"]);

interface Live {
  conversationId: string | null;
  runId: string | null;
  stopRequested: boolean;
  controller: AbortController;
}

let localKeys = 0;
const localKey = (kind: string) => `local-${kind}-${++localKeys}`;

export function ChatPlayground() {
  const { id = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const conversationId = params.get("c");
  const [assistant, setAssistant] = useState<Assistant | null>(null);
  const [assistantError, setAssistantError] = useState<unknown>(null);
  const [turns, setTurns] = useState<ChatTurn[]>([]);
  const [loadingMessages, setLoadingMessages] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [draft, setDraft] = useState("");
  const [running, setRunning] = useState(false);
  const [stopping, setStopping] = useState(false);
  const live = useRef<Live | null>(null);
  /** The conversation this page started itself: its messages are on screen already. */
  const started = useRef<string | null>(null);
  const viewport = useRef<HTMLDivElement>(null);

  const conversations = usePage(
    (offset) =>
      unwrap(
        api.GET("/v1/conversations", {
          params: { query: { assistant_id: id, limit: CONVERSATIONS, offset } },
        }),
      ),
    [id],
  );
  const reloadConversations = conversations.reload;

  useEffect(() => {
    unwrap(api.GET("/v1/assistants/{assistant_id}", { params: { path: { assistant_id: id } } }))
      .then(setAssistant)
      .catch(setAssistantError);
  }, [id]);

  useEffect(() => {
    viewport.current?.scrollTo({ top: viewport.current.scrollHeight });
  }, [turns]);

  const updateTurn = useCallback((key: string, change: (turn: ChatTurn) => ChatTurn) => {
    setTurns((all) => all.map((t) => (t.key === key ? change(t) : t)));
  }, []);

  /** Follow a run's events into the reply `key` until its last event. */
  const follow = useCallback(
    async (
      key: string,
      url: string,
      init: { method: "GET" | "POST"; body?: unknown },
      state: Live,
    ) => {
      live.current = state;
      setRunning(true);
      setError(null);
      let ended = false;
      try {
        await streamEvents(url, {
          ...init,
          signal: state.controller.signal,
          terminal: TERMINAL,
          resume: () =>
            `/v1/conversations/${encodeURIComponent(state.conversationId ?? "")}/runs/${encodeURIComponent(state.runId ?? "")}/stream`,
          onEvent(event) {
            if (!event.event) return;
            let data: Record<string, unknown> = {};
            try {
              data = JSON.parse(event.data) as Record<string, unknown>;
            } catch {
              return;
            }
            if (event.event === "run.created") {
              state.runId = String(data.run_id);
              const conversation = String(data.conversation_id);
              if (!state.conversationId) {
                state.conversationId = conversation;
                started.current = conversation;
                setParams({ c: conversation }, { replace: true });
                reloadConversations();
              }
              if (state.stopRequested) void cancelRun(state);
            }
            if (TERMINAL.has(event.event)) ended = true;
            updateTurn(key, (turn) => applyEvent(turn, event.event!, data));
          },
        });
        if (!ended && !state.controller.signal.aborted && state.conversationId) {
          // the stream closed before the run's last event: show what the conversation holds
          const page = await unwrap(
            api.GET("/v1/conversations/{conversation_id}/messages", {
              params: { path: { conversation_id: state.conversationId }, query: { limit: 100 } },
            }),
          );
          setTurns(page.items.map(fromStored));
        }
      } catch (err) {
        setError(err);
        updateTurn(key, (turn) => ({ ...turn, status: FINAL.has(turn.status) ? turn.status : "failed", error: err }));
      } finally {
        if (live.current === state) live.current = null;
        setRunning(false);
        setStopping(false);
        reloadConversations();
      }
    },
    [reloadConversations, setParams, updateTurn],
  );

  const followRef = useRef(follow);
  followRef.current = follow;

  // open a conversation: its messages, and a reply still being written is followed again
  useEffect(() => {
    if (!conversationId) {
      setTurns([]);
      return;
    }
    if (started.current === conversationId) return;
    const controller = new AbortController();
    setLoadingMessages(true);
    unwrap(
      api.GET("/v1/conversations/{conversation_id}/messages", {
        params: { path: { conversation_id: conversationId }, query: { limit: 100 } },
        signal: controller.signal,
      }),
    )
      .then((page) => {
        const loaded = page.items.map(fromStored);
        setTurns(loaded);
        setError(null);
        const last = loaded[loaded.length - 1];
        if (last && last.role === "assistant" && last.runId && !FINAL.has(last.status)) {
          setTurns(loaded.map((t) => (t === last ? { ...t, content: "" } : t))); // replayed from the start
          void followRef.current(
            last.key,
            `/v1/conversations/${encodeURIComponent(conversationId)}/runs/${encodeURIComponent(last.runId)}/stream`,
            { method: "GET" },
            { conversationId, runId: last.runId, stopRequested: false, controller },
          );
        }
      })
      .catch((err) => {
        if (!controller.signal.aborted) setError(err);
      })
      .finally(() => setLoadingMessages(false));
    return () => controller.abort();
  }, [conversationId]);

  // leaving the page stops listening (the reply goes on being written: onDisconnect)
  useEffect(() => () => live.current?.controller.abort(), []);

  function send() {
    const message = draft.trim();
    if (!message || running) return;
    setDraft("");
    started.current = conversationId;
    const replyKey = localKey("reply");
    setTurns((all) => [
      ...all,
      { ...emptyReply(localKey("user")), role: "user", content: message, status: "completed" },
      emptyReply(replyKey),
    ]);
    const url = conversationId
      ? `/v1/conversations/${encodeURIComponent(conversationId)}/messages`
      : `/v1/assistants/${encodeURIComponent(id)}/chat`;
    void follow(
      replyKey,
      url,
      { method: "POST", body: { message, stream: true } },
      { conversationId, runId: null, stopRequested: false, controller: new AbortController() },
    );
  }

  async function cancelRun(state: Live) {
    if (!state.runId || !state.conversationId) {
      state.stopRequested = true; // cancelled as soon as the run is known
      return;
    }
    try {
      await unwrap(
        api.POST("/v1/conversations/{conversation_id}/runs/{run_id}/cancel", {
          params: { path: { conversation_id: state.conversationId, run_id: state.runId } },
        }),
      );
    } catch (err) {
      setError(err);
      setStopping(false);
    }
  }

  function stop() {
    if (!live.current) return;
    setStopping(true);
    void cancelRun(live.current);
  }

  function newConversation() {
    live.current?.controller.abort();
    started.current = null;
    setParams({});
    setTurns([]);
    setError(null);
  }

  function onKeyDown(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      send();
    }
  }

  if (assistantError) return <ErrorAlert error={assistantError} title="The assistant could not be loaded" />;
  if (!assistant) return <Loader aria-label="loading" />;
  const model = assistant.defaultModel
    ? `${assistant.defaultModel.provider}:${assistant.defaultModel.modelName}`
    : "default model";
  return (
    <>
      <PageHeader
        title={assistant.name}
        description={`Chat playground · ${model} · version ${assistant.version}`}
        actions={
          <>
            <Badge variant="dot" color={statusColor(assistant.status)}>{assistant.status}</Badge>
            <Button variant="default" component={Link} to={`/assistants/${assistant.id}/edit`}>
              Edit
            </Button>
            <Button variant="subtle" component={Link} to="/assistants">
              All assistants
            </Button>
          </>
        }
      />
      <Grid>
        <Grid.Col span={{ base: 12, md: 3 }}>
          <Stack gap="xs" component="section" aria-label="conversations">
            <Group justify="space-between">
              <Title order={5}>Conversations</Title>
              <Button size="xs" variant="light" onClick={newConversation} disabled={running}>
                New
              </Button>
            </Group>
            <ErrorAlert error={conversations.error} title="Conversations could not be loaded" />
            {conversations.page?.items.length === 0 && (
              <Text size="sm" c="dimmed">
                None yet: send a message.
              </Text>
            )}
            {conversations.page?.items.map((c) => (
              <NavLink
                key={c.id}
                active={c.id === conversationId}
                disabled={running && c.id !== conversationId}
                label={
                  <>
                    <Text size="sm" inherit truncate>
                      {c.title || c.id}
                    </Text>
                    <Text size="xs" c="dimmed">
                      {c.message_count ?? 0} messages · {new Date(c.updated_at).toLocaleString()}
                    </Text>
                  </>
                }
                onClick={() => {
                  started.current = null;
                  setParams({ c: c.id });
                }}
              />
            ))}
            {conversations.page && (
              <Pager
                total={conversations.page.total}
                limit={CONVERSATIONS}
                offset={conversations.offset}
                onOffset={conversations.setOffset}
              />
            )}
          </Stack>
        </Grid.Col>
        <Grid.Col span={{ base: 12, md: 9 }}>
          <Stack component="section" aria-label="chat">
            {assistant.status !== "ACTIVE" && (
              <Alert color="orange">
                This assistant is {assistant.status}: only an ACTIVE assistant chats.{" "}
                <Anchor component={Link} to={`/assistants/${assistant.id}/edit`}>
                  Edit it
                </Anchor>
              </Alert>
            )}
            {conversationId && (
              <Text size="xs" c="dimmed">
                Conversation <Code>{conversationId}</Code>
              </Text>
            )}
            <ScrollArea.Autosize mah="62vh" viewportRef={viewport} type="auto">
              <Stack gap="sm" pr="sm">
                {loadingMessages && <Loader size="sm" aria-label="loading messages" />}
                {!loadingMessages && turns.length === 0 && (
                  <EmptyState title="Say something" hint="The reply streams here as it is written, with its sources, task results, usage and cost." />
                )}
                {turns.map((turn) => (turn.role === "user" ? <UserTurn key={turn.key} turn={turn} /> : <Reply key={turn.key} turn={turn} />))}
              </Stack>
            </ScrollArea.Autosize>
            <ErrorAlert error={error} />
            <Group align="flex-end" wrap="nowrap">
              <Textarea
                label="Message"
                placeholder="Ask something (Enter sends, Shift+Enter for a new line)"
                autosize
                minRows={2}
                maxRows={8}
                style={{ flex: 1 }}
                value={draft}
                onChange={(e) => setDraft(e.currentTarget.value)}
                onKeyDown={onKeyDown}
              />
              {running ? (
                <Button color="red" onClick={stop} loading={stopping}>
                  Stop
                </Button>
              ) : (
                <Button onClick={send} disabled={!draft.trim()}>
                  Send
                </Button>
              )}
            </Group>
          </Stack>
        </Grid.Col>
      </Grid>
    </>
  );
}

function UserTurn({ turn }: { turn: ChatTurn }) {
  return (
    <Paper p="sm" radius="md" bg="var(--mantine-color-blue-light)" ml="15%" data-testid="user-message">
      <Text size="sm" style={{ whiteSpace: "pre-wrap" }}>
        {turn.content}
      </Text>
    </Paper>
  );
}

function Reply({ turn }: { turn: ChatTurn }) {
  const finished = FINAL.has(turn.status);
  const usage = turn.usage;
  const errorText =
    turn.error instanceof Error
      ? turn.error.message
      : turn.error && typeof turn.error === "object"
        ? String((turn.error as { message?: unknown }).message ?? JSON.stringify(turn.error))
        : null;
  return (
    <Paper withBorder p="sm" radius="md" mr="10%" data-testid="assistant-message" data-status={turn.status}>
      <Group gap="xs" mb={4}>
        <Text size="xs" fw={600}>
          Assistant
        </Text>
        <Badge size="xs" variant="dot" color={statusColor(turn.status)} data-testid="reply-status">
          {turn.status}
        </Badge>
        {turn.status === "queued" && (
          <Text size="xs" c="dimmed">
            {turn.ahead ?? 0} ahead
          </Text>
        )}
        {!finished && <Loader size="xs" type="dots" aria-label="writing" />}
      </Group>
      <Text size="sm" style={{ whiteSpace: "pre-wrap" }} data-testid="reply-text">
        {turn.content}
      </Text>
      {turn.status === "cancelled" && (
        <Text size="xs" c="dimmed" fw={500} mt={4}>
          Cancelled: the reply stopped here and the text written so far is kept.
        </Text>
      )}
      {turn.status === "interrupted" && (
        <Text size="xs" c="var(--mantine-color-error)" mt={4}>
          Interrupted: the process writing this reply stopped; the text saved so far is kept.
        </Text>
      )}
      {errorText && (
        <Text size="xs" c="var(--mantine-color-error)" mt={4}>
          {errorText}
        </Text>
      )}
      {turn.tasks.length > 0 && (
        <Stack gap={4} mt="sm" data-testid="task-results">
          <Text size="xs" fw={600}>
            Task results
          </Text>
          {turn.tasks.map((task, i) => (
            <Paper key={task.task_execution_id ?? task.task_id ?? i} withBorder p={6}>
              <Group gap="xs">
                <Text size="xs" fw={600}>
                  {task.name ?? task.task_id}
                </Text>
                <Badge size="xs" variant="dot" color={statusColor(task.status === "completed" ? "COMPLETED" : task.status)}>
                  {task.status}
                </Badge>
              </Group>
              {task.answer !== undefined && task.answer !== null && (
                <Text size="xs" style={{ whiteSpace: "pre-wrap" }} lineClamp={6}>
                  {typeof task.answer === "string" ? task.answer : JSON.stringify(task.answer)}
                </Text>
              )}
              {task.error !== undefined && task.error !== null && (
                <Text size="xs" c="var(--mantine-color-error)">
                  {typeof task.error === "string" ? task.error : JSON.stringify(task.error)}
                </Text>
              )}
            </Paper>
          ))}
        </Stack>
      )}
      {(turn.citations.length > 0 || turn.retrievalErrors.length > 0) && (
        <Stack gap={4} mt="sm" data-testid="citations">
          <Text size="xs" fw={600}>
            Sources
          </Text>
          {turn.citations.map((c, i) => (
            <Paper key={`${c.document_id}-${i}`} withBorder p={6}>
              <Group gap="xs">
                <Badge size="xs" variant="default">
                  [{c.n ?? c.rank ?? i + 1}]
                </Badge>
                <Text size="xs" fw={600}>
                  {c.title || c.file_name || c.document_id}
                </Text>
                {c.file_name && c.title && (
                  <Text size="xs" c="dimmed">
                    {c.file_name}
                  </Text>
                )}
                {typeof c.score === "number" && (
                  <Text size="xs" c="dimmed">
                    score {c.score.toFixed(3)}
                  </Text>
                )}
                {c.collection && (
                  <Text size="xs" c="dimmed">
                    in {c.collection}
                  </Text>
                )}
              </Group>
              {c.text && (
                <Text size="xs" c="dimmed" lineClamp={3}>
                  {c.text}
                </Text>
              )}
            </Paper>
          ))}
          {turn.retrievalErrors.map((e, i) => (
            <Text key={i} size="xs" c="var(--mantine-color-error)">
              {typeof e === "string" ? e : JSON.stringify(e)}
            </Text>
          ))}
        </Stack>
      )}
      {finished && (usage || turn.cost) && (
        <Group gap="md" mt="sm" data-testid="reply-usage">
          {usage && (
            <Text size="xs" c="dimmed">
              {usage.input_tokens ?? 0} in · {usage.output_tokens ?? 0} out
              {usage.cache_read_tokens ? ` · ${usage.cache_read_tokens} cached` : ""}
              {usage.reasoning_tokens ? ` · ${usage.reasoning_tokens} reasoning` : ""} tokens
            </Text>
          )}
          <Text size="xs" c="dimmed" data-testid="reply-cost">
            cost {formatCost(turn.cost, turn.currency)}
          </Text>
          {turn.model && (
            <Text size="xs" c="dimmed" ff="monospace">
              {turn.model}
            </Text>
          )}
        </Group>
      )}
    </Paper>
  );
}
