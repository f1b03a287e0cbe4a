/** One agent: its tasks (create, enable/disable, run now, delete), their schedules and its executions. */
import { Anchor, Badge, Breadcrumbs, Button, Code, Drawer, Group, JsonInput, Modal, Stack, Switch, Table, Tabs, Text } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useEffect, useState } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { api, unwrap } from "../../api/client";
import type { components } from "../../api/schema";
import { EmptyState, ErrorAlert, PageHeader, Pager, RefreshButton } from "../../components/common";
import { usePage } from "../../components/usePage";
import { AgentForm, ConfirmDelete } from "./AgentForm";
import { CronPreview } from "./CronPreview";
import { ExecutionList } from "./Executions";
import { TaskForm } from "./TaskForm";
import { errorAt, JsonBlock, PAGE_SIZE, parseObject, when } from "./ui";

type Agent = components["schemas"]["Agent"];
type Task = components["schemas"]["Task"];

function triggerSummary(task: Task): string {
  const triggers = (task.triggers ?? []) as { type?: string; cron?: string; topic?: string }[];
  if (!triggers.length) return "manual";
  return triggers
    .map((t) => (t.type === "CRON" ? `cron ${t.cron}` : t.type === "EVENT_DRIVEN" ? `event ${t.topic}` : (t.type ?? "?").toLowerCase()))
    .join(", ");
}

