/** Webhooks: each publishes what it is sent on a topic (that EVENT_DRIVEN tasks listen to). */
import { Alert, Button, Code, CopyButton, Group, Modal, Stack, Table, Text, TextInput } from "@mantine/core";
import { useEffect, useState } from "react";
import { api, unwrap } from "../../api/client";
import type { components } from "../../api/schema";
import { EmptyState, ErrorAlert, Pager, RefreshButton } from "../../components/common";
import { ConfirmDelete } from "./AgentForm";
import { errorAt, unplaced, useClientPage, when } from "./ui";

type Hook = components["schemas"]["Hook"];

export function Hooks() {
  const [hooks, setHooks] = useState<Hook[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<Hook | null>(null);
  const [deleting, setDeleting] = useState<Hook | null>(null);
  const reload = () => {
    setLoading(true);
    unwrap(api.GET("/v1/hooks"))
      .then((list) => {
        setHooks(list.items);
        setError(null);
      })
      .catch(setError)
      .finally(() => setLoading(false));
  };
  useEffect(reload, []);
  const paged = useClientPage(hooks);
  return (
    <Stack gap="sm">
      <Group justify="space-between">
        <Text size="sm" c="dimmed">
          A webhook receives signed POSTs and publishes them as events on its topic; tasks with an event trigger on that topic run.
        </Text>
        <Group>
          <RefreshButton onClick={reload} loading={loading} />
          <Button onClick={() => setCreating(true)}>New webhook</Button>
        </Group>
      </Group>
      <ErrorAlert error={error} />
      {hooks && hooks.length === 0 && (
        <EmptyState
          title="No webhooks"
          hint="Create a webhook for a topic, give its URL and secret to the sender, and add a task with an event trigger on the same topic."
          action={<Button onClick={() => setCreating(true)}>Create a webhook</Button>}
        />
      )}
      {paged.total > 0 && (
        <Table aria-label="webhooks">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Topic</Table.Th>
              <Table.Th>Description</Table.Th>
              <Table.Th>Accepted</Table.Th>
              <Table.Th>Rejected</Table.Th>
              <Table.Th>Created</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {paged.rows.map((hook) => (
              <Table.Tr key={hook.id}>
                <Table.Td>
                  <Code>{hook.topic}</Code>
                </Table.Td>
                <Table.Td>{hook.description || "—"}</Table.Td>
                <Table.Td>{hook.accepted}</Table.Td>
                <Table.Td>{hook.rejected}</Table.Td>
                <Table.Td>{when(hook.created_at)}</Table.Td>
                <Table.Td>
                  <Button size="xs" variant="subtle" color="red" onClick={() => setDeleting(hook)}>
                    Delete
                  </Button>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      <Pager {...paged} />
      <NewHook
        opened={creating}
        onClose={() => setCreating(false)}
        onCreated={(hook) => {
          setCreating(false);
          setCreated(hook);
          reload();
        }}
      />
      <Modal opened={created !== null} onClose={() => setCreated(null)} title="Webhook created" size="lg">
        {created && (
          <Stack>
            <Alert color="yellow">The URL and the signing secret are shown only now: copy them.</Alert>
            <Secret label="URL" value={created.url ?? ""} />
            <Secret label="Secret" value={created.secret ?? ""} />
            <Button onClick={() => setCreated(null)}>Done</Button>
          </Stack>
        )}
      </Modal>
      <ConfirmDelete
        what={deleting ? `webhook on ${deleting.topic}` : null}
        onClose={() => setDeleting(null)}
        onConfirm={async () => {
          if (!deleting) return;
          await unwrap(api.DELETE("/v1/hooks/{hook_id}", { params: { path: { hook_id: deleting.id } } }));
          reload();
        }}
      />
    </Stack>
  );
}

function Secret(props: { label: string; value: string }) {
  return (
    <Group wrap="nowrap" align="flex-end">
      <TextInput label={props.label} value={props.value} readOnly style={{ flex: 1 }} />
      <CopyButton value={props.value}>
        {({ copied, copy }) => (
          <Button variant="light" onClick={copy}>
            {copied ? "Copied" : "Copy"}
          </Button>
        )}
      </CopyButton>
    </Group>
  );
}

function NewHook(props: { opened: boolean; onClose: () => void; onCreated: (hook: Hook) => void }) {
  const [topic, setTopic] = useState("");
  const [description, setDescription] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async () => {
    setBusy(true);
    try {
      const hook = await unwrap(api.POST("/v1/hooks", { body: { topic, description } }));
      setError(null);
      setTopic("");
      setDescription("");
      props.onCreated(hook);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal opened={props.opened} onClose={props.onClose} title="New webhook">
      <Stack>
        <ErrorAlert error={unplaced(error, ["topic", "description"])} />
        <TextInput label="Topic" required value={topic} onChange={(e) => setTopic(e.currentTarget.value)} error={errorAt(error, "topic")} />
        <TextInput label="Description" value={description} onChange={(e) => setDescription(e.currentTarget.value)} error={errorAt(error, "description")} />
        <Group justify="flex-end">
          <Button variant="default" onClick={props.onClose}>
            Cancel
          </Button>
          <Button onClick={submit} loading={busy}>
            Create webhook
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
