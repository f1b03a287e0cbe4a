/**
 * The executions area: runs of workflows (filtered by status or workflow, a page at a time), and
 * an execution's page — its status and timing, a Gantt timeline of its steps that follows the run
 * while it is in progress (followed over SSE until it ends), a drawer with a step's
 * inputs, output, attempts and error, and Cancel / Resume when they apply.
 */
import {
  Alert,
  Anchor,
  Badge,
  Button,
  Code,
  CloseButton,
  Drawer,
  Group,
  Select,
  SimpleGrid,
  Stack,
  Table,
  Text,
  Title,
} from "@mantine/core";
import { useEffect, useState } from "react";
import { Link, Route, Routes, useParams, useSearchParams } from "react-router-dom";
import { api, ApiError, unwrap } from "../../api/client";
import { streamEvents } from "../../api/sse";
import { EmptyState, ErrorAlert, PageHeader, Pager, RefreshButton, statusColor } from "../../components/common";
import { usePage } from "../../components/usePage";
import { formatMs, stepColor, Timeline } from "./Timeline";
import { isTerminal, STATUSES, type Execution, type ExecutionStatus, type StepRecord } from "./types";

const LIMIT = 20;
const CLOCK_MS = 500;

const pretty = (value: unknown) => JSON.stringify(value, null, 2);

function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : "—";
}

export default function Area() {
  return (
    <Routes>
      <Route index element={<ExecutionList />} />
      <Route path=":id" element={<ExecutionDetail />} />
    </Routes>
  );
}

