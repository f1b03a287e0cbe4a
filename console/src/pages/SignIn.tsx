/**
 * Signing in with OIDC (see auth.ts): the sign-in page, the callback, the team picker of a
 * signed-in user, and — when the sign-in expires while a page is open — a dialog that signs in
 * again in a popup, so the page and an unsaved form stay as they were.
 */
import { Alert, Button, Center, Modal, Select, Stack, Text, Title } from "@mantine/core";
import { type ReactNode, useEffect, useState } from "react";
import { useLocation, useNavigate } from "react-router-dom";
import { api, chosenTeam, setTeam, whenUnauthorized } from "../api/client";
import { type ConsoleConfig, finishSignIn, signedIn, signIn, signInAgain, signOut } from "../auth";

export function SignedIn(props: { config: ConsoleConfig; children: ReactNode }) {
  const [state, setState] = useState<"checking" | "in" | "out">("checking");
  const [expired, setExpired] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const location = useLocation();
  useEffect(() => {
    signedIn().then((yes) => setState(yes ? "in" : "out"));
    whenUnauthorized(() => setExpired(true));
  }, []);
  if (state === "checking") return null;
  if (state === "out") {
    const configured = Boolean(props.config.oidc?.clientId);
    return (
      <Center h="100vh">
        <Stack align="center" maw={420}>
          <Title order={2}>Sign in to Linqra</Title>
          <Text c="dimmed" size="sm" ta="center">
            {configured
              ? `With your account at ${props.config.oidc?.issuer}.`
              : "This gateway has no console client: set auth.oidc.console_client_id."}
          </Text>
          {error && <Alert color="red">{error}</Alert>}
          <Button
            disabled={!configured}
            onClick={() =>
              signIn(location.pathname + location.search).catch((e) => setError(String(e)))
            }
          >
            Sign in
          </Button>
        </Stack>
      </Center>
    );
  }
  return (
    <>
      {props.children}
      <Modal opened={expired} onClose={() => undefined} withCloseButton={false} title="Your sign-in expired" centered>
        <Stack>
          <Text size="sm">Sign in again to go on; this page and what you typed stay as they are.</Text>
          {error && <Alert color="red">{error}</Alert>}
          <Button
            onClick={() =>
              signInAgain()
                .then(() => {
                  setExpired(false);
                  setError(null);
                })
                .catch((e) => setError(String(e)))
            }
          >
            Sign in again
          </Button>
        </Stack>
      </Modal>
    </>
  );
}

export function Callback() {
  const navigate = useNavigate();
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    finishSignIn()
      .then((back) => back !== null && navigate(back, { replace: true }))
      .catch((e) => setError(String(e)));
  }, [navigate]);
  return (
    <Center h="100vh">
      {error ? <Alert color="red" title="Sign-in failed">{error}</Alert> : <Text>Signing in…</Text>}
    </Center>
  );
}

/** The teams of the signed-in user (from GET /v1/me), one chosen for every request. */
export function TeamPicker() {
  const [teams, setTeams] = useState<string[]>([]);
  const [team, setTeamState] = useState<string | null>(chosenTeam());
  useEffect(() => {
    api.GET("/v1/me").then(({ data }) => {
      if (!data) return;
      setTeams(data.teams ?? []);
      if (!chosenTeam() && data.team_id) setTeamState(data.team_id);
    });
  }, []);
  return (
    <Select
      aria-label="team"
      size="xs"
      w={180}
      data={teams}
      value={team}
      placeholder="team"
      onChange={(value) => {
        if (!value) return;
        setTeam(value);
        window.location.reload();
      }}
    />
  );
}

export function useSignOut(): () => void {
  return () => {
    signOut().then(() => window.location.assign("/console/"));
  };
}
