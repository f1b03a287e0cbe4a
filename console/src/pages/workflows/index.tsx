/**
 * The workflows area: the team's workflows (a page at a time), a JSON editor to create or edit one
 * (the API checks it and names the field it refuses), and a workflow's page — its definition, its
 * steps as a graph, its versions (roll back to one), Run, Edit and Delete.
 */
import {
  Anchor,
  Badge,
  Button,
  Code,
  Group,
  JsonInput,
  Modal,
  Stack,
  Table,
  Tabs,
  Text,
} from "@mantine/core";
import { useCallback, useEffect, useState } from "react";
import { Link, Route, Routes, useNavigate, useParams } from "react-router-dom";
import { api, ApiError, unwrap } from "../../api/client";
import type { components } from "../../api/schema";
import { EmptyState, ErrorAlert, PageHeader, Pager, RefreshButton } from "../../components/common";
import { usePage } from "../../components/usePage";
import { DagView } from "./DagView";

type Workflow = components["schemas"]["Workflow"] & { timeoutSeconds?: number | null };
type Version = components["schemas"]["WorkflowVersion"];

const LIMIT = 20;

/** A small workflow that runs as it is: two steps in DAG mode, the second using the first. */
const EXAMPLE = {
  name: "hello-workflow",
  description: "Greets someone, then shapes the greeting.",
  mode: "dag",
  params: { who: "Ada" },
  steps: [
    { step: 1, target: "noop", params: { greeting: "Hello, {{params.who}}!" } },
    {
      step: 2,
      target: "transform",
      params: { expression: "{message: greeting}", input: "{{step1.result}}" },
    },
  ],
};

const pretty = (value: unknown) => JSON.stringify(value, null, 2);

function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : "—";
}

/** The editable body of a stored workflow: its definition's fields, without the record's. */
function definitionOf(wf: Workflow): Record<string, unknown> {
  const body: Record<string, unknown> = { name: wf.name };
  if (wf.description) body.description = wf.description;
  if (wf.mode) body.mode = wf.mode;
  if (wf.params && Object.keys(wf.params).length) body.params = wf.params;
  if (wf.timeoutSeconds != null) body.timeoutSeconds = wf.timeoutSeconds;
  body.steps = wf.steps;
  return body;
}

export default function Area() {
  return (
    <Routes>
      <Route index element={<WorkflowList />} />
      <Route path="new" element={<NewWorkflow />} />
      <Route path=":id" element={<WorkflowDetail />} />
      <Route path=":id/edit" element={<EditWorkflow />} />
    </Routes>
  );
}

