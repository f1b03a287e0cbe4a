// Server-sent events over fetch (EventSource can send neither a body nor our headers).
import { createParser, type EventSourceMessage } from "eventsource-parser";

export const TERMINAL = new Set([
  "run.completed",
  "run.cancelled",
  "run.failed",
  "run.interrupted",
  "error",
]);

/** An HTTP answer that is not a stream: its status and the API's `{error: {message, field?}}`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export async function httpError(response: Response): Promise<HttpError> {
  let message = `${response.status} ${response.statusText}`.trim();
  let field: string | undefined;
  try {
    const body = (await response.json()) as { error?: { message?: string; field?: string } };
    if (body.error?.message) message = body.error.message;
    if (typeof body.error?.field === "string") field = body.error.field;
  } catch {
    /* not JSON */
  }
  return new HttpError(response.status, message, field);
}

/**
 * Reads the events of `response` until a terminal one (true) or the end of the body (false: the
 * stream was cut before the run ended). `onBatch` runs after each network read's events.
 */
export async function readEvents(
  response: Response,
  onEvent: (event: EventSourceMessage) => void,
  onBatch: () => void,
): Promise<boolean> {
  if (!response.body) return false;
  let ended = false;
  const parser = createParser({
    onEvent(event) {
      if (ended) return;
      onEvent(event);
      if (TERMINAL.has(event.event ?? "")) ended = true;
    },
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return ended;
      parser.feed(value);
      onBatch();
      if (ended) return true;
    }
  } finally {
    if (ended) void reader.cancel().catch(() => undefined);
  }
}
