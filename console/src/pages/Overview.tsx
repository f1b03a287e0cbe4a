/** The landing page: is the platform up, and where to start. */
import { Anchor, Badge, Card, Group, SimpleGrid, Stack, Text } from "@mantine/core";
import { useEffect, useState } from "react";
import { Link } from "react-router-dom";
import { api } from "../api/client";
import { ErrorAlert, PageHeader } from "../components/common";

const START = [
  { to: "/workflows/new", title: "Create a workflow", text: "Steps as JSON, checked by the API as you save." },
  { to: "/assistants", title: "Chat with an assistant", text: "A model, a prompt, tasks and knowledge; streamed answers." },
  { to: "/knowledge", title: "Add knowledge", text: "Upload documents to a collection and search them." },
  { to: "/usage", title: "See usage and costs", text: "Tokens and cost per model and day." },
];

export function Overview() {
  const [health, setHealth] = useState<Record<string, unknown> | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [me, setMe] = useState<{ team_id: string; role: string } | null>(null);
  useEffect(() => {
    api.GET("/v1/me").then(({ data }) => data && setMe(data));
    api
      .GET("/healthz")
      .then(({ data, response }) => (response.ok ? setHealth(data as Record<string, unknown>) : setError(new Error(`health: ${response.status}`))))
      .catch(setError);
  }, []);
  return (
    <Stack>
      <PageHeader
        title="Overview"
        description={me ? `Working as team ${me.team_id} (${me.role}).` : undefined}
      />
      <ErrorAlert error={error} title="The gateway does not answer" />
      {health && (
        <Group>
          <Text size="sm">Gateway</Text>
          <Badge
            variant="dot"
            color={health.status === "ok" ? "green" : "orange"}
            data-testid="gateway-status"
          >{String(health.status ?? "unknown")}</Badge>
        </Group>
      )}
      <SimpleGrid cols={{ base: 1, sm: 2 }}>
        {START.map((item) => (
          <Card key={item.to} withBorder>
            <Anchor component={Link} to={item.to} fw={600}>
              {item.title}
            </Anchor>
            <Text size="sm" c="dimmed">
              {item.text}
            </Text>
          </Card>
        ))}
      </SimpleGrid>
    </Stack>
  );
}
