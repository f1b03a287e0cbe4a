/** A Gantt timeline of an execution's steps: one row per step, its bar from started to finished
 * (to now while it runs), coloured by status, with its attempts, runs and cache hits. Rows are
 * virtualised (@tanstack/react-virtual): only those in view are rendered. */
import { Badge, Box, Group, Paper, Text, UnstyledButton } from "@mantine/core";
import { useReducedMotion } from "@mantine/hooks";
import { useWindowVirtualizer } from "@tanstack/react-virtual";
import { useMemo, useRef } from "react";
import { statusColor } from "../../components/common";
import classes from "./Timeline.module.css";
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

const ROW_H = 30;

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
  const steps = useMemo(() => [...props.steps].sort((a, b) => a.step - b.step), [props.steps]);
  // Only the rows in view are in the page (a run may have 500 steps): the list keeps its full
  // height and the rows scrolled past are not rendered.
  const list = useRef<HTMLDivElement>(null);
  const rows = useWindowVirtualizer({
    count: steps.length,
    estimateSize: () => ROW_H,
    overscan: 12,
    scrollMargin: list.current?.offsetTop ?? 0,
  });
  // a bar's growth eased only while that costs little, and never where the system asks for
  // reduced motion
  const reduced = useReducedMotion(undefined, { getInitialValueInEffect: false }); // from the first render
  const animate = !reduced && steps.length <= 50;
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
      {steps.length === 0 && (
        <Text size="sm" c="dimmed">
          No step has started yet.
        </Text>
      )}
      <div
        ref={list}
        role="list"
        aria-label="steps timeline"
        style={{ position: "relative", height: rows.getTotalSize() }}
      >
        {rows.getVirtualItems().map((row) => (
          <Row
            key={steps[row.index].step}
            s={steps[row.index]}
            top={row.start - rows.options.scrollMargin}
            t0={t0}
            span={span}
            now={props.now}
            animate={animate}
            onOpen={props.onOpen}
          />
        ))}
      </div>
    </Paper>
  );
}

/** One step: plain elements (a 500-step run redraws many rows as time passes). */
function Row(props: {
  s: StepRecord;
  top: number;
  t0: number;
  span: number;
  now: number;
  animate: boolean;
  onOpen: (step: StepRecord) => void;
}) {
  const { s, t0, span } = props;
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
  const took =
    s.duration_ms != null
      ? formatMs(Number(s.duration_ms))
      : start !== null && end !== null
        ? formatMs(end - start)
        : "";
  return (
    <div
      role="listitem"
      aria-label={name}
      data-status={s.status}
      style={{ position: "absolute", top: props.top, left: 0, right: 0, height: ROW_H }}
    >
      <UnstyledButton onClick={() => props.onOpen(s)} className={classes.row} p={2}>
        <span className={classes.label} style={{ width: LABEL_W }}>
          <b>{s.step}</b>
          <span className={classes.target}>
            {s.target ?? ""}
            {s.action ? ` · ${s.action}` : ""}
          </span>
          <span className={classes.status}>
            <span
              className={classes.dot}
              style={{ background: `var(--mantine-color-${color}-filled)` }}
            />
            {s.status}
          </span>
        </span>
        <span className={classes.track}>
          {width > 0 && (
            <span
              data-bar
              className={classes.bar}
              style={{
                left: `${Math.min(left, 99.4)}%`,
                width: `${Math.min(width, 100 - Math.min(left, 99.4))}%`,
                background: `var(--mantine-color-${color}-${s.status === "RUNNING" ? 4 : 6})`,
                transition: props.animate ? "width 0.3s linear" : undefined,
              }}
            />
          )}
        </span>
        <span className={classes.right} style={{ width: RIGHT_W }}>
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
          <span className={classes.took}>{took}</span>
        </span>
      </UnstyledButton>
    </div>
  );
}
