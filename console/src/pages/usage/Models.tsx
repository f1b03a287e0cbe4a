/** Models at the team's prices: the catalogue's rates, and the team's own rates over them. */
import { Badge, Button, Group, Modal, SimpleGrid, Stack, Table, Text, TextInput } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useEffect, useMemo, useState } from "react";
import { api, unwrap } from "../../api/client";
import type { components } from "../../api/schema";
import { EmptyState, ErrorAlert, Pager, RefreshButton } from "../../components/common";
import { errorAt, unplaced, useClientPage } from "../agents/ui";

type ModelInfo = components["schemas"]["ModelInfo"];
type Linqra = {
  kind?: string;
  context_window?: number;
  price_per_million?: Record<string, string>;
  configured?: boolean;
  local_fallback?: boolean;
  price_version?: string;
  override?: boolean;
};
const RATES = ["input", "output", "cache_read", "cache_write", "reasoning"] as const;
type Rate = (typeof RATES)[number];

export function Models() {
  const [models, setModels] = useState<ModelInfo[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [search, setSearch] = useState("");
  const [editing, setEditing] = useState<ModelInfo | null>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const reload = () => {
    setLoading(true);
    unwrap(api.GET("/v1/models"))
      .then((list) => {
        setModels(list.data);
        setError(null);
      })
      .catch(setError)
      .finally(() => setLoading(false));
  };
  useEffect(reload, []);
  const shown = useMemo(() => (models ?? []).filter((m) => m.id.toLowerCase().includes(search.trim().toLowerCase())), [models, search]);
  const paged = useClientPage(models ? shown : null);
  const reset = async (model: ModelInfo) => {
    try {
      await unwrap(api.DELETE("/v1/models/{model_id}/price", { params: { path: { model_id: model.id } } }));
      setActionError(null);
      notifications.show({ message: `${model.id} is back at the catalogue's price` });
      reload();
    } catch (e) {
      setActionError(e);
    }
  };
  return (
    <Stack gap="sm">
      <Group justify="space-between">
        <TextInput aria-label="search models" placeholder="Search models" value={search} onChange={(e) => setSearch(e.currentTarget.value)} w={280} />
        <RefreshButton onClick={reload} loading={loading} />
      </Group>
      <Text size="sm" c="dimmed">
        Rates per million tokens. A team price replaces the catalogue's for this team's calls (and their cost in usage and budgets).
      </Text>
      <ErrorAlert error={error ?? actionError} />
      {models && shown.length === 0 && (
        <EmptyState
          title={models.length ? "No model matches" : "No models"}
          hint={models.length ? "Clear the search to see every model." : "Configure an LLM provider (llm.providers) and its models show here with their prices."}
        />
      )}
      {paged.total > 0 && (
        <Table aria-label="models">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Model</Table.Th>
              <Table.Th>Input</Table.Th>
              <Table.Th>Output</Table.Th>
              <Table.Th>Cache read</Table.Th>
              <Table.Th>Price</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {paged.rows.map((model) => {
              const info = model.linqra as Linqra;
              const price = info.price_per_million ?? {};
              return (
                <Table.Tr key={model.id}>
                  <Table.Td>
                    <Text size="sm">{model.id}</Text>
                    <Text size="xs" c="dimmed">
                      {info.kind ?? ""} {info.context_window ? `· ${info.context_window.toLocaleString()} tokens` : ""} {info.configured ? "" : "· provider not configured"}{info.configured && info.local_fallback ? "· no key: the local model answers" : ""}
                    </Text>
                  </Table.Td>
                  <Table.Td>{price.input ?? "—"}</Table.Td>
                  <Table.Td>{price.output ?? "—"}</Table.Td>
                  <Table.Td>{price.cache_read ?? "—"}</Table.Td>
                  <Table.Td>
                    {info.override ? <Badge variant="dot" color="grape">team price</Badge> : <Badge variant="dot" color="gray">catalogue {info.price_version ?? ""}</Badge>}
                  </Table.Td>
                  <Table.Td>
                    <Group gap="xs" justify="flex-end" wrap="nowrap">
                      <Button size="xs" variant="light" onClick={() => setEditing(model)}>
                        Set price
                      </Button>
                      {info.override && (
                        <Button size="xs" variant="subtle" color="red" onClick={() => reset(model)}>
                          Reset
                        </Button>
                      )}
                    </Group>
                  </Table.Td>
                </Table.Tr>
              );
            })}
          </Table.Tbody>
        </Table>
      )}
      <Pager {...paged} />
      <PriceForm
        model={editing}
        onClose={() => setEditing(null)}
        onSaved={() => {
          setEditing(null);
          reload();
        }}
      />
    </Stack>
  );
}

function PriceForm(props: { model: ModelInfo | null; onClose: () => void; onSaved: () => void }) {
  const [rates, setRates] = useState<Record<Rate, string>>({ input: "", output: "", cache_read: "", cache_write: "", reasoning: "" });
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    const price = ((props.model?.linqra as Linqra | undefined)?.price_per_million ?? {}) as Record<string, string>;
    setRates({ input: price.input ?? "", output: price.output ?? "", cache_read: price.cache_read ?? "", cache_write: price.cache_write ?? "", reasoning: price.reasoning ?? "" });
    setError(null);
  }, [props.model]);
  const save = async () => {
    if (!props.model) return;
    setBusy(true);
    const body: Record<string, string> = {};
    for (const rate of RATES) if (rates[rate].trim() !== "") body[rate] = rates[rate].trim();
    try {
      await unwrap(
        api.PUT("/v1/models/{model_id}/price", {
          params: { path: { model_id: props.model.id } },
          body: body as { input: string; output: string },
        }),
      );
      notifications.show({ message: `Team price set for ${props.model.id}` });
      props.onSaved();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal opened={props.model !== null} onClose={props.onClose} title={`Team price of ${props.model?.id ?? ""}`} size="lg">
      <Stack>
        <Text size="sm" c="dimmed">Per million tokens, decimal text. Empty optional rates keep the catalogue's.</Text>
        <ErrorAlert error={unplaced(error, [...RATES])} />
        <SimpleGrid cols={2}>
          {RATES.map((rate) => (
            <TextInput
              key={rate}
              label={rate.replace("_", " ")}
              required={rate === "input" || rate === "output"}
              value={rates[rate]}
              onChange={(e) => {
                const value = e.currentTarget.value;
                setRates((r) => ({ ...r, [rate]: value }));
              }}
              error={errorAt(error, rate)}
            />
          ))}
        </SimpleGrid>
        <Group justify="flex-end">
          <Button variant="default" onClick={props.onClose}>
            Cancel
          </Button>
          <Button onClick={save} loading={busy}>
            Save price
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
