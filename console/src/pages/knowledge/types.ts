/** The API's shapes the knowledge area uses, from the generated schema. */
import type { components } from "../../api/schema";

export type Collection = components["schemas"]["Collection"];
export type CollectionStats = components["schemas"]["CollectionStats"];
export type KnowledgeDocument = components["schemas"]["Document"];
export type UploadedDocument = components["schemas"]["UploadedDocument"];
export type SearchHit = components["schemas"]["SearchHit"] & { collection?: string; chunk_index?: number };

export function formatBytes(size: number | null | undefined): string {
  if (size === null || size === undefined) return "";
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KB`;
  return `${(size / 1024 / 1024).toFixed(1)} MB`;
}
