/** Small pieces every page uses: the page title bar, an API error, an empty state, a pager. */
import { Alert, Button, Code, Group, Pagination, Stack, Text, Title } from "@mantine/core";
import type { ReactNode } from "react";
import { ApiError } from "../api/client";

export function PageHeader(props: { title: string; description?: string; actions?: ReactNode }) {
  return (
    <Group justify="space-between" align="flex-start" mb="md">
      <Stack gap={4}>
        <Title order={2}>{props.title}</Title>
        {props.description && (
          <Text c="dimmed" size="sm">
            {props.description}
          </Text>
        )}
      </Stack>
      {props.actions && <Group>{props.actions}</Group>}
    </Group>
  );
}

/** An error answer shown as the API gave it: its message, code, field and request id. */
export function ErrorAlert(props: { error: unknown; title?: string }) {
  if (!props.error) return null;
  const error = props.error;
  const api = error instanceof ApiError ? error : null;
  return (
    <Alert color="red" title={props.title ?? "Request failed"} role="alert" mb="md">
      <Text size="sm">{error instanceof Error ? error.message : String(error)}</Text>
      {api && (
        <Text size="xs" c="dimmed" mt={4}>
          {api.status} <Code>{api.code}</Code>
          {api.field && (
            <>
              {" "}
              field <Code>{api.field}</Code>
            </>
          )}
          {api.requestId && <> · request {api.requestId}</>}
        </Text>
      )}
    </Alert>
  );
}

/** What to do when a list is empty. */
export function EmptyState(props: { title: string; hint: string; action?: ReactNode }) {
  return (
    <Stack align="center" gap="xs" py="xl" data-testid="empty-state">
      <Text fw={600}>{props.title}</Text>
      <Text c="dimmed" size="sm" ta="center" maw={460}>
        {props.hint}
      </Text>
      {props.action}
    </Stack>
  );
}

/** A pager over the API's `{items, total, limit, offset}` pages. */
export function Pager(props: { total: number; limit: number; offset: number; onOffset: (offset: number) => void }) {
  const pages = Math.max(1, Math.ceil(props.total / props.limit));
  if (pages <= 1) return null;
  return (
    <Group justify="center" mt="md">
      <Pagination
        total={pages}
        value={Math.floor(props.offset / props.limit) + 1}
        onChange={(page) => props.onOffset((page - 1) * props.limit)}
        aria-label="pages"
        getItemProps={(page) => ({ "aria-label": `page ${page}` })}
        getControlProps={(control) => ({ "aria-label": `${control} page` })}
      />
    </Group>
  );
}

export function RefreshButton(props: { onClick: () => void; loading?: boolean }) {
  return (
    <Button variant="default" onClick={props.onClick} loading={props.loading}>
      Refresh
    </Button>
  );
}

/** A status as a coloured word, the same colours everywhere. */
export function statusColor(status: string | null | undefined): string {
  switch ((status ?? "").toUpperCase()) {
    case "COMPLETED":
    case "SUCCEEDED":
    case "ACTIVE":
    case "READY":
      return "green";
    case "RUNNING":
    case "STREAMING":
    case "INDEXING":
    case "PROCESSING":
      return "blue";
    case "QUEUED":
    case "PENDING":
    case "WAITING":
    case "DRAFT":
      return "gray";
    case "FAILED":
    case "ERROR":
    case "INTERRUPTED":
      return "red";
    case "CANCELLED":
    case "CANCELED":
    case "INACTIVE":
      return "orange";
    default:
      return "gray";
  }
}