function ExecutionList() {
  const [search, setSearch] = useSearchParams();
  const status = (search.get("status") as ExecutionStatus | null) ?? null;
  const workflowId = search.get("workflow");
  const { page, error, loading, setOffset, reload } = usePage(
    (offset) =>
      unwrap(
        api.GET("/v1/executions", {
          params: { query: { limit: LIMIT, offset, status, workflow_id: workflowId } },
        }),
      ),
    [status, workflowId],
  );
  const setFilter = (key: string, value: string | null) => {
    const next = new URLSearchParams(search);
    if (value) next.set(key, value);
    else next.delete(key);
    setSearch(next);
    setOffset(0);
  };
  return (
    <>
      <PageHeader
        title="Executions"
        description="Every run of a workflow, newest first."
        actions={<RefreshButton onClick={reload} loading={loading} />}
      />
      <Group mb="md" align="flex-end">
        <Select
          label="Status"
          placeholder="All statuses"
          data={STATUSES}
          value={status}
          onChange={(value) => setFilter("status", value)}
          clearable
          w={200}
        />
        {workflowId && (
          <Badge
            size="lg"
            variant="dot"
            rightSection={
              <CloseButton size="xs" aria-label="clear workflow filter" onClick={() => setFilter("workflow", null)} />
            }
          >
            workflow {workflowId}
          </Badge>
        )}
      </Group>
      <ErrorAlert error={error} title="Could not list the executions" />
      {page && page.items.length === 0 && (
        <EmptyState
          title={status || workflowId ? "No execution matches" : "No executions yet"}
          hint={
            status || workflowId
              ? "Clear the filters to see every run."
              : "An execution is one run of a workflow: open a workflow and press Run."
          }
          action={
            <Button variant="dot" component={Link} to="/workflows">
              Go to workflows
            </Button>
          }
        />
      )}
      {page && page.items.length > 0 && (
        <Table striped highlightOnHover aria-label="executions">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Execution</Table.Th>
              <Table.Th>Workflow</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th>Started</Table.Th>
              <Table.Th>Duration</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {page.items.map((ex) => (
              <Table.Tr key={ex.id}>
                <Table.Td>
                  <Anchor component={Link} to={ex.id} ff="monospace" size="sm">
                    {ex.id}
                  </Anchor>
                </Table.Td>
                <Table.Td>
                  {ex.workflow_id ? (
                    <Anchor component={Link} to={`/workflows/${ex.workflow_id}`} size="sm">
                      {ex.workflow_name ?? ex.workflow_id}
                    </Anchor>
                  ) : (
                    (ex.workflow_name ?? "—")
                  )}
                  {ex.workflow_version != null && (
                    <Text span size="xs" c="dimmed">
                      {" "}
                      v{ex.workflow_version}
                    </Text>
                  )}
                </Table.Td>
                <Table.Td>
                  <Badge color={statusColor(ex.status)} variant="dot">
                    {ex.status}
                  </Badge>
                </Table.Td>
                <Table.Td>{when(ex.started_at ?? ex.created_at)}</Table.Td>
                <Table.Td>{formatMs(ex.duration_ms == null ? null : Number(ex.duration_ms))}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {page && <Pager total={page.total} limit={page.limit} offset={page.offset} onOffset={setOffset} />}
    </>
  );
}

/**
 * The execution, followed live over SSE (`GET /v1/executions/{id}/stream`: the record each time
 * it changes) until it is over; a dropped connection is retried with `Last-Event-ID` and said so
 * (`reconnecting` counts the attempts). `restart` follows it again (after a resume).
 */
function useLiveExecution(id: string) {
  const [execution, setExecution] = useState<Execution | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [now, setNow] = useState(() => Date.now());
  const [generation, setGeneration] = useState(0);
  const [reconnecting, setReconnecting] = useState(0);
  useEffect(() => {
    const abort = new AbortController();
    const url = `${window.location.origin}/v1/executions/${encodeURIComponent(id)}/stream`;
    let done = false;
    let lastId = "";
    const follow = async () => {
      for (let attempt = 0; !done && !abort.signal.aborted; attempt++) {
        try {
          await streamEvents(url, {
            signal: abort.signal,
            lastEventId: lastId,
            onEvent: (event) => {
              if (event.event === "execution") {
                const got = JSON.parse(event.data) as Execution;
                lastId = event.id ?? lastId;
                done = isTerminal(got);
                attempt = 0;
                setExecution(got);
                setError(null);
                setReconnecting(0);
                setNow(Date.now());
              } else if (event.event === "error") {
                const body = JSON.parse(event.data) as { error?: { message?: string } };
                setError(new Error(body.error?.message ?? "the stream failed"));
              }
            },
          });
        } catch (e) {
          // an unknown execution stays unknown: no retry
          if (e instanceof ApiError && e.status >= 400 && e.status < 500) {
            setError(e);
            return;
          }
        }
        if (done || abort.signal.aborted) return;
        setReconnecting(attempt + 1); // the stream ended before the run did: say so, go again
        await new Promise((resolve) => setTimeout(resolve, Math.min(250 * 2 ** attempt, 4000)));
      }
    };
    void follow();
    const clock = setInterval(() => !done && setNow(Date.now()), CLOCK_MS); // running bars grow
    return () => {
      abort.abort();
      clearInterval(clock);
    };
  }, [id, generation]);
  return {
    execution,
    setExecution,
    error,
    now,
    reconnecting,
    restart: () => setGeneration((g) => g + 1),
  };
}

function ExecutionDetail() {
  const { id = "" } = useParams();
  const { execution, setExecution, error, now, reconnecting, restart } = useLiveExecution(id);
  const [openStep, setOpenStep] = useState<number | null>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [busy, setBusy] = useState<"cancel" | "resume" | null>(null);

  const act = async (kind: "cancel" | "resume") => {
    setBusy(kind);
    setActionError(null);
    try {
      if (kind === "cancel") {
        const got = await unwrap(
          api.POST("/v1/executions/{execution_id}/cancel", { params: { path: { execution_id: id } } }),
        );
        setExecution(got);
      } else {
        await unwrap(api.POST("/v1/executions/{execution_id}/resume", { params: { path: { execution_id: id } } }));
      }
      restart();
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(null);
    }
  };

  if (!execution) {
    return (
      <>
        <PageHeader title="Execution" description={id} />
        {error ? <ErrorAlert error={error} title="Could not load the execution" /> : <Text c="dimmed">Loading…</Text>}
      </>
    );
  }
  const steps = (execution.steps ?? []) as StepRecord[];
  const live = !isTerminal(execution);
  const canCancel = execution.status === "PENDING" || execution.status === "RUNNING";
  const canResume = ["FAILED", "TIMEOUT", "CANCELLED"].includes(execution.status);
  const selected = steps.find((s) => s.step === openStep) ?? null;
  const duration =
    execution.duration_ms != null
      ? Number(execution.duration_ms)
      : execution.started_at
        ? now - Date.parse(execution.started_at)
        : null;
  return (
    <>
      <PageHeader
        title={`Execution of ${execution.workflow_name ?? "a workflow"}`}
        description={execution.id}
        actions={
          <>
            {canCancel && (
              <Button color="red" variant="outline" onClick={() => act("cancel")} loading={busy === "cancel"}>
                Cancel execution
              </Button>
            )}
            {canResume && (
              <Button onClick={() => act("resume")} loading={busy === "resume"}>
                Resume execution
              </Button>
            )}
          </>
        }
      />
      <ErrorAlert error={actionError} />
      {reconnecting > 0 && (
        <Alert color="yellow" role="status" mb="md">
          The connection to the run was lost — reconnecting (attempt {reconnecting})…
        </Alert>
      )}
      {error != null && <ErrorAlert error={error} title="Lost touch with the execution" />}
      <SimpleGrid cols={{ base: 2, sm: 5 }} mb="md">
        <Stack gap={2}>
          <Text size="xs" c="dimmed">
            Status
          </Text>
          <Group gap={6}>
            <Badge
              color={statusColor(execution.status)}
              variant="dot"
              size="lg"
              data-testid="execution-status"
              aria-label="execution status"
            >
              {execution.status}
            </Badge>
            {live && (
              <Text size="xs" c="dimmed">
                live
              </Text>
            )}
          </Group>
        </Stack>
        <Stack gap={2}>
          <Text size="xs" c="dimmed">
            Workflow
          </Text>
          {execution.workflow_id ? (
            <Anchor component={Link} to={`/workflows/${execution.workflow_id}`} size="sm">
              {execution.workflow_name ?? execution.workflow_id}
              {execution.workflow_version != null && ` v${execution.workflow_version}`}
            </Anchor>
          ) : (
            <Text size="sm">{execution.workflow_name ?? "—"}</Text>
          )}
        </Stack>
        <Stack gap={2}>
          <Text size="xs" c="dimmed">
            Started
          </Text>
          <Text size="sm">{when(execution.started_at ?? execution.created_at)}</Text>
        </Stack>
        <Stack gap={2}>
          <Text size="xs" c="dimmed">
            Finished
          </Text>
          <Text size="sm">{when(execution.finished_at)}</Text>
        </Stack>
        <Stack gap={2}>
          <Text size="xs" c="dimmed">
            Duration
          </Text>
          <Text size="sm" data-testid="execution-duration">
            {formatMs(duration)}
          </Text>
        </Stack>
      </SimpleGrid>
      {execution.error != null && (
        <ErrorAlert
          error={new Error(typeof execution.error === "object" ? pretty(execution.error) : String(execution.error))}
          title="The execution failed"
        />
      )}
      {(execution.pending_async_steps ?? []).length > 0 && (
        <Text size="sm" c="dimmed" mb="xs">
          Waiting for async steps: {(execution.pending_async_steps ?? []).join(", ")}
        </Text>
      )}
      <Title order={3} mb="xs">
        Steps
      </Title>
      <Timeline
        steps={steps}
        startedAt={execution.started_at}
        finishedAt={execution.finished_at}
        now={now}
        onOpen={(s) => setOpenStep(s.step)}
      />
      {execution.status === "COMPLETED" && execution.result !== undefined && (
        <>
          <Title order={3} mt="md" mb="xs">
            Result
          </Title>
          <Code block aria-label="execution result">
            {pretty(execution.result)}
          </Code>
        </>
      )}
      <StepDrawer executionId={id} step={selected} onClose={() => setOpenStep(null)} />
    </>
  );
}

function Section(props: { title: string; value: unknown }) {
  if (props.value === undefined || props.value === null) return null;
  return (
    <Stack gap={4}>
      <Title order={5}>{props.title}</Title>
      <Code block aria-label={`step ${props.title.toLowerCase()}`}>
        {pretty(props.value)}
      </Code>
    </Stack>
  );
}

/** A step's latest run (live), and every earlier run when it ran more than once. */
function StepDrawer(props: { executionId: string; step: StepRecord | null; onClose: () => void }) {
  const s = props.step;
  const [history, setHistory] = useState<StepRecord[] | null>(null);
  const runs = s?.runs ?? 0;
  const stepNo = s?.step;
  useEffect(() => {
    setHistory(null);
    if (stepNo === undefined || runs <= 1) return;
    let stopped = false;
    unwrap(
      api.GET("/v1/executions/{execution_id}", {
        params: { path: { execution_id: props.executionId }, query: { history: true } },
      }),
    )
      .then((e) => !stopped && setHistory(((e.steps ?? []) as StepRecord[]).filter((r) => r.step === stepNo)))
      .catch(() => undefined);
    return () => {
      stopped = true;
    };
  }, [props.executionId, stepNo, runs]);
  return (
    <Drawer
      opened={s !== null}
      onClose={props.onClose}
      position="right"
      size="lg"
      closeButtonProps={{ "aria-label": "Close step" }}
      title={s ? `Step ${s.step}` : "Step"}
    >
      {s && (
        <Stack>
          <Group gap="xs">
            <Badge color={stepColor(s.status)} variant="dot" data-testid="step-status">
              {s.status}
            </Badge>
            {s.cache_hit && <Badge color="teal" variant="dot">cache hit</Badge>}
            {s.skip_reason && <Badge color="gray" variant="dot">skipped: {s.skip_reason}</Badge>}
          </Group>
          <Table variant="vertical" withTableBorder aria-label="step facts">
            <Table.Tbody>
              <Table.Tr>
                <Table.Th w={140}>Target</Table.Th>
                <Table.Td>
                  {s.target ?? "—"}
                  {s.action ? ` · ${s.action}` : ""}
                </Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th>Executor</Table.Th>
                <Table.Td>{s.executor ?? "—"}</Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th>Attempts</Table.Th>
                <Table.Td data-testid="step-attempts">{s.attempts ?? "—"}</Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th>Run</Table.Th>
                <Table.Td>
                  {s.run ?? 1}
                  {runs > 1 && ` of ${runs}`}
                </Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th>Started</Table.Th>
                <Table.Td>{when(s.started_at)}</Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th>Finished</Table.Th>
                <Table.Td>{when(s.finished_at)}</Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th>Duration</Table.Th>
                <Table.Td>{formatMs(s.duration_ms == null ? null : Number(s.duration_ms))}</Table.Td>
              </Table.Tr>
            </Table.Tbody>
          </Table>
          <Section title="Error" value={s.error} />
          <Section title="Inputs" value={s.inputs} />
          <Section title="Output" value={s.output} />
          {history && history.length > 1 && (
            <Stack gap={4}>
              <Title order={5}>Every run</Title>
              <Table aria-label="step runs">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Run</Table.Th>
                    <Table.Th>Status</Table.Th>
                    <Table.Th>Attempts</Table.Th>
                    <Table.Th>Duration</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {history.map((r) => (
                    <Table.Tr key={r.id ?? r.run}>
                      <Table.Td>{r.run}</Table.Td>
                      <Table.Td>
                        <Badge size="xs" variant="dot" color={stepColor(r.status)}>
                          {r.status}
                        </Badge>
                      </Table.Td>
                      <Table.Td>{r.attempts ?? "—"}</Table.Td>
                      <Table.Td>{formatMs(r.duration_ms == null ? null : Number(r.duration_ms))}</Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Stack>
          )}
        </Stack>
      )}
    </Drawer>
  );
}
