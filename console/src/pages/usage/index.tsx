/** The usage area: its routes (placeholder until the area is built). */
import { Text } from "@mantine/core";
import { Route, Routes } from "react-router-dom";
import { PageHeader } from "../../components/common";

export default function Area() {
  return (
    <Routes>
      <Route path="*" element={<><PageHeader title="usage" /><Text c="dimmed">Coming soon.</Text></>} />
    </Routes>
  );
}
