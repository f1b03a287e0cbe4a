/** API keys: issue one (its secret shown once), list them, rotate, revoke. */
import { Alert, Badge, Button, Code, CopyButton, Group, Modal, MultiSelect, NumberInput, Select, Stack, Table, Text, TextInput } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useState } from "react";
import { api, unwrap } from "../../api/client";
import type { components } from "../../api/schema";
import { EmptyState, ErrorAlert, Pager, RefreshButton } from "../../components/common";
import { usePage } from "../../components/usePage";
import { ConfirmDelete } from "../agents/AgentForm";
import { errorAt, PAGE_SIZE, unplaced, when } from "../agents/ui";

type ApiKey = components["schemas"]["ApiKey"];
type IssuedKey = components["schemas"]["IssuedKey"];
type Scope = "read" | "write" | "execute" | "admin" | "manage_access";
type Role = "viewer" | "member" | "admin";

export function ApiKeys() {
  const [creating, setCreating] = useState(false);
  const [issued, setIssued] = useState<IssuedKey | null>(null);
  const [rotating, setRotating] = useState<ApiKey | null>(null);
  const [revoking, setRevoking] = useState<ApiKey | null>(null);
  const { page, error, loading, offset, setOffset, reload } = usePage<ApiKey>((offset) =>
    unwrap(api.GET("/v1/api-keys", { params: { query: { limit: PAGE_SIZE, offset } } })),
  );
  return (
    <Stack gap="sm">
      <Group justify="space-between">
        <Text size="sm" c="dimmed">
          Keys let programs call the API as this team (Authorization: Bearer &lt;key&gt;). The whole key is shown once, when it is issued.
        </Text>
        <Group>
          <RefreshButton onClick={reload} loading={loading} />
          <Button onClick={() => setCreating(true)}>New API key</Button>
        </Group>
      </Group>
      <ErrorAlert error={error} />
      {page && page.items.length === 0 && (
        <EmptyState
          title="No API keys"
          hint="Create a key for a script, a CI job or a widget; give it only the scopes it needs and an expiry."
          action={<Button onClick={() => setCreating(true)}>Create an API key</Button>}
        />
      )}
      {page && page.items.length > 0 && (
        <Table aria-label="api keys">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Key</Table.Th>
              <Table.Th>Kind</Table.Th>
              <Table.Th>Scopes</Table.Th>
              <Table.Th>Role</Table.Th>
              <Table.Th>Created</Table.Th>
              <Table.Th>Last used</Table.Th>
              <Table.Th>Expires</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {page.items.map((key) => (
              <Table.Tr key={key.id} data-testid={`key-${key.id}`}>
                <Table.Td>{key.name}</Table.Td>
                <Table.Td>
                  <Code>{key.prefix}…</Code>
                </Table.Td>
                <Table.Td>{key.kind}</Table.Td>
                <Table.Td>{key.scopes.join(", ") || "—"}</Table.Td>
                <Table.Td>{key.role}</Table.Td>
                <Table.Td>{when(key.created_at)}</Table.Td>
                <Table.Td>{when(key.last_used_at)}</Table.Td>
                <Table.Td>{key.expires_at ? when(key.expires_at) : "never"}</Table.Td>
                <Table.Td>
                  {key.revoked_at ? (
                    <Badge variant="dot" color="red" title={key.revoked_because ?? undefined}>
                      revoked
                    </Badge>
                  ) : (
                    <Group gap="xs" wrap="nowrap" justify="flex-end">
                      <Button size="xs" variant="light" onClick={() => setRotating(key)}>
                        Rotate
                      </Button>
                      <Button size="xs" variant="subtle" color="red" onClick={() => setRevoking(key)}>
                        Delete
                      </Button>
                    </Group>
                  )}
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {page && <Pager total={page.total} limit={page.limit} offset={offset} onOffset={setOffset} />}
      <NewKey
        opened={creating}
        onClose={() => setCreating(false)}
        onIssued={(key) => {
          setCreating(false);
          setIssued(key);
          reload();
        }}
      />
      <ShowOnce issued={issued} onClose={() => setIssued(null)} />
      <ConfirmDelete
        label="Rotate"
        what={rotating ? `key ${rotating.name} (the current secret stops working)` : null}
        onClose={() => setRotating(null)}
        onConfirm={async () => {
          if (!rotating) return;
          const key = await unwrap(api.POST("/v1/api-keys/{key_id}/rotate", { params: { path: { key_id: rotating.id } } }));
          setIssued(key);
          reload();
        }}
      />
      <ConfirmDelete
        what={revoking ? `key ${revoking.name}` : null}
        onClose={() => setRevoking(null)}
        onConfirm={async () => {
          if (!revoking) return;
          await unwrap(api.DELETE("/v1/api-keys/{key_id}", { params: { path: { key_id: revoking.id } } }));
          notifications.show({ message: `Key ${revoking.name} revoked` });
          reload();
        }}
      />
    </Stack>
  );
}

/** The whole key, once, with a copy button. */
function ShowOnce(props: { issued: IssuedKey | null; onClose: () => void }) {
  return (
    <Modal opened={props.issued !== null} onClose={props.onClose} title={`Key ${props.issued?.name ?? ""}`} size="lg" closeOnClickOutside={false}>
      {props.issued && (
        <Stack>
          <Alert color="yellow" title="Copy this key now">
            It is shown only this once; the console and the API never show it again.
          </Alert>
          <Group wrap="nowrap" align="flex-end">
            <TextInput label="Secret" readOnly value={props.issued.key} style={{ flex: 1 }} data-testid="issued-key" ff="monospace" />
            <CopyButton value={props.issued.key}>
              {({ copied, copy }) => (
                <Button variant="light" color={copied ? "teal" : undefined} onClick={copy}>
                  {copied ? "Copied" : "Copy"}
                </Button>
              )}
            </CopyButton>
          </Group>
          <Group justify="flex-end">
            <Button onClick={props.onClose}>I have copied it</Button>
          </Group>
        </Stack>
      )}
    </Modal>
  );
}

const FIELDS = ["name", "kind", "scopes", "role", "expires_in_days", "allowed_origins", "resource", "spend_cap", "spend_period"];

function NewKey(props: { opened: boolean; onClose: () => void; onIssued: (key: IssuedKey) => void }) {
  const [name, setName] = useState("");
  const [kind, setKind] = useState<"api" | "widget">("api");
  const [scopes, setScopes] = useState<string[]>(["read"]);
  const [role, setRole] = useState<Role | null>(null);
  const [days, setDays] = useState<number | string>("");
  const [origins, setOrigins] = useState("");
  const [resource, setResource] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async () => {
    setBusy(true);
    try {
      const key = await unwrap(
        api.POST("/v1/api-keys", {
          body: {
            name,
            kind,
            scopes: scopes as Scope[],
            role: role ?? undefined,
            expires_in_days: days === "" ? undefined : Number(days),
            ...(kind === "widget"
              ? { allowed_origins: origins.split(/[\s,]+/).filter(Boolean), resource: resource || undefined }
              : {}),
          },
        }),
      );
      setError(null);
      setName("");
      props.onIssued(key);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal opened={props.opened} onClose={props.onClose} title="New API key">
      <Stack>
        <ErrorAlert error={unplaced(error, FIELDS)} />
        <TextInput label="Name" required value={name} onChange={(e) => setName(e.currentTarget.value)} error={errorAt(error, "name")} data-autofocus />
        <Select
          label="Kind"
          data={[
            { value: "api", label: "API (programs)" },
            { value: "widget", label: "Widget (public, for one assistant or workflow)" },
          ]}
          value={kind}
          allowDeselect={false}
          onChange={(v) => setKind((v ?? "api") as "api" | "widget")}
          error={errorAt(error, "kind")}
        />
        <MultiSelect
          label="Scopes"
          data={["read", "write", "execute", "admin", "manage_access"]}
          value={scopes}
          onChange={setScopes}
          error={errorAt(error, "scopes")}
        />
        <Select
          label="Role"
          description="Default: yours"
          clearable
          data={["viewer", "member", "admin"]}
          value={role}
          onChange={(v) => setRole(v as Role | null)}
          error={errorAt(error, "role")}
        />
        <NumberInput label="Expires in days" description="Empty: never" min={1} max={3650} value={days} onChange={setDays} error={errorAt(error, "expires_in_days")} />
        {kind === "widget" && (
          <>
            <TextInput label="Allowed origins" description="https://host[:port], separated by spaces" value={origins} onChange={(e) => setOrigins(e.currentTarget.value)} error={errorAt(error, "allowed_origins")} />
            <TextInput label="Resource" description="The assistant or workflow id" value={resource} onChange={(e) => setResource(e.currentTarget.value)} error={errorAt(error, "resource")} />
          </>
        )}
        <Group justify="flex-end">
          <Button variant="default" onClick={props.onClose}>
            Cancel
          </Button>
          <Button onClick={submit} loading={busy}>
            Create key
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
