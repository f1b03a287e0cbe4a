/** Tokens and cost per model per day over a date range, from GET /v1/usage. */
import { BarChart } from "@mantine/charts";
import { Card, Group, Loader, SimpleGrid, Stack, Table, Text, TextInput, Title } from "@mantine/core";
import { useEffect, useMemo, useState } from "react";
import { api, unwrap } from "../../api/client";
import { EmptyState, ErrorAlert, Pager, RefreshButton } from "../../components/common";
import { errorAt, unplaced, useClientPage } from "../agents/ui";

type Row = Record<string, unknown> & {
  calls: number;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  reasoning_tokens: number;
  cost: string;
  unpriced_calls: number;
};

const COLORS = ["blue.6", "teal.6", "grape.6", "orange.6", "cyan.6", "pink.6", "lime.6", "indigo.6", "red.6", "yellow.6"];

function isoDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}
function addDays(day: string, n: number): string {
  const date = new Date(`${day}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + n);
  return isoDay(date);
}
const tokens = (row: Row) => Number(row.input_tokens ?? 0) + Number(row.output_tokens ?? 0);

/** A decimal amount as text, without float noise, at most 8 decimals shown. */
export function money(text: string | null | undefined): string {
  if (text == null) return "—";
  const n = Number(text);
  if (!Number.isFinite(n)) return text;
  return n.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 8 });
}

async function summary(groupBy: "model" | "day", from: string, to: string): Promise<Row[]> {
  const answer = await unwrap(api.GET("/v1/usage", { params: { query: { group_by: groupBy, from, to } } }));
  return answer.items as Row[];
}

export function UsageCharts() {
  const today = isoDay(new Date());
  const [from, setFrom] = useState(addDays(today, -29));
  const [until, setUntil] = useState(today); // inclusive, as shown
  const [models, setModels] = useState<Row[] | null>(null);
  const [perDay, setPerDay] = useState<{ day: string; rows: Row[] }[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    if (!from || !until) return;
    let live = true;
    const to = addDays(until, 1);
    setLoading(true);
    (async () => {
      const [byModel, byDay] = await Promise.all([summary("model", from, to), summary("day", from, to)]);
      const days = await Promise.all(
        byDay.map(async (d) => {
          const day = String(d.day);
          return { day, rows: await summary("model", day, addDays(day, 1)) };
        }),
      );
      return { byModel, days };
    })()
      .then(({ byModel, days }) => {
        if (!live) return;
        setModels(byModel);
        setPerDay(days);
        setError(null);
      })
      .catch((e: unknown) => live && setError(e))
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
  }, [from, until, tick]);

  const names = useMemo(() => (models ?? []).map((m) => String(m.model)), [models]);
  const series = names.map((name, i) => ({ name, color: COLORS[i % COLORS.length] }));
  // every day of the range, a day without calls at zero
  const days = useMemo(() => {
    const all: string[] = [];
    for (let day = from; day && until && day <= until && all.length < 366; day = addDays(day, 1)) all.push(day);
    return all;
  }, [from, until]);
  const byDay = new Map(perDay.map(({ day, rows }) => [day, rows]));
  const chartData = (value: (row: Row) => number) =>
    days.map((day) => {
      const rows = byDay.get(day) ?? [];
      return { day: day.slice(5), ...Object.fromEntries(names.map((name) => [name, value(rows.find((r) => String(r.model) === name) ?? ({} as Row)) || 0])) };
    });
  const tokenData = chartData(tokens);
  const costData = chartData((r) => Number(r.cost ?? 0));
  const totalCost = (models ?? []).reduce((sum, m) => sum + Number(m.cost), 0);
  const totalTokens = (models ?? []).reduce((sum, m) => sum + tokens(m), 0);
  const totalCalls = (models ?? []).reduce((sum, m) => sum + Number(m.calls), 0);
  const paged = useClientPage(models);

  return (
    <Stack>
      <Group align="flex-end" justify="space-between">
        <Group align="flex-start">
          <TextInput type="date" label="From" value={from} onChange={(e) => setFrom(e.currentTarget.value)} error={errorAt(error, "from")} />
          <TextInput type="date" label="To (inclusive)" value={until} onChange={(e) => setUntil(e.currentTarget.value)} error={errorAt(error, "to")} />
        </Group>
        <RefreshButton onClick={() => setTick((n) => n + 1)} loading={loading} />
      </Group>
      <ErrorAlert error={unplaced(error, ["from", "to"])} />
      {loading && !models && <Loader size="sm" />}
      {models && models.length === 0 && (
        <EmptyState
          title="No LLM calls in this range"
          hint="Usage shows once a model is called: chat with an assistant, run a workflow with an LLM step, or call /v1/chat/completions. Widen the date range to see older calls."
        />
      )}
      {models && models.length > 0 && (
        <>
          <SimpleGrid cols={{ base: 1, sm: 3 }}>
            <Card withBorder>
              <Text size="xs" c="dimmed">Cost</Text>
              <Text fw={700} size="xl" data-testid="total-cost">{money(String(totalCost))}</Text>
            </Card>
            <Card withBorder>
              <Text size="xs" c="dimmed">Tokens (input + output)</Text>
              <Text fw={700} size="xl" data-testid="total-tokens">{totalTokens.toLocaleString()}</Text>
            </Card>
            <Card withBorder>
              <Text size="xs" c="dimmed">Calls</Text>
              <Text fw={700} size="xl">{totalCalls.toLocaleString()}</Text>
            </Card>
          </SimpleGrid>
          <Card withBorder>
            <Title order={4} mb="sm">Tokens per model per day</Title>
            <BarChart h={260} data={tokenData} dataKey="day" series={series} type="stacked" withLegend aria-label="tokens per model per day" />
          </Card>
          <Card withBorder>
            <Title order={4} mb="sm">Cost per model per day</Title>
            <BarChart
              h={260}
              data={costData}
              dataKey="day"
              series={series}
              type="stacked"
              withLegend
              valueFormatter={(v) => money(String(v))}
              aria-label="cost per model per day"
            />
          </Card>
          <Table aria-label="usage per model">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Model</Table.Th>
                <Table.Th>Calls</Table.Th>
                <Table.Th>Input</Table.Th>
                <Table.Th>Output</Table.Th>
                <Table.Th>Cache read / write</Table.Th>
                <Table.Th>Reasoning</Table.Th>
                <Table.Th>Cost</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {paged.rows.map((m) => (
                <Table.Tr key={String(m.model)}>
                  <Table.Td>{String(m.model)}</Table.Td>
                  <Table.Td>{m.calls}</Table.Td>
                  <Table.Td>{m.input_tokens}</Table.Td>
                  <Table.Td>{m.output_tokens}</Table.Td>
                  <Table.Td>
                    {m.cache_read_tokens} / {m.cache_write_tokens}
                  </Table.Td>
                  <Table.Td>{m.reasoning_tokens}</Table.Td>
                  <Table.Td>
                    {m.cost}
                    {m.unpriced_calls > 0 && (
                      <Text span size="xs" c="orange">
                        {" "}
                        ({m.unpriced_calls} unpriced)
                      </Text>
                    )}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
          <Pager {...paged} />
        </>
      )}
    </Stack>
  );
}
