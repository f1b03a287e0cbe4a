/** The next fire times of a cron expression, asked of the API as the expression is typed. */
import { Group, List, Loader, Text } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { useEffect, useState } from "react";
import { api, unwrap } from "../../api/client";
import type { components } from "../../api/schema";

type Preview = components["schemas"]["CronPreview"];

export function useCronPreview(expression: string, timezone: string, count = 5) {
  const [debounced] = useDebouncedValue(`${expression}\u0000${timezone}`, 300);
  const [preview, setPreview] = useState<Preview | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  useEffect(() => {
    const [expr, tz] = debounced.split("\u0000");
    if (!expr.trim()) {
      setPreview(null);
      setError(null);
      return;
    }
    let live = true;
    setLoading(true);
    unwrap(api.GET("/v1/cron/next", { params: { query: { expression: expr, timezone: tz || "UTC", count } } }))
      .then((p) => {
        if (!live) return;
        setPreview(p);
        setError(null);
      })
      .catch((e: unknown) => {
        if (!live) return;
        setPreview(null);
        setError(e instanceof Error ? e.message : String(e));
      })
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
  }, [debounced, count]);
  return { preview, error, loading };
}

/** The preview under a cron input: the description and the next fire times, or why it is wrong. */
export function CronPreview(props: { expression: string; timezone: string; count?: number }) {
  const { preview, error, loading } = useCronPreview(props.expression, props.timezone, props.count);
  if (!props.expression.trim()) return null;
  return (
    <div data-testid="cron-preview" aria-live="polite">
      {loading && !preview && !error && <Loader size="xs" />}
      {error && (
        <Text size="sm" c="red">
          {error}
        </Text>
      )}
      {preview && (
        <>
          <Group gap="xs">
            <Text size="sm" fw={500}>
              Next fire times
            </Text>
            <Text size="xs" c="dimmed">
              {preview.description}
            </Text>
          </Group>
          <List size="sm" aria-label="next fire times">
            {preview.next.map((instant) => (
              <List.Item key={instant}>
                <span title={instant}>{instant.replace("T", " ").replace("Z", " UTC")}</span>
              </List.Item>
            ))}
          </List>
        </>
      )}
    </div>
  );
}
