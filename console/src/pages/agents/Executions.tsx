/** Task executions: a page of them with their status, and one in a drawer (input, result, error). */
import { Badge, Button, Drawer, Group, Loader, Select, Stack, Table, Text } from "@mantine/core";
import { useEffect, useState } from "react";
import { api, unwrap } from "../../api/client";
import type { components } from "../../api/schema";
import { EmptyState, ErrorAlert, Pager, RefreshButton, statusColor } from "../../components/common";
import { usePage } from "../../components/usePage";
import { JsonBlock, PAGE_SIZE, when } from "./ui";

type TaskExecution = components["schemas"]["TaskExecution"];
type Status = components["schemas"]["TaskStatus"];
const STATUSES: Status[] = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"];

/** The executions of one agent (`agentId`) or of the whole team, newest first. */
export function ExecutionList(props: { agentId?: string; refreshKey?: number; taskNames?: Record<string, string> }) {
  const [status, setStatus] = useState<Status | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const { page, error, loading, offset, setOffset, reload } = usePage<TaskExecution>(
    (offset) =>
      props.agentId && !status
        ? unwrap(api.GET("/v1/agents/{agent_id}/executions", { params: { path: { agent_id: props.agentId }, query: { limit: PAGE_SIZE, offset } } }))
        : unwrap(
            api.GET("/v1/task-executions", {
              params: { query: { agent_id: props.agentId, status: status ?? undefined, limit: PAGE_SIZE, offset } },
            }),
          ),
    [props.agentId, status, props.refreshKey],
  );
  // while an execution is still going, look again shortly
  const going = (page?.items ?? []).some((tx) => tx.status === "PENDING" || tx.status === "RUNNING");
  useEffect(() => {
    if (!going || loading) return;
    const timer = window.setTimeout(reload, 1500);
    return () => window.clearTimeout(timer);
  }, [going, loading, reload]);
  return (
    <Stack gap="sm">
      <Group justify="space-between">
        <Select
          aria-label="status"
          placeholder="Any status"
          clearable
          w={200}
          data={STATUSES}
          value={status}
          onChange={(v) => {
            setOffset(0);
            setStatus(v as Status | null);
          }}
        />
        <RefreshButton onClick={reload} loading={loading} />
      </Group>
      <ErrorAlert error={error} />
      {page && page.items.length === 0 && (
        <EmptyState
          title={status ? `No ${status.toLowerCase()} executions` : "No task executions yet"}
          hint={
            props.agentId
              ? "Run a task with “Run now” in the Tasks tab, or give it a schedule or an event trigger: each run shows here."
              : "Executions appear when an agent's task runs: open an agent and use “Run now”, or add a schedule."
          }
        />
      )}
      {page && page.items.length > 0 && (
        <Table highlightOnHover aria-label="task executions">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Execution</Table.Th>
              <Table.Th>Task</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th>Trigger</Table.Th>
              <Table.Th>Attempts</Table.Th>
              <Table.Th>Created</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {page.items.map((tx) => (
              <Table.Tr key={tx.id} style={{ cursor: "pointer" }} onClick={() => setOpen(tx.id)}>
                <Table.Td>
                  <Button variant="subtle" size="compact-sm" onClick={() => setOpen(tx.id)}>
                    {tx.id}
                  </Button>
                </Table.Td>
                <Table.Td>{tx.task_id ? (props.taskNames?.[tx.task_id] ?? tx.task_id) : <Text c="dimmed" size="sm">ad hoc</Text>}</Table.Td>
                <Table.Td>
                  <Badge variant="dot" color={statusColor(tx.status)}>{tx.status}</Badge>
                </Table.Td>
                <Table.Td>{String((tx.trigger as { type?: string } | undefined)?.type ?? "—")}</Table.Td>
                <Table.Td>{tx.attempts}</Table.Td>
                <Table.Td>{when(tx.created_at)}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {page && <Pager total={page.total} limit={page.limit} offset={offset} onOffset={setOffset} />}
      <ExecutionDrawer id={open} onClose={() => setOpen(null)} onChanged={reload} />
    </Stack>
  );
}

export function ExecutionDrawer(props: { id: string | null; onClose: () => void; onChanged: () => void }) {
  const [tx, setTx] = useState<TaskExecution | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [cancelling, setCancelling] = useState(false);
  useEffect(() => {
    setTx(null);
    setError(null);
    if (!props.id) return;
    unwrap(api.GET("/v1/task-executions/{tx_id}", { params: { path: { tx_id: props.id } } }))
      .then(setTx)
      .catch(setError);
  }, [props.id]);
  const cancel = async () => {
    if (!tx) return;
    setCancelling(true);
    try {
      setTx(await unwrap(api.POST("/v1/task-executions/{tx_id}/cancel", { params: { path: { tx_id: tx.id } } })));
      props.onChanged();
    } catch (e) {
      setError(e);
    } finally {
      setCancelling(false);
    }
  };
  return (
    <Drawer opened={props.id !== null} onClose={props.onClose} position="right" size="lg" title={`Task execution ${props.id ?? ""}`}>
      <ErrorAlert error={error} />
      {!tx && !error && <Loader size="sm" />}
      {tx && (
        <Stack gap="sm" data-testid="execution-detail">
          <Group>
            <Badge variant="dot" color={statusColor(tx.status)} size="lg">
              {tx.status}
            </Badge>
            {(tx.status === "PENDING" || tx.status === "RUNNING") && (
              <Button color="red" variant="light" size="xs" onClick={cancel} loading={cancelling} disabled={tx.cancel_requested}>
                {tx.cancel_requested ? "Cancel requested" : "Cancel"}
              </Button>
            )}
          </Group>
          <Table variant="vertical" withTableBorder>
            <Table.Tbody>
              <Table.Tr><Table.Th w={140}>Task</Table.Th><Table.Td>{tx.task_id ?? "ad hoc"} {tx.task_version != null && `(v${tx.task_version})`}</Table.Td></Table.Tr>
              <Table.Tr><Table.Th>Type</Table.Th><Table.Td>{tx.type}</Table.Td></Table.Tr>
              <Table.Tr><Table.Th>Attempts</Table.Th><Table.Td>{tx.attempts}</Table.Td></Table.Tr>
              <Table.Tr><Table.Th>Created</Table.Th><Table.Td>{when(tx.created_at)}</Table.Td></Table.Tr>
              <Table.Tr><Table.Th>Started</Table.Th><Table.Td>{when(tx.started_at)}</Table.Td></Table.Tr>
              <Table.Tr><Table.Th>Finished</Table.Th><Table.Td>{when(tx.finished_at)}</Table.Td></Table.Tr>
              <Table.Tr><Table.Th>Workflow runs</Table.Th><Table.Td>{(tx.execution_ids ?? []).join(", ") || "—"}</Table.Td></Table.Tr>
            </Table.Tbody>
          </Table>
          <Text fw={600} size="sm">Trigger</Text>
          <JsonBlock value={tx.trigger ?? {}} label="trigger" />
          <Text fw={600} size="sm">Input</Text>
          <JsonBlock value={tx.input ?? {}} label="input" />
          {tx.error != null && (
            <>
              <Text fw={600} size="sm" c="red">Error</Text>
              <JsonBlock value={tx.error} label="error" />
            </>
          )}
          <Text fw={600} size="sm">Result</Text>
          <JsonBlock value={tx.result ?? null} label="result" />
        </Stack>
      )}
    </Drawer>
  );
}
