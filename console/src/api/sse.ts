/**
 * Server-sent events over fetch (EventSource can send neither a body nor our headers), parsed by
 * `eventsource-parser`. `streamEvents` follows one stream until it ends, the signal aborts it, or
 * the connection drops — then, when the caller passes `resume`, it reconnects with
 * `Last-Event-ID` (the last id seen), so a live view loses no event across a dropped connection.
 */
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { authHeaders, toApiError } from "./client";

export interface StreamOptions {
  method?: "GET" | "POST";
  body?: unknown;
  signal?: AbortSignal;
  onEvent: (event: EventSourceMessage) => void;
  /** Called when the connection dropped and a reconnect is being made. */
  onReconnect?: (attempt: number) => void;
  /** The URL to reconnect to (GET, with Last-Event-ID); none: a dropped stream is an error. */
  resume?: (lastEventId: string) => string;
  /** The id of the last event seen before (sent as Last-Event-ID from the first request). */
  lastEventId?: string;
  /** Events that end the stream (e.g. run.completed). */
  terminal?: ReadonlySet<string>;
}

export async function streamEvents(url: string, options: StreamOptions): Promise<void> {
  let lastId = options.lastEventId ?? "";
  let target = url;
  let method = options.method ?? "GET";
  let body = options.body;
  for (let attempt = 0; ; attempt++) {
    let ended = false;
    try {
      const headers: Record<string, string> = { ...authHeaders(), Accept: "text/event-stream" };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      if (lastId) headers["Last-Event-ID"] = lastId;
      const response = await fetch(target, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: options.signal,
      });
      if (!response.ok || !response.body) {
        let error: unknown = null;
        try {
          error = await response.json();
        } catch {
          /* not JSON */
        }
        throw toApiError(error, response);
      }
      const parser = createParser({
        onEvent(event) {
          if (event.id) lastId = event.id;
          options.onEvent(event);
          if (options.terminal?.has(event.event ?? "")) ended = true;
        },
      });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(value);
        if (ended) {
          await reader.cancel();
          return;
        }
      }
      return; // the server ended the stream
    } catch (error) {
      if (options.signal?.aborted) return;
      if ((error as { status?: number }).status !== undefined || !options.resume || !lastId) {
        throw error;
      }
      options.onReconnect?.(attempt + 1);
      await new Promise((resolve) => setTimeout(resolve, Math.min(250 * 2 ** attempt, 4000)));
      target = options.resume(lastId);
      method = "GET";
      body = undefined;
    }
  }
}
