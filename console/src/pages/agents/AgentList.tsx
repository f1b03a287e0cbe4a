/** The team's agents: a page of them, create, edit, delete. */
import { ActionIcon, Anchor, Badge, Button, Group, Menu, Stack, Table, Text } from "@mantine/core";
import { useState } from "react";
import { Link, useNavigate } from "react-router-dom";
import { api, unwrap } from "../../api/client";
import type { components } from "../../api/schema";
import { EmptyState, ErrorAlert, Pager, RefreshButton } from "../../components/common";
import { usePage } from "../../components/usePage";
import { AgentForm, ConfirmDelete } from "./AgentForm";
import { PAGE_SIZE, when } from "./ui";

type Agent = components["schemas"]["Agent"];

export function AgentList() {
  const navigate = useNavigate();
  const [editing, setEditing] = useState<Agent | null | undefined>(undefined); // undefined: closed, null: new
  const [deleting, setDeleting] = useState<Agent | null>(null);
  const { page, error, loading, offset, setOffset, reload } = usePage<Agent>((offset) =>
    unwrap(api.GET("/v1/agents", { params: { query: { limit: PAGE_SIZE, offset } } })),
  );
  return (
    <Stack gap="sm">
      <Group justify="flex-end">
        <RefreshButton onClick={reload} loading={loading} />
        <Button onClick={() => setEditing(null)}>New agent</Button>
      </Group>
      <ErrorAlert error={error} />
      {page && page.items.length === 0 && (
        <EmptyState
          title="No agents yet"
          hint="An agent groups tasks that run on a schedule, on events or on demand. Create one, then add its first task."
          action={<Button onClick={() => setEditing(null)}>Create an agent</Button>}
        />
      )}
      {page && page.items.length > 0 && (
        <Table highlightOnHover aria-label="agents">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Description</Table.Th>
              <Table.Th>State</Table.Th>
              <Table.Th>Concurrency</Table.Th>
              <Table.Th>Created</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {page.items.map((agent) => (
              <Table.Tr key={agent.id}>
                <Table.Td>
                  <Anchor component={Link} to={agent.id}>
                    {agent.name}
                  </Anchor>
                </Table.Td>
                <Table.Td>
                  <Text size="sm" c="dimmed" lineClamp={1}>
                    {agent.description || "—"}
                  </Text>
                </Table.Td>
                <Table.Td>
                  <Badge variant="dot" color={agent.enabled ? "green" : "orange"}>{agent.enabled ? "enabled" : "disabled"}</Badge>
                </Table.Td>
                <Table.Td>{agent.max_concurrency}</Table.Td>
                <Table.Td>{when(agent.created_at)}</Table.Td>
                <Table.Td>
                  <Menu position="bottom-end">
                    <Menu.Target>
                      <ActionIcon variant="subtle" aria-label={`actions for ${agent.name}`}>
                        ⋯
                      </ActionIcon>
                    </Menu.Target>
                    <Menu.Dropdown>
                      <Menu.Item onClick={() => navigate(agent.id)}>Open</Menu.Item>
                      <Menu.Item onClick={() => setEditing(agent)}>Edit</Menu.Item>
                      <Menu.Item color="red" onClick={() => setDeleting(agent)}>
                        Delete
                      </Menu.Item>
                    </Menu.Dropdown>
                  </Menu>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {page && <Pager total={page.total} limit={page.limit} offset={offset} onOffset={setOffset} />}
      <AgentForm
        opened={editing !== undefined}
        agent={editing}
        onClose={() => setEditing(undefined)}
        onSaved={(agent) => {
          const created = editing === null;
          setEditing(undefined);
          if (created) navigate(agent.id);
          else reload();
        }}
      />
      <ConfirmDelete
        what={deleting ? `agent ${deleting.name}` : null}
        onClose={() => setDeleting(null)}
        onConfirm={async () => {
          if (!deleting) return;
          await unwrap(api.DELETE("/v1/agents/{agent_id}", { params: { path: { agent_id: deleting.id } } }));
          reload();
        }}
      />
    </Stack>
  );
}
