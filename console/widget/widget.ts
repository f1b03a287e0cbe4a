/**
 * The embeddable chat widget of Linqra: one script, no framework.
 *
 *   <script src="https://gateway/console/widget.js" data-key="lq_pub_…" async></script>
 *
 * At start it asks the gateway (GET /v1/widget with the key) which assistant the key is bound to
 * and how the widget looks (the assistant's widgetConfig); the bubble appears once it knows. A
 * refusal (a PRIVATE assistant, a site the key or the assistant does not allow) leaves the
 * bubble with a panel that says so and sends nothing.
 *
 * Optional: data-api (the gateway's origin; default the script's own), data-shadow (open |
 * closed; default open), and overrides of the widgetConfig: data-title, data-welcome,
 * data-placeholder, data-color (accent), data-text-color (text on the accent), data-position
 * (right | left). data-assistant is no longer needed: the key's answer wins over it.
 *
 * Everything it draws lives in a shadow root with its own styles. The visitor's conversation
 * (id, token, the messages shown) is kept in localStorage under the key, so a reload shows it
 * again and a reply still being written at the reload is followed on (Last-Event-ID).
 */
import type { EventSourceMessage } from "eventsource-parser";
import { STYLES } from "./styles";
import { HttpError, httpError, readEvents } from "./stream";

interface Citation {
  n?: number;
  title?: string | null;
  file_name?: string | null;
  page_numbers?: number[] | null;
  text?: string | null;
}

type Status = "streaming" | "completed" | "cancelled" | "failed" | "interrupted";

interface Msg {
  role: "user" | "assistant" | "note";
  text: string;
  status?: Status;
  citations?: Citation[];
  error?: string;
}

interface Saved {
  /** The assistant the conversation is with (a key bound to another one starts afresh). */
  assistant?: string;
  conversationId?: string;
  token?: string;
  open?: boolean;
  messages: Msg[];
  /** The run being written when this was saved, and the last event seen of it. */
  run?: { id: string; lastEventId: string };
}

/** How the widget looks: the assistant's widgetConfig, each field overridden by its data-*. */
interface Look {
  title: string;
  welcome: string;
  placeholder: string;
  color?: string;
  textColor?: string;
  position: "left" | "right";
}

interface Options extends Look {
  key: string;
  api: string;
  shadow: ShadowRootMode;
}

/** The assistant's widgetConfig as GET /v1/widget answers it. */
interface WidgetConfig {
  title?: string;
  welcomeMessage?: string;
  placeholder?: string;
  primaryColor?: string;
  textColor?: string;
  position?: string;
}

/** What GET /v1/widget told: the key's assistant and look, or why this page cannot chat. */
type Found =
  | { assistant: string; config: WidgetConfig }
  | { problem: string; /** worth asking again (unreachable, busy) */ again: boolean };

const KEEP_MESSAGES = 100;
const RETRIES = 4;
const CHAT_ICON =
  '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H8l-5 4V5a2 2 0 0 1 2-2z"/></svg>';
