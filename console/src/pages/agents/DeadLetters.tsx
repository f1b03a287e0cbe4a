/** Dead letters: events that failed every delivery; look at one, replay it or drop it. */
import { Badge, Button, Code, Drawer, Group, Stack, Table, Text } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useState } from "react";
import { api, unwrap } from "../../api/client";
import type { components } from "../../api/schema";
import { EmptyState, ErrorAlert, Pager, RefreshButton } from "../../components/common";
import { usePage } from "../../components/usePage";
import { ConfirmDelete } from "./AgentForm";
import { JsonBlock, PAGE_SIZE, when } from "./ui";

type DeadLetter = components["schemas"]["DeadLetter"];

function payload(letter: DeadLetter): unknown {
  try {
    return JSON.parse(letter.payload_json);
  } catch {
    return letter.payload_json;
  }
}

export function DeadLetters() {
  const [open, setOpen] = useState<DeadLetter | null>(null);
  const [deleting, setDeleting] = useState<DeadLetter | null>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [replaying, setReplaying] = useState<string | null>(null);
  const { page, error, loading, offset, setOffset, reload } = usePage<DeadLetter>((offset) =>
    unwrap(api.GET("/v1/dead-letters", { params: { query: { limit: PAGE_SIZE, offset } } })),
  );
  const replay = async (letter: DeadLetter) => {
    setReplaying(letter.id);
    try {
      const event = await unwrap(api.POST("/v1/dead-letters/{dead_letter_id}/replay", { params: { path: { dead_letter_id: letter.id } } }));
      notifications.show({ message: `Replayed as event ${event.id} on ${event.topic}` });
      setActionError(null);
      setOpen(null);
      reload();
    } catch (e) {
      setActionError(e);
    } finally {
      setReplaying(null);
    }
  };
  return (
    <Stack gap="sm">
      <Group justify="space-between">
        <Text size="sm" c="dimmed">
          An event lands here after its last failed delivery. Fix the cause (the task, its definition), then replay it.
        </Text>
        <RefreshButton onClick={reload} loading={loading} />
      </Group>
      <ErrorAlert error={error ?? actionError} />
      {page && page.items.length === 0 && (
        <EmptyState
          title="No dead letters"
          hint="Every event was delivered. When a task fails an event on every attempt, the event shows here to replay."
        />
      )}
      {page && page.items.length > 0 && (
        <Table aria-label="dead letters" highlightOnHover>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Topic</Table.Th>
              <Table.Th>Group</Table.Th>
              <Table.Th>Attempts</Table.Th>
              <Table.Th>Last error</Table.Th>
              <Table.Th>Dead since</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {page.items.map((letter) => (
              <Table.Tr key={letter.id}>
                <Table.Td>
                  <Code>{letter.topic}</Code>
                </Table.Td>
                <Table.Td>{letter.group}</Table.Td>
                <Table.Td>{letter.attempts}</Table.Td>
                <Table.Td>
                  <Text size="sm" lineClamp={1} maw={320}>
                    {letter.last_error}
                  </Text>
                </Table.Td>
                <Table.Td>{when(letter.dead_at)}</Table.Td>
                <Table.Td>
                  <Group gap="xs" wrap="nowrap">
                    <Button size="xs" variant="subtle" onClick={() => setOpen(letter)}>
                      Details
                    </Button>
                    <Button size="xs" variant="light" loading={replaying === letter.id} onClick={() => replay(letter)}>
                      Replay
                    </Button>
                    <Button size="xs" variant="subtle" color="red" onClick={() => setDeleting(letter)}>
                      Delete
                    </Button>
                  </Group>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {page && <Pager total={page.total} limit={page.limit} offset={offset} onOffset={setOffset} />}
      <Drawer opened={open !== null} onClose={() => setOpen(null)} position="right" size="lg" title="Dead letter">
        {open && (
          <Stack gap="sm">
            <Group>
              <Code>{open.topic}</Code>
              <Badge variant="dot" color="red">{open.attempts} attempts</Badge>
              {open.payload_truncated && <Badge variant="dot" color="orange">payload cut</Badge>}
            </Group>
            <Text size="sm">Event {open.event_id} · first failure {when(open.first_failure_at)} · last {when(open.last_failure_at)}</Text>
            <Text fw={600} size="sm">Last error</Text>
            <Code block>{open.last_error}</Code>
            <Text fw={600} size="sm">Payload</Text>
            <JsonBlock value={payload(open)} label="payload" />
            <Group>
              <Button onClick={() => replay(open)} loading={replaying === open.id}>
                Replay
              </Button>
            </Group>
          </Stack>
        )}
      </Drawer>
      <ConfirmDelete
        what={deleting ? `dead letter on ${deleting.topic}` : null}
        onClose={() => setDeleting(null)}
        onConfirm={async () => {
          if (!deleting) return;
          await unwrap(api.DELETE("/v1/dead-letters/{dead_letter_id}", { params: { path: { dead_letter_id: deleting.id } } }));
          reload();
        }}
      />
    </Stack>
  );
}
