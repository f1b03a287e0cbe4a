/** The records of the executions area, as the API answers (its step runs carry more fields than
 * the schema names: attempts, cache hits, why a step was skipped). */
import type { components } from "../../api/schema";

export type Execution = components["schemas"]["Execution"];
export type ExecutionSummary = components["schemas"]["ExecutionSummary"];
export type ExecutionStatus = components["schemas"]["ExecutionStatus"];

export type StepRecord = components["schemas"]["StepRun"] & {
  id?: string;
  attempts?: number | null;
  cache_hit?: boolean | null;
  skip_reason?: string | null;
  queued_at?: string | null;
  description?: string | null;
  async?: boolean | null;
};

export const STATUSES: ExecutionStatus[] = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"];

export function isTerminal(execution: Pick<Execution, "status" | "pending_async_steps">): boolean {
  if (execution.status === "PENDING" || execution.status === "RUNNING") return false;
  return !(execution.pending_async_steps ?? []).length;
}
