/** Small helpers of the agents area: field errors by path, tabs bound to routes, JSON, dates. */
import { Code, ScrollArea, Tabs } from "@mantine/core";
import { useMemo, useState } from "react";
import { useLocation, useNavigate } from "react-router-dom";
import { ApiError } from "../../api/client";

/** The API's message when its error names `field` or something inside it (`config.steps[0]`). */
export function errorAt(error: unknown, field: string): string | undefined {
  if (!(error instanceof ApiError) || !error.field) return undefined;
  const f = error.field.replace(/^body\./, "");
  return f === field || f.startsWith(`${field}.`) || f.startsWith(`${field}[`) ? error.message : undefined;
}

/** The error when no input of the form shows it (no field, or a field the form does not have). */
export function unplaced(error: unknown, fields: string[]): unknown {
  if (!error) return null;
  return fields.some((f) => errorAt(error, f)) ? null : error;
}

export function when(iso: string | null | undefined): string {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function JsonBlock(props: { value: unknown; label?: string }) {
  return (
    <ScrollArea.Autosize mah={320} type="auto">
      <Code block aria-label={props.label}>
        {JSON.stringify(props.value, null, 2)}
      </Code>
    </ScrollArea.Autosize>
  );
}

/** Tabs whose value is the route segment after `base` ("" for the first tab). */
export function RouteTabs(props: { base: string; tabs: { value: string; label: string }[] }) {
  const location = useLocation();
  const navigate = useNavigate();
  const rest = location.pathname.replace(/^\/console/, "").slice(props.base.length).replace(/^\//, "");
  const current = props.tabs.find((t) => t.value && rest.startsWith(t.value))?.value ?? "";
  return (
    <Tabs value={current || "main"} onChange={(v) => navigate(`${props.base}${v && v !== "main" ? `/${v}` : ""}`)} mb="md">
      <Tabs.List>
        {props.tabs.map((t) => (
          <Tabs.Tab key={t.value || "main"} value={t.value || "main"}>
            {t.label}
          </Tabs.Tab>
        ))}
      </Tabs.List>
    </Tabs>
  );
}

export const PAGE_SIZE = 20;

/** Pages over a list the API returns whole. */
export function useClientPage<T>(items: T[] | null | undefined, size = PAGE_SIZE) {
  const [offset, setOffset] = useState(0);
  const all = useMemo(() => items ?? [], [items]);
  const safe = offset >= all.length && all.length > 0 ? Math.floor((all.length - 1) / size) * size : offset;
  return { rows: all.slice(safe, safe + size), total: all.length, limit: size, offset: safe, onOffset: setOffset };
}

/** Parse a JSON object typed by the user: the object, or the reason it is not one. */
export function parseObject(text: string): { value?: Record<string, unknown>; error?: string } {
  if (!text.trim()) return { value: {} };
  try {
    const value: unknown = JSON.parse(text);
    if (value === null || typeof value !== "object" || Array.isArray(value)) return { error: "must be a JSON object" };
    return { value: value as Record<string, unknown> };
  } catch (e) {
    return { error: `not valid JSON: ${(e as Error).message}` };
  }
}
