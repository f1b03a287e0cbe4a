/** A Gantt timeline of an execution's steps: one row per step, its bar from started to finished
 * (to now while it runs), coloured by status, with its attempts, runs and cache hits. */
import { Badge, Box, Group, Paper, Stack, Text, UnstyledButton } from "@mantine/core";
import { statusColor } from "../../components/common";
import type { StepRecord } from "./types";

const LABEL_W = 280;
const RIGHT_W = 200;

function ms(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

export function formatMs(value: number | null | undefined): string {
  if (value == null) return "—";
  if (value < 1000) return `${Math.round(value)} ms`;
  if (value < 60_000) return `${(value / 1000).toFixed(2)} s`;
  return `${Math.floor(value / 60_000)} min ${Math.round((value % 60_000) / 1000)} s`;
}

export function stepColor(status: string): string {
  return status === "SKIPPED" ? "gray" : statusColor(status === "QUEUED" ? "QUEUED" : status);
}

export function Timeline(props: {
  steps: StepRecord[];
  startedAt: string | null | undefined;
  finishedAt: string | null | undefined;
  now: number;
  onOpen: (step: StepRecord) => void;
}) {
  const starts = props.steps.map((s) => ms(s.started_at)).filter((t): t is number => t !== null);
  const t0 = ms(props.startedAt) ?? (starts.length ? Math.min(...starts) : props.now);
  const ends = props.steps.map((s) => ms(s.finished_at) ?? (s.status === "RUNNING" ? props.now : null));
  const t1 = Math.max(
    ms(props.finishedAt) ?? props.now,
    ...ends.filter((t): t is number => t !== null),
    t0 + 1,
  );
  const span = t1 - t0;
  const steps = [...props.steps].sort((a, b) => a.step - b.step);
  return (
    <Paper withBorder p="sm">
      <Group justify="space-between" mb="xs" wrap="nowrap">
        <Text size="xs" c="dimmed" w={LABEL_W}>
          step
        </Text>
        <Group justify="space-between" style={{ flex: 1 }}>
          <Text size="xs" c="dimmed">
            0
          </Text>
          <Text size="xs" c="dimmed" aria-label="timeline span">
            {formatMs(span)}
          </Text>
        </Group>
        <Box w={RIGHT_W} />
      </Group>
      <Stack gap={4} role="list" aria-label="steps timeline">
        {steps.length === 0 && (
          <Text size="sm" c="dimmed">
            No step has started yet.
          </Text>
        )}
        {steps.map((s) => {
          const start = ms(s.started_at);
          const end = ms(s.finished_at) ?? (s.status === "RUNNING" ? props.now : null);
          const left = start === null ? 0 : ((start - t0) / span) * 100;
          const width = start === null || end === null ? 0 : Math.max(((end - start) / span) * 100, 0.6);
          const color = stepColor(s.status);
          const extras: string[] = [];
          if (s.cache_hit) extras.push("cache hit");
          if ((s.attempts ?? 0) > 1) extras.push(`${s.attempts} attempts`);
          if ((s.runs ?? 0) > 1) extras.push(`${s.runs} runs`);
          const name = `step ${s.step} ${s.target ?? ""}: ${s.status}${extras.length ? ` (${extras.join(", ")})` : ""}`;
          return (
            <Box key={s.step} role="listitem" aria-label={name} data-status={s.status}>
            <UnstyledButton
              onClick={() => props.onOpen(s)}
              style={{ borderRadius: 4, width: "100%" }}
              p={2}
            >
              <Group wrap="nowrap" gap={0}>
                <Group w={LABEL_W} gap={6} wrap="nowrap" pr="xs">
                  <Text size="sm" fw={600}>
                    {s.step}
                  </Text>
                  <Text size="sm" truncate style={{ flex: 1 }}>
                    {s.target ?? ""}
                    {s.action ? ` · ${s.action}` : ""}
                  </Text>
                  <Badge size="xs" color={color} variant="dot">
                    {s.status}
                  </Badge>
                </Group>
                <Box
                  style={{
                    flex: 1,
                    position: "relative",
                    height: 22,
                    background: "var(--mantine-color-default-hover)",
                    borderRadius: 4,
                  }}
                >
                  {width > 0 && (
                    <Box
                      data-bar
                      style={{
                        position: "absolute",
                        left: `${Math.min(left, 99.4)}%`,
                        width: `${Math.min(width, 100 - Math.min(left, 99.4))}%`,
                        top: 3,
                        bottom: 3,
                        borderRadius: 3,
                        background: `var(--mantine-color-${color}-${s.status === "RUNNING" ? 4 : 6})`,
                        transition: "width 0.3s linear",
                      }}
                    />
                  )}
                </Box>
                <Group
                  gap={4}
                  w={RIGHT_W}
                  pl="xs"
                  justify="flex-end"
                  wrap="nowrap"
                >
                  {s.cache_hit && (
                    <Badge size="xs" color="teal" variant="dot">
                      cache hit
                    </Badge>
                  )}
                  {(s.attempts ?? 0) > 1 && (
                    <Badge size="xs" color="yellow" variant="dot">
                      ×{s.attempts} attempts
                    </Badge>
                  )}
                  {(s.runs ?? 0) > 1 && (
                    <Badge size="xs" color="grape" variant="dot">
                      {s.runs} runs
                    </Badge>
                  )}
                  <Text size="xs" c="dimmed">
                    {s.duration_ms != null
                      ? formatMs(Number(s.duration_ms))
                      : start !== null && end !== null
                        ? formatMs(end - start)
                        : ""}
                  </Text>
                </Group>
              </Group>
            </UnstyledButton>
            </Box>
          );
        })}
      </Stack>
    </Paper>
  );
}
