/** The team's LLM budget: what it is, what is spent this period, set it or remove it. */
import { Alert, Button, Card, Group, Progress, Select, SimpleGrid, Stack, Text, TextInput } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useEffect, useState } from "react";
import { api, unwrap } from "../../api/client";
import type { components } from "../../api/schema";
import { EmptyState, ErrorAlert } from "../../components/common";
import { errorAt, unplaced } from "../agents/ui";
import { money } from "./UsageCharts";

type BudgetStatus = components["schemas"]["BudgetStatus"];
type Period = "day" | "month";

export function Budget() {
  const [status, setStatus] = useState<BudgetStatus | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [amount, setAmount] = useState("");
  const [period, setPeriod] = useState<Period>("month");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<"save" | "remove" | null>(null);

  const show = (s: BudgetStatus) => {
    setStatus(s);
    const budget = s.budget as { amount?: string; period?: Period } | null;
    if (budget) {
      setAmount(String(budget.amount ?? ""));
      setPeriod(budget.period ?? "month");
    }
  };
  useEffect(() => {
    unwrap(api.GET("/v1/budget")).then(show).catch(setLoadError);
  }, []);

  const save = async () => {
    setBusy("save");
    try {
      show(await unwrap(api.PUT("/v1/budget", { body: { amount: amount.trim(), period } })));
      setError(null);
      notifications.show({ message: "Budget saved" });
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  };
  const remove = async () => {
    setBusy("remove");
    try {
      await unwrap(api.DELETE("/v1/budget"));
      setStatus({ budget: null });
      setAmount("");
      setError(null);
      notifications.show({ message: "Budget removed" });
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  };

  const budget = status?.budget as { amount?: string; period?: string; currency?: string; invalid?: boolean } | null | undefined;
  const limit = Number(budget?.amount ?? 0);
  const spent = Number(status?.spent ?? 0);
  const reserved = Number(status?.reserved ?? 0);
  return (
    <Stack maw={720}>
      <ErrorAlert error={loadError} />
      {status && !budget && (
        <EmptyState
          title="No budget"
          hint="Without a budget the team's LLM calls are not limited. Set an amount per day or per month: a call that would go over it is refused before any token is bought."
        />
      )}
      {status?.error && (
        <Alert color="red" title="The stored budget is not valid">
          {status.error} — priced calls are refused until it is set again.
        </Alert>
      )}
      {budget && !status?.error && (
        <Card withBorder data-testid="budget-status">
          <Text fw={600} mb="xs">
            {money(budget.amount)} {budget.currency ?? ""} per {budget.period} · period {status?.period ?? "—"}
          </Text>
          <Progress.Root size="lg" mb="xs">
            <Progress.Section value={limit > 0 ? Math.min(100, (spent / limit) * 100) : 0} color="blue" />
            <Progress.Section value={limit > 0 ? Math.min(100, (reserved / limit) * 100) : 0} color="yellow" />
          </Progress.Root>
          <SimpleGrid cols={3}>
            <div>
              <Text size="xs" c="dimmed">Spent</Text>
              <Text>{money(status?.spent)}</Text>
            </div>
            <div>
              <Text size="xs" c="dimmed">Reserved (calls in flight)</Text>
              <Text>{money(status?.reserved)}</Text>
            </div>
            <div>
              <Text size="xs" c="dimmed">Remaining</Text>
              <Text data-testid="budget-remaining">{money(status?.remaining)}</Text>
            </div>
          </SimpleGrid>
        </Card>
      )}
      <Card withBorder>
        <Stack>
          <Text fw={600}>{budget ? "Change the budget" : "Set a budget"}</Text>
          <ErrorAlert error={unplaced(error, ["amount", "period"])} />
          <Group align="flex-start" grow>
            <TextInput
              label="Amount"
              description="In the price catalogue's currency, e.g. 25.00"
              value={amount}
              onChange={(e) => setAmount(e.currentTarget.value)}
              error={errorAt(error, "amount")}
            />
            <Select
              label="Period"
              description="The budget starts again each period"
              data={[
                { value: "day", label: "per day" },
                { value: "month", label: "per month" },
              ]}
              value={period}
              allowDeselect={false}
              onChange={(v) => setPeriod((v ?? "month") as Period)}
              error={errorAt(error, "period")}
            />
          </Group>
          <Group justify="flex-end">
            {budget && (
              <Button color="red" variant="light" onClick={remove} loading={busy === "remove"}>
                Remove budget
              </Button>
            )}
            <Button onClick={save} loading={busy === "save"}>
              Save budget
            </Button>
          </Group>
        </Stack>
      </Card>
    </Stack>
  );
}
