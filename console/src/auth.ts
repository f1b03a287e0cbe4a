/**
 * Signing in. `/console/config.json` (served by the gateway) says how: in the embedded profile's
 * header mode there is nothing to do (the team goes in `X-Team-Id`); in OIDC mode the console
 * signs in with the Authorization Code flow and PKCE (oidc-client-ts) as the public client
 * `auth.oidc.console_client_id`, and sends the access token as `Authorization: Bearer`.
 */
import { UserManager, WebStorageStateStore } from "oidc-client-ts";
import { forgetTeam, setToken } from "./api/client";

export interface ConsoleConfig {
  authMode: "header" | "oidc";
  oidc?: { issuer: string; clientId: string | null; scopes: string };
}

let manager: UserManager | null = null;
const RETURN_KEY = "linqra.returnTo";

export async function loadConfig(): Promise<ConsoleConfig> {
  const response = await fetch(`${window.location.origin}/console/config.json`);
  if (!response.ok) throw new Error(`config.json: HTTP ${response.status}`);
  const config = (await response.json()) as ConsoleConfig;
  if (config.authMode === "oidc" && config.oidc?.clientId) {
    manager = new UserManager({
      authority: config.oidc.issuer,
      popup_redirect_uri: `${window.location.origin}/console/callback`,
      client_id: config.oidc.clientId,
      redirect_uri: `${window.location.origin}/console/callback`,
      post_logout_redirect_uri: `${window.location.origin}/console/`,
      response_type: "code",
      scope: config.oidc.scopes,
      userStore: new WebStorageStateStore({ store: window.sessionStorage }), // this tab only
    });
  }
  return config;
}

/** Whether a usable (not expired) access token is there; it is put where requests find it. */
export async function signedIn(): Promise<boolean> {
  if (!manager) return false;
  const user = await manager.getUser();
  if (!user || user.expired) {
    setToken(null);
    return false;
  }
  setToken(user.access_token);
  return true;
}

/** To the provider's sign-in page; back to `returnTo` afterwards. */
export async function signIn(returnTo: string): Promise<void> {
  if (!manager) throw new Error("sign-in is not configured: set auth.oidc.console_client_id");
  sessionStorage.setItem(RETURN_KEY, returnTo);
  await manager.signinRedirect();
}

/** On /console/callback: finish a sign-in; where to go next (null in a sign-in popup, which
 * the library closes after handing the result to the page that opened it). */
export async function finishSignIn(): Promise<string | null> {
  if (!manager) throw new Error("sign-in is not configured");
  const user = await manager.signinCallback();
  if (!user) return null;
  setToken(user.access_token);
  const back = sessionStorage.getItem(RETURN_KEY) || "/";
  sessionStorage.removeItem(RETURN_KEY);
  return back;
}

/** Sign in again in a popup when the sign-in expired: the page and its unsaved form stay. */
export async function signInAgain(): Promise<void> {
  if (!manager) throw new Error("sign-in is not configured");
  const user = await manager.signinPopup({
    popupWindowFeatures: { width: 520, height: 640 },
  });
  setToken(user.access_token);
}

export async function signOut(): Promise<void> {
  setToken(null);
  forgetTeam(); // the next user chooses their own
  await manager?.removeUser();
}
