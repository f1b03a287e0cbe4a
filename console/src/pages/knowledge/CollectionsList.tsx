/** The team's knowledge collections: a page at a time, a new one, deleting one. */
import { Anchor, Button, Group, Modal, Stack, Table, Text, TextInput } from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { notifications } from "@mantine/notifications";
import { useState, type FormEvent } from "react";
import { Link, useNavigate } from "react-router-dom";
import { ApiError, api, fieldError, unwrap } from "../../api/client";
import { EmptyState, ErrorAlert, PageHeader, Pager, RefreshButton } from "../../components/common";
import { usePage } from "../../components/usePage";
import type { Collection } from "./types";

const LIMIT = 20;

export function CollectionsList() {
  const { page, error, loading, offset, setOffset, reload } = usePage((offset) =>
    unwrap(api.GET("/v1/knowledge/collections", { params: { query: { limit: LIMIT, offset } } })),
  );
  const [creating, create] = useDisclosure(false);
  const [deleting, setDeleting] = useState<Collection | null>(null);
  return (
    <>
      <PageHeader
        title="Knowledge"
        description="Collections of documents, embedded and searched with citations."
        actions={
          <>
            <RefreshButton onClick={reload} loading={loading} />
            <Button onClick={create.open}>New collection</Button>
          </>
        }
      />
      <ErrorAlert error={error} title="The collections could not be loaded" />
      {page && page.items.length === 0 && (
        <EmptyState
          title="No collections yet"
          hint="A collection holds documents (text, Markdown, HTML, PDF); assistants and workflows search it."
          action={
            <Button variant="light" onClick={create.open}>
              Create a collection
            </Button>
          }
        />
      )}
      {page && page.items.length > 0 && (
        <Table striped highlightOnHover aria-label="collections">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Embedder</Table.Th>
              <Table.Th>Chunks</Table.Th>
              <Table.Th>Created</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {page.items.map((c) => (
              <Table.Tr key={c.id}>
                <Table.Td>
                  <Anchor component={Link} to={c.id} fw={600}>
                    {c.name}
                  </Anchor>
                  {c.description && (
                    <Text size="xs" c="dimmed" lineClamp={1}>
                      {c.description}
                    </Text>
                  )}
                </Table.Td>
                <Table.Td>
                  <Text size="sm" ff="monospace">
                    {c.embedder} ({c.dimension})
                  </Text>
                </Table.Td>
                <Table.Td>
                  <Text size="sm">
                    {c.chunk_tokens} tokens, {c.chunk_overlap} overlap
                  </Text>
                </Table.Td>
                <Table.Td>
                  <Text size="sm">{new Date(c.created_at).toLocaleString()}</Text>
                </Table.Td>
                <Table.Td>
                  <Group justify="flex-end">
                    <Button size="xs" color="red" variant="subtle" onClick={() => setDeleting(c)} aria-label={`delete ${c.name}`}>
                      Delete
                    </Button>
                  </Group>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {page && <Pager total={page.total} limit={LIMIT} offset={offset} onOffset={setOffset} />}
      <CreateCollection opened={creating} onClose={create.close} />
      <DeleteCollection collection={deleting} onClose={() => setDeleting(null)} onDeleted={reload} />
    </>
  );
}

function CreateCollection(props: { opened: boolean; onClose: () => void }) {
  const navigate = useNavigate();
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [saving, setSaving] = useState(false);
  async function submit(event: FormEvent) {
    event.preventDefault();
    setSaving(true);
    setError(null);
    try {
      const made = await unwrap(api.POST("/v1/knowledge/collections", { body: { name: name.trim(), description } }));
      notifications.show({ color: "green", closeButtonProps: { "aria-label": "close" }, message: `Collection ${made.name} created` });
      props.onClose();
      navigate(made.id);
    } catch (err) {
      setError(err);
    } finally {
      setSaving(false);
    }
  }
  const named = error instanceof ApiError && (fieldError(error, "name") || fieldError(error, "description"));
  return (
    <Modal opened={props.opened} onClose={props.onClose} title="New collection">
      <form onSubmit={submit} noValidate aria-label="new collection">
        <Stack>
          {!named && <ErrorAlert error={error} title="Not created" />}
          <TextInput
            label="Name"
            description="Letters, digits, _ . - (it addresses the collection like its id)"
            required
            data-autofocus
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
          <Group justify="flex-end">
            <Button variant="default" onClick={props.onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={saving}>
              Create
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

export function DeleteCollection(props: { collection: Collection | null; onClose: () => void; onDeleted: () => void }) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  async function remove() {
    if (!props.collection) return;
    setBusy(true);
    try {
      await unwrap(
        api.DELETE("/v1/knowledge/collections/{collection_id}", {
          params: { path: { collection_id: props.collection.id } },
        }),
      );
      notifications.show({ closeButtonProps: { "aria-label": "close" }, message: `Collection ${props.collection.name} deleted` });
      setError(null);
      props.onClose();
      props.onDeleted();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  return (
    <Modal opened={props.collection !== null} onClose={props.onClose} title="Delete collection">
      <Stack>
        <ErrorAlert error={error} title="Not deleted" />
        <Text size="sm">
          Delete <b>{props.collection?.name}</b> with its documents, files and vectors? This cannot be undone.
        </Text>
        <Group justify="flex-end">
          <Button variant="default" onClick={props.onClose}>
            Keep it
          </Button>
          <Button color="red" onClick={remove} loading={busy}>
            Delete
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
