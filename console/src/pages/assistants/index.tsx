/**
 * The assistants area: the list, the create and edit form, and a chat playground per assistant
 * (streamed answers, Stop, task results, citations, usage and cost, its conversations).
 */
import { Route, Routes } from "react-router-dom";
import { AssistantForm } from "./AssistantForm";
import { AssistantsList } from "./AssistantsList";
import { ChatPlayground } from "./ChatPlayground";

export default function Area() {
  return (
    <Routes>
      <Route index element={<AssistantsList />} />
      <Route path="new" element={<AssistantForm />} />
      <Route path=":id/edit" element={<AssistantForm />} />
      <Route path=":id" element={<ChatPlayground />} />
      <Route path="*" element={<AssistantsList />} />
    </Routes>
  );
}
