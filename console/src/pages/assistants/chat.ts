/**
 * A chat turn as the playground shows it, and how each server-sent event of a run changes it
 * (docs/chat.md: run.created … message.delta … message.completed … run.completed).
 */
import type { StoredMessage } from "./types";

export interface Citation {
  n?: number;
  rank?: number;
  document_id?: string | null;
  title?: string | null;
  file_name?: string | null;
  page_numbers?: unknown;
  score?: number;
  text?: string | null;
  collection?: string;
}

export interface TaskResult {
  task_id?: string;
  task_execution_id?: string;
  name?: string | null;
  status?: string;
  answer?: unknown;
  error?: unknown;
}

export interface Usage {
  input_tokens?: number;
  output_tokens?: number;
  cache_read_tokens?: number;
  cache_write_tokens?: number;
  reasoning_tokens?: number;
}

export interface ChatTurn {
  key: string;
  role: "user" | "assistant" | "system" | "tool" | string;
  content: string;
  /** pending, queued, streaming, completed, cancelled, failed, interrupted */
  status: string;
  runId?: string | null;
  messageId?: string | null;
  ahead?: number;
  tasks: TaskResult[];
  citations: Citation[];
  retrievalErrors: unknown[];
  usage?: Usage | null;
  cost?: string | null;
  currency?: string | null;
  model?: string | null;
  error?: unknown;
}

export const TERMINAL = new Set(["run.completed", "run.cancelled", "run.failed", "run.interrupted"]);

export function fromStored(message: StoredMessage): ChatTurn {
  return {
    key: message.id,
    role: message.role,
    content: message.content ?? "",
    status: message.status,
    runId: message.run_id,
    messageId: message.id,
    tasks: (message.task_results ?? []) as TaskResult[],
    citations: (message.citations ?? []) as Citation[],
    retrievalErrors: [],
    usage: (message.usage ?? null) as Usage | null,
    cost: message.cost,
    currency: message.currency,
    model: message.model,
    error: message.error,
  };
}

export function emptyReply(key: string): ChatTurn {
  return { key, role: "assistant", content: "", status: "pending", tasks: [], citations: [], retrievalErrors: [] };
}

type Data = Record<string, unknown>;

/** The reply after one event of its run. */
export function applyEvent(turn: ChatTurn, name: string, data: Data): ChatTurn {
  switch (name) {
    case "run.created":
      return { ...turn, runId: String(data.run_id ?? turn.runId ?? "") };
    case "run.queued":
      return { ...turn, status: "queued", ahead: Number(data.ahead ?? 0) };
    case "tasks.started":
      return {
        ...turn,
        status: "streaming",
        tasks: ((data.tasks ?? []) as TaskResult[]).map((t) => ({ ...t, status: "running" })),
      };
    case "task.completed": {
      const done = data as TaskResult;
      const known = turn.tasks.some((t) => t.task_id === done.task_id);
      return {
        ...turn,
        tasks: known ? turn.tasks.map((t) => (t.task_id === done.task_id ? { ...t, ...done } : t)) : [...turn.tasks, done],
      };
    }
    case "retrieval":
      return {
        ...turn,
        citations: (data.citations ?? []) as Citation[],
        retrievalErrors: (data.errors ?? []) as unknown[],
      };
    case "message.delta":
      return {
        ...turn,
        status: "streaming",
        messageId: (data.message_id as string) ?? turn.messageId,
        content: turn.content + String(data.text ?? ""),
      };
    case "message.replace":
      return { ...turn, content: String(data.text ?? "") };
    case "message.completed":
      return {
        ...turn,
        status: "completed",
        messageId: (data.message_id as string) ?? turn.messageId,
        content: typeof data.content === "string" ? data.content : turn.content,
        citations: (data.citations as Citation[]) ?? turn.citations,
        tasks: (data.task_results as TaskResult[])?.length ? (data.task_results as TaskResult[]) : turn.tasks,
        usage: (data.usage as Usage) ?? turn.usage,
        cost: (data.cost as string) ?? turn.cost,
        currency: (data.currency as string) ?? turn.currency,
        model: (data.model as string) ?? turn.model,
      };
    case "run.completed":
    case "run.cancelled":
    case "run.failed":
    case "run.interrupted":
      return {
        ...turn,
        status: String(data.status ?? name.slice(4)),
        content: typeof data.content === "string" ? data.content : turn.content,
        usage: (data.usage as Usage) ?? turn.usage,
        cost: (data.cost as string) ?? turn.cost,
        currency: (data.currency as string) ?? turn.currency,
        error: data.error ?? turn.error,
      };
    default:
      return turn;
  }
}

export function formatCost(cost: string | null | undefined, currency: string | null | undefined): string {
  if (cost === null || cost === undefined) return "cost unknown";
  return `${cost} ${currency ?? ""}`.trim();
}
