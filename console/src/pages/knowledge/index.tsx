/**
 * The knowledge area: the team's collections (create, delete) and a page per collection —
 * upload files with their progress, follow each document's ingestion until it is indexed, and
 * search the collection.
 */
import { Route, Routes } from "react-router-dom";
import { CollectionPage } from "./CollectionPage";
import { CollectionsList } from "./CollectionsList";

export default function Area() {
  return (
    <Routes>
      <Route index element={<CollectionsList />} />
      <Route path=":id" element={<CollectionPage />} />
      <Route path="*" element={<CollectionsList />} />
    </Routes>
  );
}
