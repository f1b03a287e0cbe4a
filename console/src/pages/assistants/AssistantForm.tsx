/**
 * Create an assistant (POST) or write its next version (PUT with If-Match). The API checks the
 * body; a refusal names its field and is shown on that field. The "Public widget" section sets
 * who may chat through a widget key (`accessControl`) and how the widget looks (`widgetConfig`),
 * and shows a PUBLIC assistant's embed snippet.
 */
import {
  Button,
  ColorInput,
  Fieldset,
  Group,
  Loader,
  Modal,
  MultiSelect,
  Paper,
  Select,
  SimpleGrid,
  Stack,
  TagsInput,
  Text,
  TextInput,
  Textarea,
} from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useEffect, useState, type FormEvent } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { ApiError, api, fieldError, unwrap } from "../../api/client";
import { ErrorAlert, PageHeader } from "../../components/common";
import { EmbedSnippet } from "./EmbedSnippet";
import { formatModel, parseModel, type Assistant, type AssistantInput } from "./types";

type Status = "ACTIVE" | "DRAFT" | "INACTIVE";
type Access = "PRIVATE" | "PUBLIC";
type Widget = Required<NonNullable<AssistantInput["widgetConfig"]>>;

/** The API's defaults (linqra/assistants/models.py WidgetConfig), for a new assistant. */
const WIDGET_DEFAULTS: Widget = {
  title: "Chat",
  welcomeMessage: "Hi! How can I help?",
  placeholder: "Type your question…",
  primaryColor: "#1c7ed6",
  textColor: "#ffffff",
  position: "right",
};
interface Option {
  value: string;
  label: string;
}
interface Group_ {
  group: string;
  items: Option[];
}

/** The fields this form shows an error on; any other refusal is shown above the form. */
const FORM_FIELDS = [
  "name",
  "description",
  "defaultModel",
  "systemPrompt",
  "status",
  "knowledge",
  "selectedTasks",
  "accessControl.type",
  "accessControl.allowedDomains",
  ...Object.keys(WIDGET_DEFAULTS).map((key) => `widgetConfig.${key}`),
];

/** The API's error on `field`, also when it names one item of a list (`allowedDomains[1]`). */
function errorOn(error: unknown, field: string): string | undefined {
  if (error instanceof ApiError && error.field?.startsWith(`${field}[`)) return error.message;
  return fieldError(error, field);
}

async function loadCollections(): Promise<Option[]> {
  const page = await unwrap(api.GET("/v1/knowledge/collections", { params: { query: { limit: 100 } } }));
  return page.items.map((c) => ({ value: c.id, label: c.name }));
}

async function loadTasks(): Promise<Group_[]> {
  const agents = await unwrap(api.GET("/v1/agents", { params: { query: { limit: 100 } } }));
  return Promise.all(
    agents.items.map(async (agent) => {
      const tasks = await unwrap(
        api.GET("/v1/agents/{agent_id}/tasks", {
          params: { path: { agent_id: agent.id }, query: { limit: 100 } },
        }),
      );
      return { group: agent.name, items: tasks.items.map((t) => ({ value: t.id, label: t.name })) };
    }),
  );
}

