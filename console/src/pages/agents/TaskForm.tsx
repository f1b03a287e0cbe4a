/** Create a task of an agent: its type, its JSON definition and its trigger, the API's errors inline. */
import { Button, Group, JsonInput, Modal, NumberInput, Select, Stack, TextInput } from "@mantine/core";
import { useState } from "react";
import { api, unwrap } from "../../api/client";
import type { components } from "../../api/schema";
import { ErrorAlert } from "../../components/common";
import { CronPreview } from "./CronPreview";
import { errorAt, parseObject, unplaced } from "./ui";

type Task = components["schemas"]["Task"];

export const TASK_TYPES = [
  "DATA_PROCESSING",
  "WORKFLOW_EMBEDDED",
  "WORKFLOW_EMBEDDED_ADHOC",
  "WORKFLOW_TRIGGER",
  "API_CALL",
] as const;
type TaskType = (typeof TASK_TYPES)[number];

const EXAMPLES: Record<TaskType, string> = {
  DATA_PROCESSING: '{\n  "expression": "sum(values)"\n}',
  WORKFLOW_EMBEDDED: '{\n  "steps": [\n    {"step": 1, "target": "transform", "params": {"expression": "x", "input": "{{params}}"}}\n  ]\n}',
  WORKFLOW_EMBEDDED_ADHOC: '{\n  "steps": []\n}',
  WORKFLOW_TRIGGER: '{\n  "workflowId": ""\n}',
  API_CALL: '{\n  "url": "https://example.com",\n  "method": "GET"\n}',
};

const FIELDS = ["name", "type", "description", "config", "triggers", "priority", "max_retries"];

export function TaskForm(props: { agentId: string; opened: boolean; onClose: () => void; onCreated: (task: Task) => void }) {
  const [name, setName] = useState("");
  const [type, setType] = useState<TaskType>("DATA_PROCESSING");
  const [description, setDescription] = useState("");
  const [config, setConfig] = useState(EXAMPLES.DATA_PROCESSING);
  const [trigger, setTrigger] = useState<"MANUAL" | "CRON" | "EVENT_DRIVEN">("MANUAL");
  const [cron, setCron] = useState("0 0 12 ? * MON-FRI");
  const [timezone, setTimezone] = useState("UTC");
  const [topic, setTopic] = useState("");
  const [priority, setPriority] = useState<number | string>(5);
  const [maxRetries, setMaxRetries] = useState<number | string>(0);
  const [error, setError] = useState<unknown>(null);
  const [jsonError, setJsonError] = useState<string | undefined>();
  const [saving, setSaving] = useState(false);

  const submit = async () => {
    const parsed = parseObject(config);
    setJsonError(parsed.error);
    if (parsed.error) return;
    const triggers =
      trigger === "CRON"
        ? [{ type: "CRON" as const, cron, timezone: timezone || "UTC" }]
        : trigger === "EVENT_DRIVEN"
          ? [{ type: "EVENT_DRIVEN" as const, topic }]
          : [];
    setSaving(true);
    try {
      const task = await unwrap(
        api.POST("/v1/agents/{agent_id}/tasks", {
          params: { path: { agent_id: props.agentId } },
          body: {
            name,
            type,
            description,
            config: parsed.value,
            triggers,
            priority: Number(priority),
            max_retries: Number(maxRetries),
          },
        }),
      );
      setError(null);
      setName("");
      props.onCreated(task);
    } catch (e) {
      setError(e);
    } finally {
      setSaving(false);
    }
  };

  const triggerError = errorAt(error, "triggers");
  return (
    <Modal opened={props.opened} onClose={props.onClose} title="New task" size="lg">
      <Stack>
        <ErrorAlert error={unplaced(error, FIELDS)} />
        <TextInput label="Name" required value={name} onChange={(e) => setName(e.currentTarget.value)} error={errorAt(error, "name")} />
        <Select
          label="Type"
          data={[...TASK_TYPES]}
          value={type}
          allowDeselect={false}
          onChange={(v) => {
            const next = (v ?? "DATA_PROCESSING") as TaskType;
            if (config.trim() === EXAMPLES[type].trim() || !config.trim()) setConfig(EXAMPLES[next]);
            setType(next);
            if (errorAt(error, "config") || errorAt(error, "type")) setError(null);
          }}
          error={errorAt(error, "type")}
        />
        <TextInput label="Description" value={description} onChange={(e) => setDescription(e.currentTarget.value)} error={errorAt(error, "description")} />
        <JsonInput
          label="Definition (JSON)"
          description="The task's config: an expression, steps, a workflow id or a call, as its type needs."
          autosize
          minRows={5}
          maxRows={16}
          value={config}
          onChange={(value) => {
            setConfig(value);
            if (errorAt(error, "config")) setError(null); // the API's word was on the text before
          }}
          error={jsonError ?? errorAt(error, "config")}
        />
        <Group grow>
          <NumberInput label="Priority" description="0 lowest, 10 highest" min={0} max={10} value={priority} onChange={setPriority} error={errorAt(error, "priority")} />
          <NumberInput label="Retries" min={0} max={20} value={maxRetries} onChange={setMaxRetries} error={errorAt(error, "max_retries")} />
        </Group>
        <Select
          label="Trigger"
          data={[
            { value: "MANUAL", label: "Manual (run now or by API)" },
            { value: "CRON", label: "Schedule (cron)" },
            { value: "EVENT_DRIVEN", label: "Event topic" },
          ]}
          value={trigger}
          allowDeselect={false}
          onChange={(v) => setTrigger((v ?? "MANUAL") as typeof trigger)}
          error={trigger === "MANUAL" ? triggerError : undefined}
        />
        {trigger === "CRON" && (
          <>
            <Group grow align="flex-start">
              <TextInput
                label="Cron expression"
                description="Quartz: seconds minutes hours day-of-month month day-of-week [year]"
                value={cron}
                onChange={(e) => {
                  setCron(e.currentTarget.value);
                  if (triggerError) setError(null);
                }}
                error={triggerError}
              />
              <TextInput label="Timezone" value={timezone} onChange={(e) => setTimezone(e.currentTarget.value)} />
            </Group>
            <CronPreview expression={cron} timezone={timezone} />
          </>
        )}
        {trigger === "EVENT_DRIVEN" && (
          <TextInput label="Topic" value={topic} onChange={(e) => setTopic(e.currentTarget.value)} error={triggerError} />
        )}
        <Group justify="flex-end">
          <Button variant="default" onClick={props.onClose}>
            Cancel
          </Button>
          <Button onClick={submit} loading={saving}>
            Create task
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
