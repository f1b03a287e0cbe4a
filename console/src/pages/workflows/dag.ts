/**
 * A workflow's steps as a graph: which steps each step waits for, and a layered layout (a step's
 * layer is one more than the deepest step it waits for), as docs/workflows.md defines the modes:
 * in `dag` mode a step waits for the steps it refers to (`{{stepN.…}}`) and those in `dependsOn`;
 * in `sequential` mode (the default) steps run one after the other in step-number order.
 */

export interface StepLike {
  step?: unknown;
  target?: unknown;
  action?: unknown;
  dependsOn?: unknown;
  [key: string]: unknown;
}

export interface DagNode {
  step: number;
  label: string;
  layer: number;
  row: number;
}

export interface DagEdge {
  from: number;
  to: number;
  /** "ref": the step refers to the other's result; "order": sequential mode's order. */
  kind: "ref" | "order";
}

export interface DagLayout {
  nodes: DagNode[];
  edges: DagEdge[];
  layers: number;
  rows: number;
}

/** Every step a step refers to inside `{{…}}` (fallbacks after `??` included). */
export function referencedSteps(step: StepLike): number[] {
  const found = new Set<number>();
  const text = JSON.stringify(step);
  for (const match of text.matchAll(/\{\{(.*?)\}\}/g)) {
    for (const ref of match[1].matchAll(/\bstep(\d+)\b/g)) found.add(Number(ref[1]));
  }
  if (Array.isArray(step.dependsOn)) {
    for (const dep of step.dependsOn) {
      const n = typeof dep === "number" ? dep : Number(String(dep).replace(/^step/, ""));
      if (Number.isFinite(n)) found.add(n);
    }
  }
  found.delete(Number(step.step));
  return [...found].sort((a, b) => a - b);
}

function stepLabel(step: StepLike): string {
  const target = typeof step.target === "string" ? step.target : "?";
  return typeof step.action === "string" ? `${target} · ${step.action}` : target;
}

export function layoutSteps(steps: StepLike[], mode: string | null | undefined): DagLayout {
  const numbered = steps
    .filter((s) => typeof s.step === "number")
    .sort((a, b) => Number(a.step) - Number(b.step));
  const known = new Set(numbered.map((s) => Number(s.step)));
  const edges: DagEdge[] = [];
  const waitsFor = new Map<number, number[]>();
  for (const s of numbered) {
    const refs = referencedSteps(s).filter((n) => known.has(n));
    waitsFor.set(Number(s.step), refs);
    for (const r of refs) edges.push({ from: r, to: Number(s.step), kind: "ref" });
  }
  const layer = new Map<number, number>();
  if (mode === "dag") {
    const visiting = new Set<number>();
    const depth = (n: number): number => {
      const done = layer.get(n);
      if (done !== undefined) return done;
      if (visiting.has(n)) return 0; // a cycle: the API refuses these; draw it anyway
      visiting.add(n);
      const deps = waitsFor.get(n) ?? [];
      const d = deps.length ? Math.max(...deps.map(depth)) + 1 : 0;
      visiting.delete(n);
      layer.set(n, d);
      return d;
    };
    for (const s of numbered) depth(Number(s.step));
  } else {
    numbered.forEach((s, i) => {
      layer.set(Number(s.step), i);
      if (i > 0) {
        const prev = Number(numbered[i - 1].step);
        if (!edges.some((e) => e.from === prev && e.to === Number(s.step))) {
          edges.push({ from: prev, to: Number(s.step), kind: "order" });
        }
      }
    });
  }
  const perLayer = new Map<number, number>();
  const nodes: DagNode[] = numbered.map((s) => {
    const l = layer.get(Number(s.step)) ?? 0;
    const row = perLayer.get(l) ?? 0;
    perLayer.set(l, row + 1);
    return { step: Number(s.step), label: stepLabel(s), layer: l, row };
  });
  return {
    nodes,
    edges,
    layers: nodes.length ? Math.max(...nodes.map((n) => n.layer)) + 1 : 0,
    rows: Math.max(1, ...perLayer.values()),
  };
}
