/**
 * One collection: upload files — dropped on the drop zone or chosen from it, several at once, each
 * sent at once with its upload progress (XMLHttpRequest for its progress events, with the
 * console's own auth headers) — then each document's ingestion
 * (PENDING → PROCESSING → READY | FAILED, polled while any is on its way), and search.
 */
import "@mantine/dropzone/styles.css";
import {
  Badge,
  Button,
  Code,
  Group,
  Loader,
  NumberInput,
  Paper,
  Progress,
  SimpleGrid,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from "@mantine/core";
import { Dropzone, type FileRejection } from "@mantine/dropzone";
import { useCallback, useEffect, useRef, useState, type FormEvent } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { ApiError, api, authHeaders, fieldError, unwrap } from "../../api/client";
import { EmptyState, ErrorAlert, PageHeader, Pager, statusColor } from "../../components/common";
import { DeleteCollection } from "./CollectionsList";
import { formatBytes, type CollectionStats, type KnowledgeDocument, type SearchHit, type UploadedDocument } from "./types";

const DOCS = 50;
const POLL_MS = 1000;
const BUSY = new Set(["PENDING", "PROCESSING"]);
const DROP_HERE = "Drop files here to upload, or click to choose them";
/** What the API ingests, by MIME type and extension (a file matching either is taken). */
const ACCEPT = {
  "text/plain": [".txt", ".text", ".log", ".csv"],
  "text/markdown": [".md", ".markdown"],
  "text/html": [".html", ".htm"],
  "application/pdf": [".pdf"],
};

interface Upload {
  key: string;
  name: string;
  size: number;
  loaded: number;
  state: "uploading" | "uploaded" | "failed";
  documentId?: string;
  duplicate?: boolean;
  error?: string;
}

/** POST one file as multipart, reporting the bytes sent; resolves with the PENDING document. */
function uploadFile(collection: string, file: File, onProgress: (loaded: number) => void): Promise<UploadedDocument> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${window.location.origin}/v1/knowledge/collections/${encodeURIComponent(collection)}/documents`);
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      let body: unknown = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(file.size);
        resolve(body as UploadedDocument);
        return;
      }
      const inner = ((body ?? {}) as { error?: { code?: string; message?: string; field?: string } }).error ?? {};
      reject(
        new ApiError(
          xhr.status,
          inner.code ?? `http_${xhr.status}`,
          inner.message ?? (xhr.statusText || "upload failed"),
          inner.field,
          xhr.getResponseHeader("X-Request-Id") ?? undefined,
        ),
      );
    };
    xhr.onerror = () => reject(new Error("the upload failed: the connection was lost"));
    xhr.onabort = () => reject(new Error("the upload was aborted"));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

export function CollectionPage() {
  const { id = "" } = useParams();
  const navigate = useNavigate();
  const [stats, setStats] = useState<CollectionStats | null>(null);
  const [statsError, setStatsError] = useState<unknown>(null);
  const [docs, setDocs] = useState<{ items: KnowledgeDocument[]; total: number } | null>(null);
  const [docsError, setDocsError] = useState<unknown>(null);
  const [offset, setOffset] = useState(0);
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [deleting, setDeleting] = useState(false);
  const uploadKeys = useRef(0);

  const loadStats = useCallback(() => {
    unwrap(api.GET("/v1/knowledge/collections/{collection_id}", { params: { path: { collection_id: id } } }))
      .then((s) => {
        setStats(s);
        setStatsError(null);
      })
      .catch(setStatsError);
  }, [id]);

  const loadDocs = useCallback(() => {
    unwrap(
      api.GET("/v1/knowledge/collections/{collection_id}/documents", {
        params: { path: { collection_id: id }, query: { limit: DOCS, offset } },
      }),
    )
      .then((page) => {
        setDocs({ items: page.items, total: page.total });
        setDocsError(null);
      })
      .catch(setDocsError);
  }, [id, offset]);

  useEffect(loadStats, [loadStats]);
  useEffect(loadDocs, [loadDocs]);

  // while a document is being ingested (or a file is still going up), look again every second
  const working =
    uploads.some((u) => u.state === "uploading") || (docs?.items.some((d) => BUSY.has(d.status)) ?? false);
  useEffect(() => {
    if (!working) return;
    const timer = window.setInterval(() => {
      loadDocs();
      loadStats();
    }, POLL_MS);
    return () => window.clearInterval(timer);
  }, [working, loadDocs, loadStats]);

  /** Files dropped or chosen: each goes up at once; one of a type the API does not take is
   * listed as failed with the reason, and not sent. */
  function startUploads(accepted: File[], rejected: FileRejection[] = []) {
    const refused: Upload[] = rejected.map(({ file, errors }) => ({
      key: `up-${++uploadKeys.current}`,
      name: file.name,
      size: file.size,
      loaded: 0,
      state: "failed",
      error: errors.map((e) => e.message).join("; "),
    }));
    if (refused.length) setUploads((all) => [...refused, ...all]);
    for (const file of accepted) {
      const key = `up-${++uploadKeys.current}`;
      const change = (patch: Partial<Upload>) =>
        setUploads((all) => all.map((u) => (u.key === key ? { ...u, ...patch } : u)));
      setUploads((all) => [{ key, name: file.name, size: file.size, loaded: 0, state: "uploading" }, ...all]);
      uploadFile(id, file, (loaded) => change({ loaded }))
        .then((doc) => {
          change({ state: "uploaded", documentId: doc.id, duplicate: doc.duplicate });
          loadDocs();
          loadStats();
        })
        .catch((err: unknown) => change({ state: "failed", error: err instanceof Error ? err.message : String(err) }));
    }
  }

  async function removeDocument(doc: KnowledgeDocument) {
    try {
      await unwrap(
        api.DELETE("/v1/knowledge/collections/{collection_id}/documents/{doc_id}", {
          params: { path: { collection_id: id, doc_id: doc.id } },
        }),
      );
      loadDocs();
      loadStats();
    } catch (err) {
      setDocsError(err);
    }
  }

  async function reindex(doc: KnowledgeDocument) {
    try {
      await unwrap(
        api.POST("/v1/knowledge/collections/{collection_id}/documents/{doc_id}/reindex", {
          params: { path: { collection_id: id, doc_id: doc.id } },
        }),
      );
      loadDocs();
    } catch (err) {
      setDocsError(err);
    }
  }

  if (statsError) return <ErrorAlert error={statsError} title="The collection could not be loaded" />;
  if (!stats) return <Loader aria-label="loading" />;
  const byId = new Map((docs?.items ?? []).map((d) => [d.id, d]));
  const counts = stats.documents as Record<string, number>;
  return (
    <>
      <PageHeader
        title={stats.name}
        description={stats.description || `Embedded with ${stats.embedder} (${stats.dimension} dimensions).`}
        actions={
          <>
            <Button variant="subtle" component={Link} to="/knowledge">
              All collections
            </Button>
            <Button color="red" variant="light" onClick={() => setDeleting(true)}>
              Delete collection
            </Button>
          </>
        }
      />
      <Group gap="xs" mb="md" aria-label="document counts">
        <Text size="sm" c="dimmed">
          <Code>{stats.id}</Code>
        </Text>
        {Object.entries(counts ?? {}).map(([status, count]) => (
          <Badge key={status} color={statusColor(status)} variant="dot">
            {status.toLowerCase()} {count}
          </Badge>
        ))}
      </Group>
      <SimpleGrid cols={{ base: 1, md: 2 }} mb="md">
        <Paper withBorder p="md" component="section" aria-label="upload">
          <Title order={5} mb="xs">
            Upload
          </Title>
          <Dropzone
            onDrop={(accepted) => startUploads(accepted)}
            onReject={(rejected) => startUploads([], rejected)}
            accept={ACCEPT}
            multiple
            role="button"
            aria-label={DROP_HERE}
            aria-describedby="upload-hint"
            // out of the accessibility tree (the zone is the control); the zone still opens it
            inputProps={{ "aria-label": "files to upload", style: { display: "none" } }}
          >
            <Stack align="center" gap={4} py="md">
              <Dropzone.Accept>
                <Text fw={600}>Drop to upload</Text>
              </Dropzone.Accept>
              <Dropzone.Reject>
                <Text fw={600} c="var(--mantine-color-error)">
                  Only txt, md, html or pdf files
                </Text>
              </Dropzone.Reject>
              <Dropzone.Idle>
                <Text fw={600}>{DROP_HERE}</Text>
              </Dropzone.Idle>
            </Stack>
          </Dropzone>
          <Text size="xs" c="dimmed" id="upload-hint" mt={4}>
            txt, md, html or pdf (UTF-8 text); several at once. Each is uploaded as soon as it is dropped.
          </Text>
          {uploads.length > 0 && (
            <Stack gap="xs" mt="md" aria-label="uploads">
              {uploads.map((u) => {
                const doc = u.documentId ? byId.get(u.documentId) : undefined;
                return (
                  <Stack key={u.key} gap={2} data-testid="upload" data-state={u.state}>
                    <Group justify="space-between" gap="xs">
                      <Text size="sm" fw={500} truncate maw="60%">
                        {u.name}
                      </Text>
                      <Text size="xs" c={u.state === "failed" ? "var(--mantine-color-error)" : "dimmed"}>
                        {u.state === "uploading" && `uploading ${formatBytes(u.loaded)} of ${formatBytes(u.size)}`}
                        {u.state === "uploaded" && (u.duplicate ? "already in the collection" : "uploaded")}
                        {u.state === "failed" && "failed"}
                        {doc && ` · ${doc.status.toLowerCase()}`}
                      </Text>
                    </Group>
                    <Progress
                      value={u.size ? Math.min(100, (u.loaded / u.size) * 100) : 100}
                      color={u.state === "failed" ? "red" : u.state === "uploaded" ? "green" : "blue"}
                      animated={u.state === "uploading"}
                      aria-label={`upload of ${u.name}`}
                    />
                    {u.error && (
                      <Text size="xs" c="var(--mantine-color-error)">
                        {u.error}
                      </Text>
                    )}
                  </Stack>
                );
              })}
            </Stack>
          )}
        </Paper>
        <SearchBox collection={stats.id} />
      </SimpleGrid>
      <Title order={4} mb="xs">
        Documents
      </Title>
      <ErrorAlert error={docsError} />
      {docs && docs.items.length === 0 && (
        <EmptyState title="No documents yet" hint="Upload files above: each is split into chunks, embedded and indexed." />
      )}
      {docs && docs.items.length > 0 && (
        <Table aria-label="documents">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Document</Table.Th>
              <Table.Th>Size</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th>Ingestion</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {docs.items.map((d) => (
              <DocumentRow key={d.id} doc={d} onDelete={() => removeDocument(d)} onReindex={() => reindex(d)} />
            ))}
          </Table.Tbody>
        </Table>
      )}
      {docs && <Pager total={docs.total} limit={DOCS} offset={offset} onOffset={setOffset} />}
      <DeleteCollection
        collection={deleting ? stats : null}
        onClose={() => setDeleting(false)}
        onDeleted={() => navigate("/knowledge")}
      />
    </>
  );
}

function DocumentRow(props: { doc: KnowledgeDocument; onDelete: () => void; onReindex: () => void }) {
  const d = props.doc;
  const done = d.chunks_done ?? 0;
  const total = d.chunks_total ?? 0;
  const percent = d.status === "READY" ? 100 : total ? (done / total) * 100 : 0;
  return (
    <Table.Tr data-testid="document" data-status={d.status}>
      <Table.Td>
        <Text size="sm" fw={500}>
          {d.title || d.file_name || d.id}
        </Text>
        {d.file_name && d.title && d.file_name !== d.title && (
          <Text size="xs" c="dimmed">
            {d.file_name}
          </Text>
        )}
      </Table.Td>
      <Table.Td>
        <Text size="sm">{formatBytes(d.size)}</Text>
      </Table.Td>
      <Table.Td>
        <Badge variant="dot" color={statusColor(d.status)} data-testid="document-status">
          {d.status}
        </Badge>
      </Table.Td>
      <Table.Td miw={180}>
        {BUSY.has(d.status) ? (
          <Stack gap={2}>
            <Progress value={percent} animated aria-label={`ingestion of ${d.title ?? d.id}`} />
            <Text size="xs" c="dimmed">
              {total ? `${done} of ${total} chunks` : "waiting"}
            </Text>
          </Stack>
        ) : d.status === "FAILED" ? (
          <Text size="xs" c="var(--mantine-color-error)">
            {d.error ?? "failed"}
          </Text>
        ) : (
          <Text size="xs" c="dimmed">
            {total} {total === 1 ? "chunk" : "chunks"}{d.tokens ? `, ${d.tokens} tokens` : ""}
            {d.pages ? `, ${d.pages} pages` : ""}
          </Text>
        )}
      </Table.Td>
      <Table.Td>
        <Group gap={4} justify="flex-end" wrap="nowrap">
          {(d.status === "FAILED" || d.status === "READY") && (
            <Button size="xs" variant="subtle" onClick={props.onReindex}>
              Reindex
            </Button>
          )}
          <Button size="xs" variant="subtle" color="red" onClick={props.onDelete} aria-label={`delete ${d.title ?? d.id}`}>
            Delete
          </Button>
        </Group>
      </Table.Td>
    </Table.Tr>
  );
}

function SearchBox(props: { collection: string }) {
  const [query, setQuery] = useState("");
  const [topK, setTopK] = useState<number | string>(5);
  const [hits, setHits] = useState<SearchHit[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  async function search(event: FormEvent) {
    event.preventDefault();
    if (!query.trim()) return;
    setBusy(true);
    setError(null);
    try {
      const found = await unwrap(
        api.POST("/v1/knowledge/collections/{collection_id}/search", {
          params: { path: { collection_id: props.collection } },
          body: { query, top_k: Number(topK) || 5 },
        }),
      );
      setHits(found.results as SearchHit[]);
    } catch (err) {
      setError(err);
      setHits(null);
    } finally {
      setBusy(false);
    }
  }
  const named = fieldError(error, "query") || fieldError(error, "top_k");
  return (
    <Paper withBorder p="md" component="section" aria-label="search">
      <Title order={5} mb="xs">
        Search
      </Title>
      <form onSubmit={search} aria-label="search collection">
        <Group align="flex-end" wrap="nowrap">
          <TextInput
            label="Query"
            placeholder="what are you looking for?"
            style={{ flex: 1 }}
            value={query}
            onChange={(e) => setQuery(e.currentTarget.value)}
            error={fieldError(error, "query")}
          />
          <NumberInput
            label="Top"
            w={80}
            min={1}
            max={100}
            value={topK}
            onChange={setTopK}
            error={fieldError(error, "top_k")}
          />
          <Button type="submit" loading={busy} disabled={!query.trim()}>
            Search
          </Button>
        </Group>
      </form>
      {!named && <ErrorAlert error={error} title="Search failed" />}
      {hits && hits.length === 0 && (
        <Text size="sm" c="dimmed" mt="md">
          Nothing found.
        </Text>
      )}
      {hits && hits.length > 0 && (
        <Stack gap="xs" mt="md" aria-label="search results">
          {hits.map((hit, i) => (
            <Paper key={`${hit.document_id}-${hit.chunk_index ?? i}`} withBorder p="xs" data-testid="search-hit">
              <Group gap="xs" justify="space-between">
                <Group gap="xs">
                  <Badge size="sm" variant="default">
                    {hit.rank}
                  </Badge>
                  <Text size="sm" fw={600} data-testid="hit-source">
                    {hit.title || hit.file_name || hit.document_id}
                  </Text>
                  {hit.file_name && hit.title && hit.file_name !== hit.title && (
                    <Text size="xs" c="dimmed">
                      {hit.file_name}
                    </Text>
                  )}
                  {Array.isArray(hit.page_numbers) && hit.page_numbers.length > 0 && (
                    <Text size="xs" c="dimmed">
                      p. {hit.page_numbers.join(", ")}
                    </Text>
                  )}
                </Group>
                <Text size="xs" c="dimmed" data-testid="hit-score">
                  score {hit.score.toFixed(3)}
                </Text>
              </Group>
              <Text size="sm" mt={4} style={{ whiteSpace: "pre-wrap" }} lineClamp={6} data-testid="hit-text">
                {hit.text}
              </Text>
              {hit.document_id && (
                <Text size="xs" c="dimmed" ff="monospace">
                  {hit.document_id}
                  {hit.chunk_index !== undefined && ` · chunk ${hit.chunk_index}`}
                </Text>
              )}
            </Paper>
          ))}
        </Stack>
      )}
    </Paper>
  );
}
