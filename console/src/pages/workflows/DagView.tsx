/** A workflow's steps drawn as a layered graph in plain SVG: one column per layer, arrows from a
 * step to the steps that wait for it (dashed: sequential order only). */
import { Paper, ScrollArea, Text } from "@mantine/core";
import { layoutSteps, type StepLike } from "./dag";

const W = 170;
const H = 48;
const GAP_X = 60;
const GAP_Y = 20;
const PAD = 12;

export function DagView(props: { steps: StepLike[]; mode: string | null | undefined }) {
  const layout = layoutSteps(props.steps, props.mode);
  if (!layout.nodes.length) return <Text c="dimmed">This workflow has no steps.</Text>;
  const pos = new Map(
    layout.nodes.map((n) => [n.step, { x: PAD + n.layer * (W + GAP_X), y: PAD + n.row * (H + GAP_Y) }]),
  );
  const width = PAD * 2 + layout.layers * W + (layout.layers - 1) * GAP_X;
  const height = PAD * 2 + layout.rows * H + (layout.rows - 1) * GAP_Y;
  return (
    <Paper withBorder p="xs">
      <ScrollArea>
        <svg
          width={width}
          height={height}
          role="img"
          aria-label={`Steps graph: ${layout.nodes.length} steps, ${layout.edges.length} dependencies`}
        >
          <defs>
            <marker id="dag-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto">
              <path d="M0,0 L10,5 L0,10 z" fill="var(--mantine-color-dimmed)" />
            </marker>
          </defs>
          {layout.edges.map((e) => {
            const a = pos.get(e.from)!;
            const b = pos.get(e.to)!;
            const x1 = a.x + W;
            const y1 = a.y + H / 2;
            const x2 = b.x;
            const y2 = b.y + H / 2;
            const mid = (x1 + x2) / 2;
            return (
              <path
                key={`${e.from}-${e.to}`}
                data-edge={`${e.from}->${e.to}`}
                d={`M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`}
                fill="none"
                stroke="var(--mantine-color-dimmed)"
                strokeWidth={1.5}
                strokeDasharray={e.kind === "order" ? "4 3" : undefined}
                markerEnd="url(#dag-arrow)"
              />
            );
          })}
          {layout.nodes.map((n) => {
            const p = pos.get(n.step)!;
            return (
              <g key={n.step} transform={`translate(${p.x},${p.y})`} data-step={n.step}>
                <title>{`step ${n.step}: ${n.label}`}</title>
                <rect
                  width={W}
                  height={H}
                  rx={6}
                  fill="var(--mantine-color-body)"
                  stroke="var(--mantine-color-blue-6)"
                  strokeWidth={1.5}
                />
                <text x={10} y={19} fontSize={13} fontWeight={600} fill="var(--mantine-color-text)">
                  {`step ${n.step}`}
                </text>
                <text x={10} y={37} fontSize={12} fill="var(--mantine-color-dimmed)">
                  {n.label.length > 24 ? `${n.label.slice(0, 23)}…` : n.label}
                </text>
              </g>
            );
          })}
        </svg>
      </ScrollArea>
    </Paper>
  );
}
