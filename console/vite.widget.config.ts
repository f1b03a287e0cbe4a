// The embeddable chat widget: one small script (widget.js) with no framework, built beside the
// console and served at /console/widget.js.
import { defineConfig } from "vite";

export default defineConfig({
  build: {
    outDir: "../deployments/console_dist",
    emptyOutDir: false,
    sourcemap: false,
    lib: {
      entry: "widget/widget.ts",
      name: "LinqraWidget",
      formats: ["iife"],
      fileName: () => "widget.js",
    },
  },
});
