/** The team's assistants, newest first, a page at a time. */
import { Anchor, Badge, Button, Group, Select, Table, Text } from "@mantine/core";
import { useState } from "react";
import { Link } from "react-router-dom";
import { api, unwrap } from "../../api/client";
import { EmptyState, ErrorAlert, PageHeader, Pager, RefreshButton, statusColor } from "../../components/common";
import { usePage } from "../../components/usePage";
import { formatModel } from "./types";

const LIMIT = 20;
type StatusFilter = "ACTIVE" | "INACTIVE" | "DRAFT";

export function AssistantsList() {
  const [status, setStatus] = useState<StatusFilter | null>(null);
  const { page, error, loading, offset, setOffset, reload } = usePage(
    (offset) =>
      unwrap(
        api.GET("/v1/assistants", {
          params: { query: { limit: LIMIT, offset, ...(status ? { status } : {}) } },
        }),
      ),
    [status],
  );
  return (
    <>
      <PageHeader
        title="Assistants"
        description="Chat agents: a model, a system prompt, tasks and knowledge."
        actions={
          <>
            <Select
              aria-label="status filter"
              placeholder="any status"
              clearable
              w={150}
              data={["ACTIVE", "DRAFT", "INACTIVE"]}
              value={status}
              onChange={(value) => {
                setOffset(0);
                setStatus(value as StatusFilter | null);
              }}
            />
            <RefreshButton onClick={reload} loading={loading} />
            <Button component={Link} to="new">
              New assistant
            </Button>
          </>
        }
      />
      <ErrorAlert error={error} title="The assistants could not be loaded" />
      {page && page.items.length === 0 && (
        <EmptyState
          title="No assistants yet"
          hint="An assistant answers with a model and a system prompt, may call your agents' tasks and search your knowledge collections."
          action={
            <Button component={Link} to="new" variant="light">
              Create an assistant
            </Button>
          }
        />
      )}
      {page && page.items.length > 0 && (
        <Table striped highlightOnHover aria-label="assistants">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Model</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th>Version</Table.Th>
              <Table.Th>Updated</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {page.items.map((assistant) => (
              <Table.Tr key={assistant.id}>
                <Table.Td>
                  <Anchor component={Link} to={assistant.id} fw={600}>
                    {assistant.name}
                  </Anchor>
                  {assistant.description && (
                    <Text size="xs" c="dimmed" lineClamp={1}>
                      {assistant.description}
                    </Text>
                  )}
                </Table.Td>
                <Table.Td>
                  <Text size="sm" ff="monospace">
                    {formatModel(assistant.defaultModel) || "default"}
                  </Text>
                </Table.Td>
                <Table.Td>
                  <Badge variant="dot" color={statusColor(assistant.status)}>{assistant.status}</Badge>
                </Table.Td>
                <Table.Td>{assistant.version}</Table.Td>
                <Table.Td>
                  <Text size="sm">{new Date(assistant.updated_at ?? assistant.created_at).toLocaleString()}</Text>
                </Table.Td>
                <Table.Td>
                  <Group gap="xs" justify="flex-end">
                    <Button size="xs" variant="light" component={Link} to={assistant.id}>
                      Chat
                    </Button>
                    <Button size="xs" variant="default" component={Link} to={`${assistant.id}/edit`}>
                      Edit
                    </Button>
                  </Group>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {page && <Pager total={page.total} limit={LIMIT} offset={offset} onOffset={setOffset} />}
    </>
  );
}
