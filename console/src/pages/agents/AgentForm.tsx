/** Create or edit an agent: name, description, how many task executions at once, enabled. */
import { Button, Group, Modal, NumberInput, Stack, Switch, TextInput, Textarea } from "@mantine/core";
import { useEffect, useState } from "react";
import { api, unwrap } from "../../api/client";
import type { components } from "../../api/schema";
import { ErrorAlert } from "../../components/common";
import { errorAt, unplaced } from "./ui";

type Agent = components["schemas"]["Agent"];
const FIELDS = ["name", "description", "max_concurrency", "enabled"];

export function AgentForm(props: { opened: boolean; agent?: Agent | null; onClose: () => void; onSaved: (agent: Agent) => void }) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [concurrency, setConcurrency] = useState<number | string>(4);
  const [enabled, setEnabled] = useState(true);
  const [error, setError] = useState<unknown>(null);
  const [saving, setSaving] = useState(false);
  useEffect(() => {
    if (!props.opened) return;
    setName(props.agent?.name ?? "");
    setDescription(props.agent?.description ?? "");
    setConcurrency(props.agent?.max_concurrency ?? 4);
    setEnabled(props.agent?.enabled ?? true);
    setError(null);
  }, [props.opened, props.agent]);
  const submit = async () => {
    setSaving(true);
    const body = { name, description, max_concurrency: Number(concurrency), enabled };
    try {
      const saved = props.agent
        ? await unwrap(api.PUT("/v1/agents/{agent_id}", { params: { path: { agent_id: props.agent.id } }, body }))
        : await unwrap(api.POST("/v1/agents", { body }));
      props.onSaved(saved);
    } catch (e) {
      setError(e);
    } finally {
      setSaving(false);
    }
  };
  return (
    <Modal opened={props.opened} onClose={props.onClose} title={props.agent ? `Edit ${props.agent.name}` : "New agent"}>
      <Stack>
        <ErrorAlert error={unplaced(error, FIELDS)} />
        <TextInput label="Name" required value={name} onChange={(e) => setName(e.currentTarget.value)} error={errorAt(error, "name")} data-autofocus />
        <Textarea label="Description" value={description} onChange={(e) => setDescription(e.currentTarget.value)} error={errorAt(error, "description")} autosize minRows={2} />
        <NumberInput
          label="Max concurrency"
          description="Task executions of this agent at once"
          value={concurrency}
          onChange={setConcurrency}
          error={errorAt(error, "max_concurrency")}
        />
        <Switch label="Enabled" checked={enabled} onChange={(e) => setEnabled(e.currentTarget.checked)} />
        <Group justify="flex-end">
          <Button variant="default" onClick={props.onClose}>
            Cancel
          </Button>
          <Button onClick={submit} loading={saving}>
            {props.agent ? "Save" : "Create agent"}
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}

/** Ask before deleting something. */
export function ConfirmDelete(props: { what: string | null; onClose: () => void; onConfirm: () => Promise<void>; label?: string }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => setError(null), [props.what]);
  return (
    <Modal opened={props.what !== null} onClose={props.onClose} title={`${props.label ?? "Delete"} ${props.what ?? ""}?`}>
      <ErrorAlert error={error} />
      <Group justify="flex-end">
        <Button variant="default" onClick={props.onClose}>
          Keep it
        </Button>
        <Button
          color="red"
          loading={busy}
          onClick={async () => {
            setBusy(true);
            try {
              await props.onConfirm();
              props.onClose();
            } catch (e) {
              setError(e);
            } finally {
              setBusy(false);
            }
          }}
        >
          {props.label ?? "Delete"}
        </Button>
      </Group>
    </Modal>
  );
}
