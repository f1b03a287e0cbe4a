import "@mantine/core/styles.css";
import "@mantine/charts/styles.css";
import "@mantine/notifications/styles.css";
import { type CSSVariablesResolver, MantineProvider } from "@mantine/core";
import { Notifications } from "@mantine/notifications";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter } from "react-router-dom";
import { App } from "./App";
import { loadConfig } from "./auth";

// Mantine's defaults are below WCAG AA contrast in places (dimmed gray 6 text, error and link
// colours, white on filled shade 6): darker shades in light mode, a lighter dimmed in dark mode.
const contrast: CSSVariablesResolver = () => ({
  variables: {},
  light: {
    "--mantine-color-dimmed": "var(--mantine-color-gray-7)",
    "--mantine-color-error": "var(--mantine-color-red-8)",
    "--mantine-color-anchor": "var(--mantine-color-blue-8)",
  },
  dark: { "--mantine-color-dimmed": "var(--mantine-color-dark-1)" },
});

const root = createRoot(document.getElementById("root")!);
const config = await loadConfig().catch((error) => {
  root.render(<p role="alert">The console cannot reach the gateway: {String(error)}</p>);
  throw error;
});

root.render(
  <StrictMode>
    {/* light or dark as the system says; no transitions where it asks for reduced motion */}
    <MantineProvider
      defaultColorScheme="auto"
      theme={{ primaryShade: { light: 8, dark: 8 }, respectReducedMotion: true }}
      cssVariablesResolver={contrast}
    >
      <Notifications />
      <BrowserRouter basename="/console">
        <App config={config} />
      </BrowserRouter>
    </MantineProvider>
  </StrictMode>,
);
