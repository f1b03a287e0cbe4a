/**
 * The console's frame: the navigation, the team it works for, and one area per resource. Each
 * area (pages/<area>/index.tsx) owns its own sub-routes and loads on first visit.
 */
import { Alert, AppShell, Burger, Button, Group, NavLink, Text, TextInput, Title } from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { Component, lazy, type ReactNode, Suspense, useState } from "react";
import { Link, Navigate, Route, Routes, useLocation } from "react-router-dom";
import { currentTeam, setTeam } from "./api/client";
import type { ConsoleConfig } from "./auth";
import { Callback, SignedIn, TeamPicker, useSignOut } from "./pages/SignIn";
import { Overview } from "./pages/Overview";

const Workflows = lazy(() => import("./pages/workflows"));
const Executions = lazy(() => import("./pages/executions"));
const Agents = lazy(() => import("./pages/agents"));
const Assistants = lazy(() => import("./pages/assistants"));
const Knowledge = lazy(() => import("./pages/knowledge"));
const Usage = lazy(() => import("./pages/usage"));
const Settings = lazy(() => import("./pages/settings"));

const AREAS = [
  { path: "/", label: "Overview" },
  { path: "/workflows", label: "Workflows" },
  { path: "/executions", label: "Executions" },
  { path: "/agents", label: "Agents & tasks" },
  { path: "/assistants", label: "Assistants" },
  { path: "/knowledge", label: "Knowledge" },
  { path: "/usage", label: "Usage & costs" },
  { path: "/settings", label: "Settings" },
];

export function App(props: { config: ConsoleConfig }) {
  const oidc = props.config.authMode === "oidc";
  return (
    <Routes>
      <Route path="/callback" element={<Callback />} />
      <Route
        path="*"
        element={
          oidc ? (
            <SignedIn config={props.config}>
              <Frame oidc />
            </SignedIn>
          ) : (
            <Frame oidc={false} />
          )
        }
      />
    </Routes>
  );
}

function Frame(props: { oidc: boolean }) {
  const [opened, { toggle }] = useDisclosure();
  const location = useLocation();
  const [team, setTeamState] = useState(currentTeam());
  const signOut = useSignOut();
  const active = (path: string) =>
    path === "/" ? location.pathname === "/" : location.pathname.startsWith(path);
  return (
    <AppShell
      header={{ height: 56 }}
      navbar={{ width: 220, breakpoint: "sm", collapsed: { mobile: !opened } }}
      padding="md"
    >
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between">
          <Group>
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="menu" />
            <Title order={4}>Linqra</Title>
            <Text c="dimmed" size="sm" visibleFrom="sm">
              console
            </Text>
          </Group>
          {props.oidc ? (
            <Group gap="xs">
              <TeamPicker />
              <Button size="xs" variant="default" onClick={signOut}>
                Sign out
              </Button>
            </Group>
          ) : (
            <TextInput
              aria-label="team"
              size="xs"
              w={180}
              leftSection={<Text size="xs">team</Text>}
              leftSectionWidth={44}
              value={team}
              onChange={(e) => setTeamState(e.currentTarget.value)}
              onBlur={() => {
                setTeam(team.trim() || "default");
                window.location.reload();
              }}
              onKeyDown={(e) => e.key === "Enter" && e.currentTarget.blur()}
            />
          )}
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" component="nav" aria-label="areas">
        {AREAS.map((area) => (
          <NavLink
            key={area.path}
            component={Link}
            to={area.path}
            label={area.label}
            active={active(area.path)}
          />
        ))}
      </AppShell.Navbar>
      <AppShell.Main>
        <AreaErrors>
        <Suspense fallback={<Text c="dimmed">Loading…</Text>}>
          <Routes>
            <Route path="/" element={<Overview />} />
            <Route path="/workflows/*" element={<Workflows />} />
            <Route path="/executions/*" element={<Executions />} />
            <Route path="/agents/*" element={<Agents />} />
            <Route path="/assistants/*" element={<Assistants />} />
            <Route path="/knowledge/*" element={<Knowledge />} />
            <Route path="/usage/*" element={<Usage />} />
            <Route path="/settings/*" element={<Settings />} />
            <Route path="*" element={<Navigate to="/" replace />} />
          </Routes>
        </Suspense>
        </AreaErrors>
      </AppShell.Main>
    </AppShell>
  );
}

/** An area that failed to load or render — after an upgrade an open tab asks for scripts that
 * are gone — says so and offers a reload, instead of a blank page. */
class AreaErrors extends Component<{ children: ReactNode }, { error: Error | null }> {
  state = { error: null as Error | null };

  static getDerivedStateFromError(error: Error) {
    return { error };
  }

  render() {
    if (!this.state.error) return this.props.children;
    return (
      <Alert color="red" title="This page could not be shown" role="alert">
        <Text size="sm" mb="sm">
          {this.state.error.message}. If Linqra was just upgraded, reloading gets the new console.
        </Text>
        <Button size="xs" onClick={() => window.location.reload()}>
          Reload
        </Button>
      </Alert>
    );
  }
}
