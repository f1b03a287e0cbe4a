/**
 * How to put a PUBLIC assistant on a web page: the widget's script tag (docs/console.md, "The chat
 * widget") and where its key comes from — a widget key made in Settings → API keys.
 */
import { Anchor, Button, Code, CopyButton, Group, Stack, Text } from "@mantine/core";
import { Link } from "react-router-dom";

export function embedSnippet(origin: string): string {
  return `<script src="${origin}/console/widget.js" data-key="lq_pub_…" async></script>`;
}

export function EmbedSnippet(props: { assistantId?: string }) {
  const snippet = embedSnippet(window.location.origin);
  return (
    <Stack gap="xs" component="section" aria-label="embed">
      <Group justify="space-between" align="center">
        <Text size="sm" fw={600}>
          Embed on a web page
        </Text>
        <CopyButton value={snippet}>
          {({ copied, copy }) => (
            <Button size="xs" variant="light" onClick={copy}>
              {copied ? "Copied" : "Copy snippet"}
            </Button>
          )}
        </CopyButton>
      </Group>
      <Code block data-testid="embed-snippet">
        {snippet}
      </Code>
      <Text size="xs" c="dimmed" data-testid="embed-note">
        Replace <Code>lq_pub_…</Code> with a widget key made in{" "}
        <Anchor component={Link} to="/settings" size="xs" underline="always">
          Settings → API keys
        </Anchor>
        : kind <Code>widget</Code>, resource{" "}
        {props.assistantId ? <Code>{props.assistantId}</Code> : "this assistant (once it is saved)"}, and the
        sites it may be used on as its allowed origins.
      </Text>
    </Stack>
  );
}