const CLOSE_ICON =
  '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M18.3 5.7 12 12l6.3 6.3-1.4 1.4L10.6 13.4 4.3 19.7 2.9 18.3 9.2 12 2.9 5.7 4.3 4.3l6.3 6.3 6.3-6.3z"/></svg>';

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Record<string, string> = {},
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function newId(): string {
  return globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

function wait(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const NOT_HERE = "This chat is not available on this website";

/** What the visitor is told when the gateway refuses this page (401, 403) or answers otherwise. */
function refusal(error: HttpError): string {
  if (error.field === "accessControl.type") {
    return `${NOT_HERE}: its assistant does not answer on web pages.`;
  }
  if (error.status === 401) return `${NOT_HERE}: its key is no longer valid.`;
  if (error.status === 403) return `${NOT_HERE}: this site is not allowed to use this chat.`;
  return error.message;
}

/** Why a request the browser refused to show failed: the gateway answered (so it refused this
 * page: CORS) or could not be reached at all. */
async function unreachable(api: string): Promise<string> {
  try {
    await fetch(`${api}/console/widget.js`, { mode: "no-cors", cache: "no-store" });
    return (
      `${NOT_HERE}: the assistant refused the request (this site is not allowed to use this ` +
      "chat, its key is no longer valid, or too many messages were sent: try again later)."
    );
  } catch {
    return "The assistant cannot be reached. Check your connection and try again.";
  }
}

/** GET /v1/widget: the key's assistant and widgetConfig. */
async function lookup(api: string, key: string): Promise<Found> {
  try {
    const response = await fetch(`${api}/v1/widget`, {
      headers: { "X-API-Key": key, Accept: "application/json" },
    });
    if (!response.ok) throw await httpError(response);
    const info = (await response.json()) as { assistantId?: string; widgetConfig?: WidgetConfig };
    if (!info.assistantId) throw new HttpError(502, "The gateway named no assistant for this chat.");
    return { assistant: info.assistantId, config: info.widgetConfig ?? {} };
  } catch (error) {
    if (error instanceof HttpError) {
      return { problem: refusal(error), again: error.status === 429 || error.status >= 500 };
    }
    return { problem: await unreachable(api), again: true };
  }
}

class Widget {
  private readonly storageKey: string;
  private state: Saved;
  private readonly root: HTMLDivElement;
  private readonly bubble: HTMLButtonElement;
  private readonly panel: HTMLDivElement;
  private readonly log: HTMLDivElement;
  private readonly alert: HTMLDivElement;
  private readonly input: HTMLTextAreaElement;
  private readonly send: HTMLButtonElement;
  private readonly stop: HTMLButtonElement;
  private readonly views = new Map<Msg, HTMLElement>();
  private busy = false;
  /** The key's assistant; unknown while the gateway refuses this page or cannot be reached. */
  private assistant?: string;
  /** Why this page cannot chat (shown in the alert), and whether asking again may help. */
  private problem = "";
  private again = false;

  constructor(
    private readonly options: Options,
    host: HTMLElement,
    found: Found,
  ) {
    this.storageKey = `linqra-widget:${options.key}`;
    this.state = this.load();
    if ("assistant" in found) this.connected(found.assistant);
    else [this.problem, this.again] = [found.problem, found.again];
    const shadow = host.attachShadow({ mode: options.shadow });
    const style = el("style", {}, STYLES);
    this.root = el("div", { class: "root", "data-position": options.position });
    if (options.color) this.root.style.setProperty("--lq-accent", options.color);
    if (options.textColor) this.root.style.setProperty("--lq-on-accent", options.textColor);

    const panelId = "lq-panel";
    this.panel = el("div", {
      class: "panel",
      id: panelId,
      role: "dialog",
      "aria-label": options.title,
    });
    this.panel.hidden = true;
    const head = el("div", { class: "head" });
    const reset = el(
      "button",
      { type: "button", "aria-label": "New conversation", title: "New conversation" },
      "↺",
    );
    const close = el("button", { type: "button", "aria-label": "Hide chat", title: "Hide" }, "×");
    head.append(el("h2", {}, options.title), reset, close);
    this.log = el("div", {
      class: "log",
      role: "log",
      "aria-live": "polite",
      "aria-label": "Messages",
      tabindex: "0",
    });
    this.alert = el("div", { class: "alert", role: "alert" });
    this.alert.hidden = true;
    const form = el("form", { class: "form" });
    this.input = el("textarea", {
      rows: "1",
      "aria-label": "Message",
      placeholder: options.placeholder,
      maxlength: "32000",
    });
    this.send = el("button", { type: "submit", class: "send" }, "Send");
    this.stop = el("button", { type: "button", class: "send" }, "Stop");
    this.stop.hidden = true;
    form.append(this.input, this.send, this.stop);
    this.panel.append(head, this.log, this.alert, form);

    this.bubble = el("button", {
      type: "button",
      class: "bubble",
      "aria-label": "Open chat",
      "aria-expanded": "false",
      "aria-controls": panelId,
    });
    this.bubble.innerHTML = CHAT_ICON;
    this.root.append(this.panel, this.bubble);
    shadow.append(style, this.root);

    this.bubble.addEventListener("click", () => this.toggle(this.panel.hidden));
    close.addEventListener("click", () => this.toggle(false));
    reset.addEventListener("click", () => this.reset());
    this.stop.addEventListener("click", () => void this.cancel());
    this.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.toggle(false);
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener("input", () => this.fitInput());

    this.renderAll();
    this.showAlert(this.problem);
    if (this.state.open) this.toggle(true, false);
    const last = this.state.messages[this.state.messages.length - 1];
    if (this.state.run && last?.role === "assistant" && last.status === "streaming") {
      void this.follow(last); // a reply was being written when the page went away
    } else if (last?.status === "streaming") {
      last.status = "interrupted";
      this.update(last);
      this.save();
    }
  }

  // -- state ---------------------------------------------------------------------------------
  private load(): Saved {
    try {
      const raw = localStorage.getItem(this.storageKey);
      const saved = raw ? (JSON.parse(raw) as Saved) : null;
      if (saved && Array.isArray(saved.messages)) return saved;
    } catch {
      /* no storage (private mode) or damaged: start afresh */
    }
    return { messages: [] };
  }

  private save(): void {
    const messages = this.state.messages.slice(-KEEP_MESSAGES);
    try {
      localStorage.setItem(this.storageKey, JSON.stringify({ ...this.state, messages }));
    } catch {
      /* full or unavailable: the conversation lasts as long as the page */
    }
  }

  /** The gateway named the key's assistant: a conversation with another one is not continued. */
  private connected(assistant: string): void {
    this.assistant = assistant;
    this.problem = "";
    if (this.state.assistant && this.state.assistant !== assistant) {
      this.state = { assistant, messages: [], open: this.state.open };
      this.save();
    }
    this.state.assistant = assistant;
  }

  private reset(): void {
    if (this.busy) return;
    this.state = { assistant: this.assistant, messages: [], open: true };
    this.save();
    this.showAlert(this.problem);
    this.renderAll();
    this.input.focus();
  }

  // -- view ----------------------------------------------------------------------------------
  private toggle(open: boolean, focus = true): void {
    this.panel.hidden = !open;
    this.bubble.setAttribute("aria-expanded", String(open));
    this.bubble.setAttribute("aria-label", open ? "Close chat" : "Open chat");
    this.bubble.innerHTML = open ? CLOSE_ICON : CHAT_ICON;
    if (this.state.open !== open) {
      this.state.open = open;
      this.save();
    }
    if (open) {
      this.scrollDown(true);
      if (focus) this.input.focus();
    } else if (focus) {
      this.bubble.focus();
    }
  }

  private renderAll(): void {
    this.log.replaceChildren();
    this.views.clear();
    if (this.options.welcome) this.log.append(el("div", { class: "msg welcome" }, this.options.welcome));
    for (const message of this.state.messages) this.append(message);
  }

  private append(message: Msg): void {
    const view = el("div", { class: `msg ${message.role}` });
    const who = { user: "You: ", assistant: "Assistant: ", note: "" }[message.role];
    view.append(el("span", { class: "sr" }, who));
    view.append(el("span", { class: "text" }));
    this.views.set(message, view);
    this.log.append(view);
    this.update(message);
  }

  private update(message: Msg): void {
    const view = this.views.get(message);
    if (!view) return;
    const near = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 60;
    const text = view.querySelector(".text") as HTMLElement;
    if (text.textContent !== message.text) text.textContent = message.text;
    if (message.role !== "assistant") return;
    view.dataset.status = message.status ?? "completed";
    view.setAttribute("aria-busy", String(message.status === "streaming"));
    view.querySelectorAll(".status, .cites").forEach((node) => node.remove());
    const problem =
      message.status === "failed"
        ? `The answer failed${message.error ? `: ${message.error}` : "."}`
        : message.status === "interrupted"
          ? "The answer was interrupted."
          : message.status === "cancelled"
            ? "Stopped."
            : "";
    if (problem) view.append(el("span", { class: "status" }, problem));
    const cited = message.citations ?? [];
    if (cited.length && message.status !== "streaming") {
      const list = el("ol", { class: "cites", "aria-label": "Sources" });
      for (const [index, citation] of cited.entries()) {
        const name = citation.title || citation.file_name || "source";
        const pages = citation.page_numbers?.length ? `, p. ${citation.page_numbers.join(", ")}` : "";
        const item = el("li", {}, `[${citation.n ?? index + 1}] ${name}${pages}`);
        if (citation.text) item.title = citation.text;
        list.append(item);
      }
      view.append(list);
    }
    this.scrollDown(near);
  }

  private scrollDown(force: boolean): void {
    if (force) this.log.scrollTop = this.log.scrollHeight;
  }

  private fitInput(): void {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight + 2, 120)}px`;
  }

  private showAlert(text: string): void {
    this.alert.textContent = text;
    this.alert.hidden = !text;
  }

  private setBusy(busy: boolean): void {
    this.busy = busy;
    this.send.disabled = busy;
    this.send.hidden = busy;
    this.stop.hidden = !busy;
    this.log.setAttribute("aria-busy", String(busy));
  }

  // -- talking to the gateway -------------------------------------------------------------------
  private headers(extra: Record<string, string> = {}): Record<string, string> {
    const headers: Record<string, string> = {
      "X-API-Key": this.options.key,
      Accept: "text/event-stream",
      ...extra,
    };
    if (this.state.token) headers["X-Conversation-Token"] = this.state.token;
    return headers;
  }

  /** The gateway's URL of a path, each part encoded. */
  private url(...parts: string[]): string {
    return `${this.options.api}/v1/${parts.map(encodeURIComponent).join("/")}`;
  }

  private submit(): void {
    const text = this.input.value.trim();
    if (!text || this.busy || this.send.disabled) return;
    if (!this.assistant) {
      void this.connect(); // the text stays in the box
      return;
    }
    this.input.value = "";
    this.fitInput();
    void this.ask(text);
  }

  /** Asks the gateway again for the key's assistant when that may help (it could not be
   * reached, or was busy), then sends the message; otherwise says again why it cannot. */
  private async connect(): Promise<void> {
    if (this.again) {
      this.send.disabled = true;
      this.showAlert("");
      const found = await lookup(this.options.api, this.options.key);
      this.send.disabled = false;
      if ("assistant" in found) {
        this.connected(found.assistant);
        this.save();
        return this.submit();
      }
      [this.problem, this.again] = [found.problem, found.again];
    }
    this.showAlert(this.problem);
  }

  /** Stops the reply being written; its stream then ends with run.cancelled. */
  private async cancel(): Promise<void> {
    const run = this.state.run;
    if (!run || !this.state.conversationId) return;
    const url = this.url("conversations", this.state.conversationId, "runs", run.id, "cancel");
    try {
      const response = await fetch(url, { method: "POST", headers: this.headers() });
      if (!response.ok) throw await httpError(response);
    } catch (error) {
      this.showAlert(error instanceof HttpError ? refusal(error) : await this.unreachable());
    }
  }

  private async ask(text: string, again = false): Promise<void> {
    const assistant = this.assistant;
    if (!assistant) return;
    this.setBusy(true);
    this.showAlert("");
    const question: Msg = { role: "user", text };
    const reply: Msg = { role: "assistant", text: "", status: "streaming" };
    this.state.messages.push(question, reply);
    this.append(question);
    this.append(reply);
    this.scrollDown(true);
    const body: Record<string, unknown> = { message: text, stream: true, clientMessageId: newId() };
    if (this.state.conversationId) body.conversationId = this.state.conversationId;
    let response: Response;
    try {
      response = await fetch(this.url("assistants", assistant, "chat"), {
        method: "POST",
        headers: this.headers({ "Content-Type": "application/json" }),
        body: JSON.stringify(body),
      });
      if (!response.ok) throw await httpError(response);
    } catch (error) {
      this.unsend(question, reply);
      if (error instanceof HttpError && error.status === 404 && this.state.conversationId && !again) {
        // the conversation is gone (deleted, or the key was replaced): start a new one
        this.state.conversationId = this.state.token = undefined;
        this.note("The earlier conversation is no longer available; a new one was started.");
        return this.ask(text, true);
      }
      this.input.value = text; // nothing was sent: the visitor keeps the text
      this.showAlert(error instanceof HttpError ? refusal(error) : await this.unreachable());
      this.setBusy(false);
      return;
    }
    this.state.token = response.headers.get("X-Conversation-Token") ?? this.state.token;
    await this.follow(reply, response);
  }

  private unreachable(): Promise<string> {
    return unreachable(this.options.api);
  }

  private unsend(...messages: Msg[]): void {
    this.state.messages = this.state.messages.filter((m) => !messages.includes(m));
    for (const message of messages) this.views.get(message)?.remove();
  }

  private note(text: string): void {
    const message: Msg = { role: "note", text };
    this.state.messages.push(message);
    this.append(message);
  }

  /** Reads the run's events into `reply`: from `response`, then (a cut connection, or a reply
   * left streaming by a reload) from the run's stream after the last event seen. */
  private async follow(reply: Msg, response?: Response): Promise<void> {
    this.setBusy(true);
    let failures = 0;
    for (;;) {
      try {
        if (!response) {
          const run = this.state.run;
          if (!run || !this.state.conversationId) throw new HttpError(404, "lost");
          const url = this.url("conversations", this.state.conversationId, "runs", run.id, "stream");
          const headers = this.headers({ "Last-Event-ID": run.lastEventId });
          response = await fetch(url, { headers });
          if (!response.ok) throw await httpError(response);
        }
        const ended = await readEvents(
          response,
          (event) => this.onEvent(reply, event),
          () => {
            this.update(reply);
            this.save();
          },
        );
        if (ended) break;
        throw new Error("the stream was cut");
      } catch (error) {
        response = undefined;
        if (error instanceof HttpError || ++failures > RETRIES || !this.state.run) {
          reply.status = this.state.run ? "interrupted" : "failed";
          if (!this.state.run) {
            reply.error = error instanceof HttpError ? refusal(error) : await this.unreachable();
          }
          break;
        }
        await wait(300 * 2 ** failures);
      }
    }
    this.state.run = undefined;
    if (reply.status === "streaming") reply.status = "completed";
    this.update(reply);
    this.save();
    this.setBusy(false);
  }

  private onEvent(reply: Msg, event: EventSourceMessage): void {
    let data: Record<string, unknown> = {};
    try {
      data = JSON.parse(event.data) as Record<string, unknown>;
    } catch {
      return;
    }
    const run = this.state.run;
    if (run && event.id) run.lastEventId = event.id;
    switch (event.event) {
      case "run.created":
        this.state.conversationId = String(data.conversation_id);
        this.state.run = { id: String(data.run_id), lastEventId: event.id ?? "" };
        break;
      case "message.delta":
        reply.text += String(data.text ?? "");
        break;
      case "message.replace":
        reply.text = String(data.text ?? "");
        break;
      case "message.completed":
        reply.text = String(data.content ?? reply.text);
        reply.citations = Array.isArray(data.citations) ? (data.citations as Citation[]) : [];
        break;
      case "run.completed":
      case "run.cancelled":
      case "run.failed":
      case "run.interrupted":
      case "error": {
        const status = event.event === "error" ? "failed" : event.event.slice(4);
        reply.status = status as Status;
        if (typeof data.content === "string" && data.content) reply.text = data.content;
        const error = (data.error ?? (event.event === "error" ? data : null)) as {
          message?: string;
        } | null;
        if (error?.message) reply.error = error.message;
        this.state.run = undefined;
        break;
      }
    }
  }
}

/** The look: each data-* attribute given wins over its widgetConfig field. */
function look(data: DOMStringMap, config: WidgetConfig): Look {
  const colour = (...values: (string | undefined)[]) =>
    values.find((value) => value && CSS.supports("color", value));
  const side = (value: string | undefined) =>
    value === "left" || value === "right" ? value : undefined;
  return {
    title: data.title || config.title || "Chat",
    welcome: data.welcome ?? config.welcomeMessage ?? "Hi! How can I help?",
    placeholder: data.placeholder || config.placeholder || "Type your question…",
    color: colour(data.color, config.primaryColor),
    textColor: colour(data.textColor, config.textColor),
    position: side(data.position) ?? side(config.position) ?? "right",
  };
}

function mount(script: HTMLScriptElement): void {
  const data = script.dataset;
  const key = data.key ?? "";
  if (!key.startsWith("lq_pub_")) {
    console.error("Linqra widget: data-key (a public widget key, lq_pub_…) is required");
    return;
  }
  const api = (data.api || new URL(script.src, location.href).origin).replace(/\/+$/, "");
  const asked = lookup(api, key); // while the page loads
  const start = async () => {
    const found = await asked;
    if ("assistant" in found && data.assistant && data.assistant !== found.assistant) {
      console.warn(
        `Linqra widget: data-assistant="${data.assistant}" is not the key's assistant; ` +
          `chatting with ${found.assistant}, the key's`,
      );
    }
    const config = "config" in found ? found.config : {};
    const shadow: ShadowRootMode = data.shadow === "closed" ? "closed" : "open";
    const host = document.createElement("linqra-chat");
    document.body.append(host);
    new Widget({ key, api, shadow, ...look(data, config) }, host, found);
  };
  if (document.body) void start();
  else document.addEventListener("DOMContentLoaded", () => void start(), { once: true });
}

const current = document.currentScript;
if (current instanceof HTMLScriptElement) mount(current);
else document.querySelectorAll<HTMLScriptElement>("script[data-key][src*='widget.js']").forEach(mount);
