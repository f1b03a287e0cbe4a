/** The API's shapes the assistants area uses, from the generated schema. */
import type { components, paths } from "../../api/schema";

export type Assistant = components["schemas"]["Assistant"];
export type AssistantInput =
  paths["/v1/assistants"]["post"]["requestBody"]["content"]["application/json"];
export type Conversation = components["schemas"]["Conversation"];
export type StoredMessage = components["schemas"]["Message"];

/** "openai:gpt-4o" as the API's `defaultModel`, or why it cannot be one. */
export function parseModel(text: string): { provider: string; modelName: string } | null | string {
  const value = text.trim();
  if (!value) return null;
  const at = value.indexOf(":");
  if (at <= 0 || at === value.length - 1) return "Write the model as provider:model, e.g. openai:gpt-4o";
  return { provider: value.slice(0, at), modelName: value.slice(at + 1) };
}

export function formatModel(model: Assistant["defaultModel"]): string {
  return model ? `${model.provider}:${model.modelName}` : "";
}