function WorkflowList() {
  const { page, error, loading, setOffset, reload } = usePage((offset) =>
    unwrap(api.GET("/v1/workflows", { params: { query: { limit: LIMIT, offset } } })),
  );
  const newButton = (
    <Button component={Link} to="new">
      New workflow
    </Button>
  );
  return (
    <>
      <PageHeader
        title="Workflows"
        description="Steps that call services, models and each other, run as executions."
        actions={
          <>
            <RefreshButton onClick={reload} loading={loading} />
            {newButton}
          </>
        }
      />
      <ErrorAlert error={error} title="Could not list the workflows" />
      {page && page.items.length === 0 && (
        <EmptyState
          title="No workflows yet"
          hint="A workflow is a list of steps as JSON (a service call, a transform, a model…). Create one with the editor, then Run it from its page to see each step on a timeline."
          action={newButton}
        />
      )}
      {page && page.items.length > 0 && (
        <Table striped highlightOnHover aria-label="workflows">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Mode</Table.Th>
              <Table.Th>Steps</Table.Th>
              <Table.Th>Version</Table.Th>
              <Table.Th>Updated</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {page.items.map((wf) => (
              <Table.Tr key={wf.id}>
                <Table.Td>
                  <Anchor component={Link} to={wf.id}>
                    {wf.name}
                  </Anchor>
                  {wf.description && (
                    <Text size="xs" c="dimmed" lineClamp={1}>
                      {wf.description}
                    </Text>
                  )}
                </Table.Td>
                <Table.Td>{wf.mode ?? "sequential"}</Table.Td>
                <Table.Td>{wf.steps?.length ?? 0}</Table.Td>
                <Table.Td>v{wf.version}</Table.Td>
                <Table.Td>{when(wf.updated_at ?? wf.created_at)}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {page && <Pager total={page.total} limit={page.limit} offset={page.offset} onOffset={setOffset} />}
    </>
  );
}

/** The JSON editor of a workflow body; Save hands the parsed body to `save`, and an error the API
 * answers with is shown next to the editor, its field named. */
function WorkflowEditor(props: {
  initial: string;
  saveLabel: string;
  save: (body: Record<string, unknown>) => Promise<void>;
}) {
  const [text, setText] = useState(props.initial);
  const [error, setError] = useState<unknown>(null);
  const [saving, setSaving] = useState(false);
  const submit = async () => {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (e) {
      setError(new Error(`Not valid JSON: ${(e as Error).message}`));
      return;
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      setError(new Error("The workflow must be a JSON object."));
      return;
    }
    setSaving(true);
    setError(null);
    try {
      await props.save(body as Record<string, unknown>);
    } catch (e) {
      setError(e);
    } finally {
      setSaving(false);
    }
  };
  const api = error instanceof ApiError ? error : null;
  // an error about the body (a field, or bad input) goes next to the editor; others as an alert
  const inline = error && (!api || api.field || api.status === 400 || api.status === 422);
  return (
    <Stack>
      {!inline && <ErrorAlert error={error} title="Could not save the workflow" />}
      <JsonInput
        label="Workflow definition"
        description="name, description, mode (sequential or dag), params, timeoutSeconds and steps — see docs/workflows.md"
        value={text}
        onChange={setText}
        autosize
        minRows={14}
        maxRows={40}
        formatOnBlur
        validationError="Not valid JSON"
        styles={{ input: { fontFamily: "var(--mantine-font-family-monospace)" } }}
        error={
          inline ? (
            <span role="alert" aria-label="definition error">
              {api?.field && !api.message.startsWith(api.field) && (
                <>
                  <Text span inherit fw={700} ff="monospace">
                    {api.field}
                  </Text>{" "}
                </>
              )}
              {error instanceof Error ? error.message : String(error)}
            </span>
          ) : undefined
        }
      />
      <Group>
        <Button onClick={submit} loading={saving}>
          {props.saveLabel}
        </Button>
      </Group>
    </Stack>
  );
}

function NewWorkflow() {
  const navigate = useNavigate();
  return (
    <>
      <PageHeader
        title="New workflow"
        description="Write the workflow as JSON; the API checks every field when you save."
        actions={
          <Button variant="default" component={Link} to="..">
            Back to workflows
          </Button>
        }
      />
      <WorkflowEditor
        initial={pretty(EXAMPLE)}
        saveLabel="Save workflow"
        save={async (body) => {
          const wf = await unwrap(api.POST("/v1/workflows", { body: body as never }));
          navigate(`/workflows/${wf.id}`);
        }}
      />
    </>
  );
}

function useWorkflow(id: string) {
  const [wf, setWf] = useState<Workflow | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(() => {
    unwrap(api.GET("/v1/workflows/{workflow_id}", { params: { path: { workflow_id: id } } }))
      .then((w) => {
        setWf(w as Workflow);
        setError(null);
      })
      .catch(setError);
  }, [id]);
  useEffect(load, [load]);
  return { wf, error, load };
}

function EditWorkflow() {
  const { id = "" } = useParams();
  const navigate = useNavigate();
  const { wf, error } = useWorkflow(id);
  return (
    <>
      <PageHeader
        title={wf ? `Edit ${wf.name}` : "Edit workflow"}
        description={wf ? `Saving makes version ${wf.version + 1} (only if v${wf.version} is still the current one).` : undefined}
        actions={
          <Button variant="default" component={Link} to={`/workflows/${id}`}>
            Cancel
          </Button>
        }
      />
      <ErrorAlert error={error} title="Could not load the workflow" />
      {wf && (
        <WorkflowEditor
          initial={pretty(definitionOf(wf))}
          saveLabel="Save new version"
          save={async (body) => {
            await unwrap(
              api.PUT("/v1/workflows/{workflow_id}", {
                params: { path: { workflow_id: id }, header: { "If-Match": String(wf.version) } },
                body: body as never,
              }),
            );
            navigate(`/workflows/${id}`);
          }}
        />
      )}
    </>
  );
}

function WorkflowDetail() {
  const { id = "" } = useParams();
  const navigate = useNavigate();
  const { wf, error, load } = useWorkflow(id);
  const [versionsKey, setVersionsKey] = useState(0);
  const [runOpen, setRunOpen] = useState(false);
  const [deleteOpen, setDeleteOpen] = useState(false);
  const [actionError, setActionError] = useState<unknown>(null);
  const [deleting, setDeleting] = useState(false);

  const remove = async () => {
    setDeleting(true);
    try {
      await unwrap(api.DELETE("/v1/workflows/{workflow_id}", { params: { path: { workflow_id: id } } }));
      navigate("/workflows");
    } catch (e) {
      setActionError(e);
      setDeleteOpen(false);
    } finally {
      setDeleting(false);
    }
  };

  if (error) {
    return (
      <>
        <PageHeader title="Workflow" />
        <ErrorAlert error={error} title="Could not load the workflow" />
        <Anchor component={Link} to="/workflows">
          Back to workflows
        </Anchor>
      </>
    );
  }
  if (!wf) return <Text c="dimmed">Loading…</Text>;
  return (
    <>
      <PageHeader
        title={wf.name}
        description={wf.description ?? undefined}
        actions={
          <>
            <Button variant="default" component={Link} to={`/executions?workflow=${encodeURIComponent(id)}`}>
              Executions
            </Button>
            <Button variant="default" component={Link} to="edit">
              Edit
            </Button>
            <Button color="red" variant="outline" onClick={() => setDeleteOpen(true)}>
              Delete
            </Button>
            <Button onClick={() => setRunOpen(true)}>Run</Button>
          </>
        }
      />
      <ErrorAlert error={actionError} />
      <Group gap="xs" mb="md">
        <Badge variant="dot">v{wf.version}</Badge>
        <Badge variant="dot" color="gray">
          {wf.mode ?? "sequential"}
        </Badge>
        <Text size="sm" c="dimmed">
          {wf.steps?.length ?? 0} steps · <Code>{wf.id}</Code> · updated {when(wf.updated_at ?? wf.created_at)}
        </Text>
      </Group>
      <Tabs defaultValue="graph" keepMounted={false}>
        <Tabs.List>
          <Tabs.Tab value="graph">Steps graph</Tabs.Tab>
          <Tabs.Tab value="definition">Definition</Tabs.Tab>
          <Tabs.Tab value="versions">Versions</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="graph" pt="md">
          <DagView steps={(wf.steps ?? []) as Record<string, unknown>[]} mode={wf.mode} />
        </Tabs.Panel>
        <Tabs.Panel value="definition" pt="md">
          <Code block aria-label="definition">
            {pretty(definitionOf(wf))}
          </Code>
        </Tabs.Panel>
        <Tabs.Panel value="versions" pt="md">
          <Versions
            key={versionsKey}
            id={id}
            current={wf.version}
            onRolledBack={() => {
              load();
              setVersionsKey((k) => k + 1);
            }}
          />
        </Tabs.Panel>
      </Tabs>
      <RunModal workflow={wf} opened={runOpen} onClose={() => setRunOpen(false)} />
      <Modal opened={deleteOpen} onClose={() => setDeleteOpen(false)} title={`Delete ${wf.name}?`}>
        <Text size="sm" mb="md">
          The workflow is hidden from now on; its executions keep their records.
        </Text>
        <Group justify="flex-end">
          <Button variant="default" onClick={() => setDeleteOpen(false)}>
            Keep it
          </Button>
          <Button color="red" onClick={remove} loading={deleting}>
            Delete workflow
          </Button>
        </Group>
      </Modal>
    </>
  );
}

function Versions(props: { id: string; current: number; onRolledBack: () => void }) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<number | null>(null);
  const [shown, setShown] = useState<Version | null>(null);
  const { page, error: loadError, setOffset } = usePage(
    (offset) =>
      unwrap(
        api.GET("/v1/workflows/{workflow_id}/versions", {
          params: { path: { workflow_id: props.id }, query: { limit: LIMIT, offset } },
        }),
      ),
    [props.id],
  );
  const rollback = async (version: number) => {
    setBusy(version);
    setError(null);
    try {
      await unwrap(
        api.POST("/v1/workflows/{workflow_id}/versions/{version}/rollback", {
          params: { path: { workflow_id: props.id, version } },
        }),
      );
      props.onRolledBack();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  };
  return (
    <>
      <ErrorAlert error={loadError ?? error} />
      {page && (
        <Table aria-label="versions">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Version</Table.Th>
              <Table.Th>Name</Table.Th>
              <Table.Th>Created</Table.Th>
              <Table.Th>Note</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {page.items.map((v) => (
              <Table.Tr key={v.version}>
                <Table.Td>
                  <Anchor component="button" onClick={() => setShown(v)}>
                    v{v.version}
                  </Anchor>{" "}
                  {v.version === props.current && <Badge size="xs" variant="dot">current</Badge>}
                </Table.Td>
                <Table.Td>{v.name}</Table.Td>
                <Table.Td>
                  {when(v.created_at)}
                  {v.created_by && ` by ${v.created_by}`}
                </Table.Td>
                <Table.Td>{v.rolled_back_from != null && `rolled back from v${v.rolled_back_from}`}</Table.Td>
                <Table.Td>
                  {v.version !== props.current && (
                    <Button
                      size="xs"
                      variant="dot"
                      loading={busy === v.version}
                      onClick={() => rollback(v.version)}
                      aria-label={`Roll back to v${v.version}`}
                    >
                      Roll back
                    </Button>
                  )}
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {page && <Pager total={page.total} limit={page.limit} offset={page.offset} onOffset={setOffset} />}
      <Modal opened={shown !== null} onClose={() => setShown(null)} title={`Version ${shown?.version ?? ""}`} size="lg">
        <Code block>{pretty(shown?.definition ?? {})}</Code>
      </Modal>
    </>
  );
}

function RunModal(props: { workflow: Workflow; opened: boolean; onClose: () => void }) {
  const navigate = useNavigate();
  const [params, setParams] = useState(pretty(props.workflow.params ?? {}));
  const [error, setError] = useState<unknown>(null);
  const [running, setRunning] = useState(false);
  const run = async () => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(params || "{}");
    } catch (e) {
      setError(new Error(`Not valid JSON: ${(e as Error).message}`));
      return;
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      setError(new Error("Params must be a JSON object."));
      return;
    }
    setRunning(true);
    setError(null);
    try {
      const started = await unwrap(
        api.POST("/v1/workflows/{workflow_id}/execute", {
          params: { path: { workflow_id: props.workflow.id } },
          body: { params: parsed as Record<string, unknown> },
        }),
      );
      navigate(`/executions/${started.id}`);
    } catch (e) {
      setError(e);
    } finally {
      setRunning(false);
    }
  };
  return (
    <Modal opened={props.opened} onClose={props.onClose} title={`Run ${props.workflow.name}`} size="lg">
      <Stack>
        <JsonInput
          label="Params"
          description="Override the workflow's default params, key by key."
          value={params}
          onChange={setParams}
          autosize
          minRows={4}
          formatOnBlur
          validationError="Not valid JSON"
          error={error ? (error instanceof Error ? error.message : String(error)) : undefined}
        />
        <Group justify="flex-end">
          <Button variant="default" onClick={props.onClose}>
            Cancel
          </Button>
          <Button onClick={run} loading={running}>
            Start run
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
