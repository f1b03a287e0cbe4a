// The console: a single-page app served by the gateway at /console (deployments/console.py).
// The build goes into the Python package (deployments/console_dist), so `make run` needs no Node.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  base: "/console/",
  plugins: [react()],
  build: {
    outDir: "../deployments/console_dist",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 1500,
  },
  server: {
    // `npm run dev` against a running `linqra up` (the API on :8000)
    proxy: { "/v1": "http://127.0.0.1:8000", "/healthz": "http://127.0.0.1:8000" },
  },
});
