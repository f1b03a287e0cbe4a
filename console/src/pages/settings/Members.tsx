/** The team's members: their roles and status; add one by user id, change or remove. */
import { Badge, Button, Group, Modal, Select, Stack, Table, Text, TextInput } from "@mantine/core";
import { useEffect, useState } from "react";
import { api, unwrap } from "../../api/client";
import type { components } from "../../api/schema";
import { EmptyState, ErrorAlert, Pager, RefreshButton } from "../../components/common";
import { usePage } from "../../components/usePage";
import { ConfirmDelete } from "../agents/AgentForm";
import { errorAt, PAGE_SIZE, unplaced, when } from "../agents/ui";

type Member = components["schemas"]["Member"];
type Role = "viewer" | "member" | "admin";
type Status = "active" | "suspended";

export function Members() {
  const [editing, setEditing] = useState<Member | null | undefined>(undefined);
  const [removing, setRemoving] = useState<Member | null>(null);
  const { page, error, loading, offset, setOffset, reload } = usePage<Member>((offset) =>
    unwrap(api.GET("/v1/members", { params: { query: { limit: PAGE_SIZE, offset } } })),
  );
  return (
    <Stack gap="sm">
      <Group justify="space-between">
        <Text size="sm" c="dimmed">
          A member's role decides what they can do in this team: viewers read, members build and run, admins manage access and keys.
        </Text>
        <Group>
          <RefreshButton onClick={reload} loading={loading} />
          <Button onClick={() => setEditing(null)}>Add member</Button>
        </Group>
      </Group>
      <ErrorAlert error={error} />
      {page && page.items.length === 0 && (
        <EmptyState
          title="No members recorded"
          hint="Add a member by the user id their sign-in gives (the token's subject) and choose a role."
          action={<Button onClick={() => setEditing(null)}>Add a member</Button>}
        />
      )}
      {page && page.items.length > 0 && (
        <Table aria-label="members">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>User</Table.Th>
              <Table.Th>Role</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th>Updated</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {page.items.map((member) => (
              <Table.Tr key={member.user_id}>
                <Table.Td>{member.user_id}</Table.Td>
                <Table.Td>{member.role}</Table.Td>
                <Table.Td>
                  <Badge variant="dot" color={member.status === "active" ? "green" : "orange"}>{member.status}</Badge>
                </Table.Td>
                <Table.Td>
                  {when(member.updated_at ?? member.created_at)} {member.updated_by && <Text span size="xs" c="dimmed">by {member.updated_by}</Text>}
                </Table.Td>
                <Table.Td>
                  <Group gap="xs" justify="flex-end" wrap="nowrap">
                    <Button size="xs" variant="light" onClick={() => setEditing(member)}>
                      Change
                    </Button>
                    <Button size="xs" variant="subtle" color="red" onClick={() => setRemoving(member)}>
                      Remove
                    </Button>
                  </Group>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {page && <Pager total={page.total} limit={page.limit} offset={offset} onOffset={setOffset} />}
      <MemberForm
        opened={editing !== undefined}
        member={editing ?? null}
        onClose={() => setEditing(undefined)}
        onSaved={() => {
          setEditing(undefined);
          reload();
        }}
      />
      <ConfirmDelete
        label="Remove"
        what={removing ? `member ${removing.user_id}` : null}
        onClose={() => setRemoving(null)}
        onConfirm={async () => {
          if (!removing) return;
          await unwrap(api.DELETE("/v1/members/{user_id}", { params: { path: { user_id: removing.user_id } } }));
          reload();
        }}
      />
    </Stack>
  );
}

function MemberForm(props: { opened: boolean; member: Member | null; onClose: () => void; onSaved: () => void }) {
  const [userId, setUserId] = useState("");
  const [role, setRole] = useState<Role>("member");
  const [status, setStatus] = useState<Status>("active");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (!props.opened) return;
    setUserId(props.member?.user_id ?? "");
    setRole((props.member?.role as Role) ?? "member");
    setStatus((props.member?.status as Status) ?? "active");
    setError(null);
  }, [props.opened, props.member]);
  const save = async () => {
    setBusy(true);
    try {
      if (!userId.trim()) throw Object.assign(new Error("a user id is needed"), { local: true });
      await unwrap(api.PUT("/v1/members/{user_id}", { params: { path: { user_id: userId.trim() } }, body: { role, status } }));
      props.onSaved();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const local = error instanceof Error && (error as Error & { local?: boolean }).local ? error.message : undefined;
  return (
    <Modal opened={props.opened} onClose={props.onClose} title={props.member ? `Change ${props.member.user_id}` : "Add member"}>
      <Stack>
        <ErrorAlert error={local ? null : unplaced(error, ["user_id", "role", "status"])} />
        <TextInput label="User id" required disabled={!!props.member} value={userId} onChange={(e) => setUserId(e.currentTarget.value)} error={local ?? errorAt(error, "user_id")} />
        <Select label="Role" data={["viewer", "member", "admin"]} value={role} allowDeselect={false} onChange={(v) => setRole((v ?? "member") as Role)} error={errorAt(error, "role")} />
        <Select label="Status" data={["active", "suspended"]} value={status} allowDeselect={false} onChange={(v) => setStatus((v ?? "active") as Status)} error={errorAt(error, "status")} />
        <Group justify="flex-end">
          <Button variant="default" onClick={props.onClose}>
            Cancel
          </Button>
          <Button onClick={save} loading={busy}>
            Save
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
