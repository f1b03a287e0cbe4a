/** Provider keys of the team: set one (sealed, never shown back), see which are set, delete. */
import { Button, Card, Code, Group, PasswordInput, Stack, Table, Text, TextInput } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useEffect, useState } from "react";
import { api, unwrap } from "../../api/client";
import type { components } from "../../api/schema";
import { EmptyState, ErrorAlert, Pager, RefreshButton } from "../../components/common";
import { ConfirmDelete } from "../agents/AgentForm";
import { errorAt, unplaced, useClientPage, when } from "../agents/ui";

type SecretView = components["schemas"]["SecretView"];

export function Secrets() {
  const [secrets, setSecrets] = useState<SecretView[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [provider, setProvider] = useState("");
  const [value, setValue] = useState("");
  const [formError, setFormError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [deleting, setDeleting] = useState<SecretView | null>(null);
  const reload = () => {
    setLoading(true);
    unwrap(api.GET("/v1/secrets"))
      .then((list) => {
        setSecrets(list.items);
        setError(null);
      })
      .catch(setError)
      .finally(() => setLoading(false));
  };
  useEffect(reload, []);
  const paged = useClientPage(secrets);
  const save = async () => {
    setBusy(true);
    try {
      const name = provider.trim();
      if (!name) throw Object.assign(new Error("name the provider, e.g. openai"), { local: true });
      const saved = await unwrap(api.PUT("/v1/secrets/{provider}", { params: { path: { provider: name } }, body: { value } }));
      setValue(""); // never kept
      setFormError(null);
      notifications.show({ message: `Key for ${saved.provider} stored (…${saved.last4})` });
      reload();
    } catch (e) {
      setFormError(e);
    } finally {
      setBusy(false);
    }
  };
  const local = formError instanceof Error && (formError as Error & { local?: boolean }).local ? formError.message : undefined;
  return (
    <Stack gap="sm">
      <Card withBorder>
        <Stack>
          <Text fw={600}>Set a provider key</Text>
          <Text size="sm" c="dimmed">
            The team's own key for a provider replaces the platform's for its calls. It is stored sealed and never shown again: only its last four characters.
          </Text>
          <ErrorAlert error={local ? null : unplaced(formError, ["provider", "value"])} />
          <Group align="flex-start" grow>
            <TextInput label="Provider" placeholder="openai" value={provider} onChange={(e) => setProvider(e.currentTarget.value)} error={local ?? errorAt(formError, "provider")} />
            <PasswordInput label="API key" value={value} onChange={(e) => setValue(e.currentTarget.value)} error={errorAt(formError, "value")} autoComplete="off" />
          </Group>
          <Group justify="flex-end">
            <Button onClick={save} loading={busy}>
              Save key
            </Button>
          </Group>
        </Stack>
      </Card>
      <Group justify="flex-end">
        <RefreshButton onClick={reload} loading={loading} />
      </Group>
      <ErrorAlert error={error} />
      {secrets && secrets.length === 0 && (
        <EmptyState title="No provider keys" hint="The platform's keys are used. Set a provider's key above to bill its calls to your own account." />
      )}
      {paged.total > 0 && (
        <Table aria-label="provider keys">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Provider</Table.Th>
              <Table.Th>Key</Table.Th>
              <Table.Th>Updated</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {paged.rows.map((secret) => (
              <Table.Tr key={secret.provider}>
                <Table.Td>{secret.provider}</Table.Td>
                <Table.Td>
                  <Code>…{secret.last4}</Code>
                </Table.Td>
                <Table.Td>{when(secret.updated_at)}</Table.Td>
                <Table.Td>
                  <Group gap="xs" justify="flex-end">
                    <Button size="xs" variant="subtle" onClick={() => setProvider(secret.provider)}>
                      Replace
                    </Button>
                    <Button size="xs" variant="subtle" color="red" onClick={() => setDeleting(secret)}>
                      Delete
                    </Button>
                  </Group>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      <Pager {...paged} />
      <ConfirmDelete
        what={deleting ? `the ${deleting.provider} key` : null}
        onClose={() => setDeleting(null)}
        onConfirm={async () => {
          if (!deleting) return;
          await unwrap(api.DELETE("/v1/secrets/{provider}", { params: { path: { provider: deleting.provider } } }));
          reload();
        }}
      />
    </Stack>
  );
}