export function AssistantForm() {
  const { id } = useParams();
  const navigate = useNavigate();
  const [existing, setExisting] = useState<Assistant | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [model, setModel] = useState("openai:gpt-4o");
  const [systemPrompt, setSystemPrompt] = useState("");
  const [status, setStatus] = useState<Status>("ACTIVE");
  const [collections, setCollections] = useState<string[]>([]);
  const [tasks, setTasks] = useState<string[]>([]);
  const [access, setAccess] = useState<Access>("PRIVATE");
  const [domains, setDomains] = useState<string[]>([]);
  const [widget, setWidget] = useState<Widget>(WIDGET_DEFAULTS);
  const [collectionOptions, setCollectionOptions] = useState<Option[]>([]);
  const [taskOptions, setTaskOptions] = useState<Group_[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [modelProblem, setModelProblem] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [deleteError, setDeleteError] = useState<unknown>(null);

  useEffect(() => {
    loadCollections().then(setCollectionOptions).catch(setLoadError);
    loadTasks()
      .then((groups) => setTaskOptions(groups.filter((g) => g.items.length > 0)))
      .catch(setLoadError);
  }, []);

  useEffect(() => {
    if (!id) return;
    unwrap(api.GET("/v1/assistants/{assistant_id}", { params: { path: { assistant_id: id } } }))
      .then((a) => {
        setExisting(a);
        setName(a.name);
        setDescription(a.description ?? "");
        setModel(formatModel(a.defaultModel));
        setSystemPrompt(a.systemPrompt ?? "");
        setStatus((a.status ?? "ACTIVE") as Status);
        setCollections(a.knowledge?.collections ?? []);
        setTasks((a.selectedTasks ?? []).map((t) => t.taskId));
        setAccess((a.accessControl?.type ?? "PRIVATE") as Access);
        setDomains(a.accessControl?.allowedDomains ?? []);
        setWidget({ ...WIDGET_DEFAULTS, ...(a.widgetConfig ?? {}) } as Widget);
      })
      .catch(setLoadError);
  }, [id]);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const parsed = parseModel(model);
    if (typeof parsed === "string") {
      setModelProblem(parsed);
      return;
    }
    setModelProblem(null);
    setError(null);
    setSaving(true);
    // an edit sends the whole configuration again: what this form does not show is kept
    const base: Partial<Assistant> = existing ? { ...existing } : {};
    for (const key of ["id", "version", "created_at", "updated_at"] as const) delete base[key];
    const timeouts = new Map((existing?.selectedTasks ?? []).map((t) => [t.taskId, t.timeoutSeconds]));
    const body: AssistantInput = {
      ...(base as AssistantInput),
      name,
      description: description || null,
      defaultModel: parsed ? { ...existing?.defaultModel, ...parsed } : null,
      systemPrompt,
      status,
      knowledge: { ...(existing?.knowledge ?? {}), collections },
      selectedTasks: tasks.map((taskId) => ({ taskId, timeoutSeconds: timeouts.get(taskId) ?? 60 })),
      accessControl: { ...(existing?.accessControl ?? {}), type: access, allowedDomains: domains },
      widgetConfig: { ...(existing?.widgetConfig ?? {}), ...widget },
    };
    try {
      const saved = existing
        ? await unwrap(
            api.PUT("/v1/assistants/{assistant_id}", {
              params: { path: { assistant_id: existing.id }, header: { "If-Match": String(existing.version) } },
              body,
            }),
          )
        : await unwrap(api.POST("/v1/assistants", { body }));
      notifications.show({ color: "green", closeButtonProps: { "aria-label": "close" }, message: `Saved ${saved.name} (version ${saved.version})` });
      navigate(`/assistants/${saved.id}`);
    } catch (err) {
      setError(err);
    } finally {
      setSaving(false);
    }
  }

  async function remove() {
    if (!existing) return;
    try {
      await unwrap(api.DELETE("/v1/assistants/{assistant_id}", { params: { path: { assistant_id: existing.id } } }));
      notifications.show({ closeButtonProps: { "aria-label": "close" }, message: `Deleted ${existing.name}` });
      navigate("/assistants");
    } catch (err) {
      setDeleteError(err);
    }
  }

  if (id && !existing && !loadError) return <Loader aria-label="loading" />;
  const named = error instanceof ApiError && error.field && FORM_FIELDS.some((f) => errorOn(error, f));
  const look = (key: keyof Widget) => ({
    error: fieldError(error, `widgetConfig.${key}`),
  });
  const setLook = (key: keyof Widget) => (value: string) => setWidget((w) => ({ ...w, [key]: value }));
  return (
    <>
      <PageHeader
        title={existing ? `Edit ${existing.name}` : "New assistant"}
        description={existing ? `Saving writes version ${existing.version + 1}.` : "Version 1 is written when you save."}
        actions={
          existing && (
            <Button color="red" variant="light" onClick={() => setDeleting(true)}>
              Delete assistant
            </Button>
          )
        }
      />
      <Modal opened={deleting} onClose={() => setDeleting(false)} title="Delete assistant">
        <Stack>
          <ErrorAlert error={deleteError} title="Not deleted" />
          <Text size="sm">
            Delete <b>{existing?.name}</b>? It is hidden from now on and answers no more messages.
          </Text>
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setDeleting(false)}>
              Keep it
            </Button>
            <Button color="red" onClick={remove}>
              Delete
            </Button>
          </Group>
        </Stack>
      </Modal>
      <ErrorAlert error={loadError} title="Could not load" />
      {!named && <ErrorAlert error={error} title="Not saved" />}
      <Paper withBorder p="md" maw={760}>
        <form onSubmit={submit} noValidate aria-label="assistant">
          <Stack>
            <TextInput
              label="Name"
              required
              value={name}
              onChange={(e) => setName(e.currentTarget.value)}
              error={fieldError(error, "name")}
            />
            <TextInput
              label="Description"
              value={description}
              onChange={(e) => setDescription(e.currentTarget.value)}
              error={fieldError(error, "description")}
            />
            <TextInput
              label="Model"
              description="provider:model, e.g. openai:gpt-4o; empty: the configured default model"
              value={model}
              onChange={(e) => setModel(e.currentTarget.value)}
              error={modelProblem ?? fieldError(error, "defaultModel")}
              ff="monospace"
            />
            <Textarea
              label="System prompt"
              autosize
              minRows={4}
              maxRows={16}
              value={systemPrompt}
              onChange={(e) => setSystemPrompt(e.currentTarget.value)}
              error={fieldError(error, "systemPrompt")}
            />
            <Select
              label="Status"
              description="Only an ACTIVE assistant chats."
              data={["ACTIVE", "DRAFT", "INACTIVE"]}
              value={status}
              allowDeselect={false}
              onChange={(value) => value && setStatus(value as Status)}
              error={fieldError(error, "status")}
            />
            <MultiSelect
              label="Knowledge collections"
              description="Searched for context at every message (up to 10)."
              placeholder={collectionOptions.length ? "pick collections" : "no collections yet"}
              data={[
                ...collectionOptions,
                ...collections
                  .filter((c) => !collectionOptions.some((o) => o.value === c))
                  .map((c) => ({ value: c, label: c })),
              ]}
              value={collections}
              onChange={setCollections}
              searchable
              clearable
              error={fieldError(error, "knowledge")}
            />
            <MultiSelect
              label="Tasks"
              description="Your agents' tasks the assistant may call (up to 10)."
              placeholder={taskOptions.length ? "pick tasks" : "no tasks yet"}
              data={[
                ...taskOptions,
                ...(tasks.some((t) => !taskOptions.some((g) => g.items.some((o) => o.value === t)))
                  ? [
                      {
                        group: "other",
                        items: tasks
                          .filter((t) => !taskOptions.some((g) => g.items.some((o) => o.value === t)))
                          .map((t) => ({ value: t, label: t })),
                      },
                    ]
                  : []),
              ]}
              value={tasks}
              onChange={setTasks}
              searchable
              clearable
              error={fieldError(error, "selectedTasks")}
            />
            <Fieldset legend="Public widget">
              <Stack>
                <Select
                  label="Access"
                  description="Only a PUBLIC assistant answers a widget key on a web page."
                  data={[
                    { value: "PRIVATE", label: "PRIVATE: the API and the console only" },
                    { value: "PUBLIC", label: "PUBLIC: also through a widget key" },
                  ]}
                  value={access}
                  allowDeselect={false}
                  onChange={(value) => value && setAccess(value as Access)}
                  error={fieldError(error, "accessControl.type")}
                />
                <TagsInput
                  label="Allowed domains"
                  description="Sites the widget may run on, as origins (https://shop.example); none: any site the key allows. Enter after each."
                  placeholder={domains.length ? "" : "https://shop.example"}
                  value={domains}
                  onChange={setDomains}
                  clearable
                  splitChars={[",", " "]}
                  error={errorOn(error, "accessControl.allowedDomains")}
                />
                <SimpleGrid cols={{ base: 1, sm: 2 }}>
                  <TextInput
                    label="Widget title"
                    value={widget.title}
                    onChange={(e) => setLook("title")(e.currentTarget.value)}
                    {...look("title")}
                  />
                  <TextInput
                    label="Input placeholder"
                    value={widget.placeholder}
                    onChange={(e) => setLook("placeholder")(e.currentTarget.value)}
                    {...look("placeholder")}
                  />
                </SimpleGrid>
                <Textarea
                  label="Welcome message"
                  autosize
                  minRows={2}
                  maxRows={6}
                  value={widget.welcomeMessage}
                  onChange={(e) => setLook("welcomeMessage")(e.currentTarget.value)}
                  {...look("welcomeMessage")}
                />
                <SimpleGrid cols={{ base: 1, sm: 3 }}>
                  <ColorInput
                    label="Primary colour"
                    description="#rrggbb"
                    format="hex"
                    fixOnBlur={false}
                    eyeDropperButtonProps={{ "aria-label": "pick the primary colour from the screen" }}
                    value={widget.primaryColor}
                    onChange={setLook("primaryColor")}
                    {...look("primaryColor")}
                  />
                  <ColorInput
                    label="Text colour"
                    description="#rrggbb, on the primary colour"
                    format="hex"
                    fixOnBlur={false}
                    eyeDropperButtonProps={{ "aria-label": "pick the text colour from the screen" }}
                    value={widget.textColor}
                    onChange={setLook("textColor")}
                    {...look("textColor")}
                  />
                  <Select
                    label="Position"
                    description="corner of the page"
                    data={["right", "left"]}
                    value={widget.position}
                    allowDeselect={false}
                    onChange={(value) => value && setLook("position")(value)}
                    {...look("position")}
                  />
                </SimpleGrid>
                {access === "PUBLIC" && <EmbedSnippet assistantId={existing?.id} />}
              </Stack>
            </Fieldset>
            {existing && (
              <Text size="xs" c="dimmed">
                Guardrails, context window and double-texting are kept as they are.
              </Text>
            )}
            <Group justify="flex-end">
              <Button variant="default" component={Link} to={existing ? `/assistants/${existing.id}` : "/assistants"}>
                Cancel
              </Button>
              <Button type="submit" loading={saving}>
                {existing ? "Save" : "Create"}
              </Button>
            </Group>
          </Stack>
        </form>
      </Paper>
    </>
  );
}
