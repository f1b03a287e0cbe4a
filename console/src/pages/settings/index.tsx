/** The settings area: API keys, members, the audit log, provider keys. */
import type { ReactNode } from "react";
import { Route, Routes } from "react-router-dom";
import { PageHeader } from "../../components/common";
import { RouteTabs } from "../agents/ui";
import { ApiKeys } from "./ApiKeys";
import { Audit } from "./Audit";
import { Members } from "./Members";
import { Secrets } from "./Secrets";

const TABS = [
  { value: "", label: "API keys" },
  { value: "members", label: "Members" },
  { value: "audit", label: "Audit log" },
  { value: "secrets", label: "Provider keys" },
];

function Frame(props: { children: ReactNode }) {
  return (
    <>
      <PageHeader title="Settings" description="Who can use this team, with which keys, and what they did." />
      <RouteTabs base="/settings" tabs={TABS} />
      {props.children}
    </>
  );
}

export default function Area() {
  return (
    <Routes>
      <Route index element={<Frame><ApiKeys /></Frame>} />
      <Route path="members" element={<Frame><Members /></Frame>} />
      <Route path="audit" element={<Frame><Audit /></Frame>} />
      <Route path="secrets" element={<Frame><Secrets /></Frame>} />
      <Route path="*" element={<Frame><ApiKeys /></Frame>} />
    </Routes>
  );
}