export function AgentPage() {
  const { agentId = "" } = useParams();
  const navigate = useNavigate();
  const [agent, setAgent] = useState<Agent | null>(null);
  const [agentError, setAgentError] = useState<unknown>(null);
  const [tab, setTab] = useState<string | null>("tasks");
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [creating, setCreating] = useState(false);
  const [running, setRunning] = useState<Task | null>(null);
  const [viewing, setViewing] = useState<Task | null>(null);
  const [removing, setRemoving] = useState<Task | null>(null);
  const [runs, setRuns] = useState(0);
  const [actionError, setActionError] = useState<unknown>(null);

  useEffect(() => {
    unwrap(api.GET("/v1/agents/{agent_id}", { params: { path: { agent_id: agentId } } }))
      .then(setAgent)
      .catch(setAgentError);
  }, [agentId]);
  const tasks = usePage<Task>(
    (offset) => unwrap(api.GET("/v1/agents/{agent_id}/tasks", { params: { path: { agent_id: agentId }, query: { limit: PAGE_SIZE, offset } } })),
    [agentId],
  );
  const taskNames = Object.fromEntries((tasks.page?.items ?? []).map((t) => [t.id, t.name]));

  const toggle = async (task: Task, on: boolean) => {
    try {
      await unwrap(api.POST("/v1/tasks/{task_id}/{switch}", { params: { path: { task_id: task.id, switch: on ? "enable" : "disable" } } }));
      setActionError(null);
      tasks.reload();
    } catch (e) {
      setActionError(e);
    }
  };

  if (agentError) return <ErrorAlert error={agentError} title="This agent cannot be shown" />;
  return (
    <Stack gap="sm">
      <Breadcrumbs>
        <Anchor component={Link} to="/agents">
          Agents
        </Anchor>
        <Text>{agent?.name ?? agentId}</Text>
      </Breadcrumbs>
      <PageHeader
        title={agent?.name ?? "Agent"}
        description={agent ? `${agent.description || "No description."} · up to ${agent.max_concurrency} at once · ${agent.enabled ? "enabled" : "disabled"}` : undefined}
        actions={
          <>
            <Button variant="default" onClick={() => setEditing(true)} disabled={!agent}>
              Edit
            </Button>
            <Button color="red" variant="light" onClick={() => setDeleting(true)} disabled={!agent}>
              Delete
            </Button>
          </>
        }
      />
      <Tabs value={tab} onChange={setTab}>
        <Tabs.List mb="md">
          <Tabs.Tab value="tasks">Tasks</Tabs.Tab>
          <Tabs.Tab value="schedules">Schedules</Tabs.Tab>
          <Tabs.Tab value="executions">Executions</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="tasks">
          <Stack gap="sm">
            <Group justify="flex-end">
              <RefreshButton onClick={tasks.reload} loading={tasks.loading} />
              <Button onClick={() => setCreating(true)}>New task</Button>
            </Group>
            <ErrorAlert error={tasks.error ?? actionError} />
            {tasks.page && tasks.page.items.length === 0 && (
              <EmptyState
                title="This agent has no tasks"
                hint="A task is what the agent does: an expression over data, embedded workflow steps, a workflow to trigger or an API call. Create one, then run it now or give it a schedule."
                action={<Button onClick={() => setCreating(true)}>Create a task</Button>}
              />
            )}
            {tasks.page && tasks.page.items.length > 0 && (
              <Table aria-label="tasks" highlightOnHover>
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Name</Table.Th>
                    <Table.Th>Type</Table.Th>
                    <Table.Th>Version</Table.Th>
                    <Table.Th>Triggers</Table.Th>
                    <Table.Th>Enabled</Table.Th>
                    <Table.Th />
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {tasks.page.items.map((task) => (
                    <Table.Tr key={task.id}>
                      <Table.Td>
                        <Anchor component="button" onClick={() => setViewing(task)}>
                          {task.name}
                        </Anchor>
                      </Table.Td>
                      <Table.Td>
                        <Code>{task.type}</Code>
                      </Table.Td>
                      <Table.Td>v{task.version}</Table.Td>
                      <Table.Td>
                        <Text size="sm">{triggerSummary(task)}</Text>
                      </Table.Td>
                      <Table.Td>
                        <Switch aria-label={`enable ${task.name}`} checked={task.enabled} onChange={(e) => toggle(task, e.currentTarget.checked)} />
                      </Table.Td>
                      <Table.Td>
                        <Group gap="xs" justify="flex-end" wrap="nowrap">
                          <Button size="xs" variant="light" onClick={() => setRunning(task)} disabled={!task.enabled}>
                            Run now
                          </Button>
                          <Button size="xs" variant="subtle" color="red" onClick={() => setRemoving(task)}>
                            Delete
                          </Button>
                        </Group>
                      </Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            )}
            {tasks.page && <Pager total={tasks.page.total} limit={tasks.page.limit} offset={tasks.offset} onOffset={tasks.setOffset} />}
          </Stack>
        </Tabs.Panel>
        <Tabs.Panel value="schedules">
          <Schedules tasks={tasks.page?.items ?? null} onNew={() => setCreating(true)} />
          {tasks.page && <Pager total={tasks.page.total} limit={tasks.page.limit} offset={tasks.offset} onOffset={tasks.setOffset} />}
        </Tabs.Panel>
        <Tabs.Panel value="executions">{tab === "executions" && <ExecutionList agentId={agentId} refreshKey={runs} taskNames={taskNames} />}</Tabs.Panel>
      </Tabs>

      <TaskForm
        agentId={agentId}
        opened={creating}
        onClose={() => setCreating(false)}
        onCreated={(task) => {
          setCreating(false);
          notifications.show({ message: `Task ${task.name} created` });
          tasks.reload();
        }}
      />
      <RunTask
        task={running}
        onClose={() => setRunning(null)}
        onStarted={() => {
          setRunning(null);
          setRuns((n) => n + 1);
          setTab("executions");
        }}
      />
      <Drawer opened={viewing !== null} onClose={() => setViewing(null)} position="right" size="lg" title={viewing ? `Task ${viewing.name}` : ""}>
        {viewing && (
          <Stack gap="sm">
            <Text size="sm">
              <Code>{viewing.id}</Code> · {viewing.type} · v{viewing.version} · priority {viewing.priority}
            </Text>
            <Text fw={600} size="sm">Definition</Text>
            <JsonBlock value={viewing.config ?? {}} label="definition" />
            <Text fw={600} size="sm">Triggers</Text>
            <JsonBlock value={viewing.triggers ?? []} label="triggers" />
          </Stack>
        )}
      </Drawer>
      <AgentForm
        opened={editing}
        agent={agent}
        onClose={() => setEditing(false)}
        onSaved={(saved) => {
          setAgent(saved);
          setEditing(false);
        }}
      />
      <ConfirmDelete
        what={deleting && agent ? `agent ${agent.name}` : null}
        onClose={() => setDeleting(false)}
        onConfirm={async () => {
          await unwrap(api.DELETE("/v1/agents/{agent_id}", { params: { path: { agent_id: agentId } } }));
          navigate("/agents");
        }}
      />
      <ConfirmDelete
        what={removing ? `task ${removing.name}` : null}
        onClose={() => setRemoving(null)}
        onConfirm={async () => {
          if (!removing) return;
          await unwrap(api.DELETE("/v1/tasks/{task_id}", { params: { path: { task_id: removing.id } } }));
          tasks.reload();
        }}
      />
    </Stack>
  );
}

/** Each CRON trigger's schedule: the stored next fire time and the next ones previewed. */
function Schedules(props: { tasks: Task[] | null; onNew: () => void }) {
  if (!props.tasks) return null;
  const rows = props.tasks.flatMap((task) =>
    (task.schedules?.length
      ? task.schedules.map((s) => ({ key: s.id, task, cron: s.cron, timezone: s.timezone, active: s.active && !s.paused, next: s.next_fire_at, last: s.last_fire_at }))
      : ((task.triggers ?? []) as { type?: string; cron?: string; timezone?: string }[])
          .filter((t) => t.type === "CRON" && t.cron)
          .map((t, i) => ({ key: `${task.id}-${i}`, task, cron: t.cron ?? "", timezone: t.timezone ?? "UTC", active: task.enabled, next: null, last: null }))),
  );
  if (!rows.length)
    return (
      <EmptyState
        title="No schedules"
        hint="A task runs on a schedule when it has a cron trigger. Create a task with the “Schedule (cron)” trigger: the next fire times show as you type the expression."
        action={<Button onClick={props.onNew}>Create a scheduled task</Button>}
      />
    );
  return (
    <Table aria-label="schedules" verticalSpacing="sm">
      <Table.Thead>
        <Table.Tr>
          <Table.Th>Task</Table.Th>
          <Table.Th>Cron</Table.Th>
          <Table.Th>State</Table.Th>
          <Table.Th>Last fired</Table.Th>
          <Table.Th>Next fire times</Table.Th>
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {rows.map((row) => (
          <Table.Tr key={row.key}>
            <Table.Td>{row.task.name}</Table.Td>
            <Table.Td>
              <Code>{row.cron}</Code> <Text span size="xs" c="dimmed">{row.timezone}</Text>
            </Table.Td>
            <Table.Td>
              <Badge variant="dot" color={row.active ? "green" : "orange"}>{row.active ? "active" : "inactive"}</Badge>
            </Table.Td>
            <Table.Td>{when(row.last)}</Table.Td>
            <Table.Td>
              {row.next && <Text size="sm">scheduled: {when(row.next)}</Text>}
              <CronPreview expression={row.cron} timezone={row.timezone} count={3} />
            </Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}

/** Run a task now, with an input. */
function RunTask(props: { task: Task | null; onClose: () => void; onStarted: () => void }) {
  const [input, setInput] = useState("{}");
  const [jsonError, setJsonError] = useState<string | undefined>();
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    setError(null);
    setJsonError(undefined);
  }, [props.task]);
  const run = async () => {
    if (!props.task) return;
    const parsed = parseObject(input);
    setJsonError(parsed.error);
    if (parsed.error) return;
    setBusy(true);
    try {
      const tx = await unwrap(api.POST("/v1/tasks/{task_id}/execute", { params: { path: { task_id: props.task.id } }, body: { input: parsed.value } }));
      notifications.show({ message: `Started ${tx.id} (${tx.status})` });
      props.onStarted();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal opened={props.task !== null} onClose={props.onClose} title={`Run ${props.task?.name ?? ""} now`}>
      <Stack>
        <ErrorAlert error={errorAt(error, "input") ? null : error} />
        <JsonInput label="Input (JSON)" autosize minRows={3} value={input} onChange={setInput} error={jsonError ?? errorAt(error, "input")} />
        <Group justify="flex-end">
          <Button variant="default" onClick={props.onClose}>
            Cancel
          </Button>
          <Button onClick={run} loading={busy}>
            Run
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
