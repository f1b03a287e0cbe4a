/** The audit log: who did what, when, with which outcome; filtered and paginated. */
import { Badge, Drawer, Group, Select, Stack, Table, Text, TextInput } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { useState } from "react";
import { api, unwrap } from "../../api/client";
import type { components } from "../../api/schema";
import { EmptyState, ErrorAlert, Pager, RefreshButton } from "../../components/common";
import { usePage } from "../../components/usePage";
import { JsonBlock, PAGE_SIZE, when } from "../agents/ui";

type AuditEvent = components["schemas"]["AuditEvent"];

export function Audit() {
  const [action, setAction] = useState("");
  const [actor, setActor] = useState("");
  const [outcome, setOutcome] = useState<string | null>(null);
  const [filters] = useDebouncedValue({ action, actor }, 300);
  const [open, setOpen] = useState<AuditEvent | null>(null);
  const { page, error, loading, offset, setOffset, reload } = usePage<AuditEvent>(
    (offset) =>
      unwrap(
        api.GET("/v1/audit", {
          params: {
            query: {
              action: filters.action.trim() || undefined,
              actor: filters.actor.trim() || undefined,
              outcome: outcome ?? undefined,
              limit: PAGE_SIZE,
              offset,
            },
          },
        }),
      ),
    [filters.action, filters.actor, outcome],
  );
  const filtered = Boolean(filters.action || filters.actor || outcome);
  return (
    <Stack gap="sm">
      <Group justify="space-between" align="flex-end">
        <Group align="flex-end">
          <TextInput label="Action" placeholder="e.g. api_key.create" value={action} onChange={(e) => { setOffset(0); setAction(e.currentTarget.value); }} />
          <TextInput label="Actor" placeholder="user or key" value={actor} onChange={(e) => { setOffset(0); setActor(e.currentTarget.value); }} />
          <Select label="Outcome" placeholder="any" clearable data={["success", "denied", "failure"]} value={outcome} onChange={(v) => { setOffset(0); setOutcome(v); }} w={140} />
        </Group>
        <RefreshButton onClick={reload} loading={loading} />
      </Group>
      <ErrorAlert error={error} />
      {page && page.items.length === 0 && (
        <EmptyState
          title={filtered ? "Nothing matches these filters" : "The audit log is empty"}
          hint={filtered ? "Clear a filter to see more events." : "Changes to access — keys, members, secrets, budgets — and denied requests are recorded here as they happen."}
        />
      )}
      {page && page.items.length > 0 && (
        <Table aria-label="audit events" highlightOnHover>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>When</Table.Th>
              <Table.Th>Actor</Table.Th>
              <Table.Th>Action</Table.Th>
              <Table.Th>Resource</Table.Th>
              <Table.Th>Outcome</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {page.items.map((event) => (
              <Table.Tr key={event.id} style={{ cursor: "pointer" }} onClick={() => setOpen(event)}>
                <Table.Td>{when(event.at)}</Table.Td>
                <Table.Td>
                  {event.actor} {event.source && <Text span size="xs" c="dimmed">({event.source})</Text>}
                </Table.Td>
                <Table.Td>{event.action}</Table.Td>
                <Table.Td>
                  <Text size="sm" lineClamp={1}>{event.resource ?? "—"}</Text>
                </Table.Td>
                <Table.Td>
                  <Badge variant="dot" color={event.outcome === "success" ? "green" : "red"}>
                    {event.outcome}
                    {event.status ? ` ${event.status}` : ""}
                  </Badge>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {page && <Pager total={page.total} limit={page.limit} offset={offset} onOffset={setOffset} />}
      <Drawer opened={open !== null} onClose={() => setOpen(null)} position="right" size="md" title={open?.action ?? ""}>
        {open && (
          <Stack gap="xs">
            <Text size="sm">At {when(open.at)} by {open.actor} ({open.source ?? "?"}) from {open.client_ip ?? "?"}</Text>
            <Text size="sm">Team {open.team ?? "—"} · {open.resource ?? "—"} · request {open.request_id ?? "—"}</Text>
            <JsonBlock value={open.details ?? {}} label="details" />
          </Stack>
        )}
      </Drawer>
    </Stack>
  );
}
