/** The usage area: tokens and cost per model per day, the team's budget, model prices. */
import type { ReactNode } from "react";
import { Route, Routes } from "react-router-dom";
import { PageHeader } from "../../components/common";
import { RouteTabs } from "../agents/ui";
import { Budget } from "./Budget";
import { Models } from "./Models";
import { UsageCharts } from "./UsageCharts";

const TABS = [
  { value: "", label: "Usage" },
  { value: "budget", label: "Budget" },
  { value: "models", label: "Model prices" },
];

function Frame(props: { children: ReactNode }) {
  return (
    <>
      <PageHeader title="Usage & costs" description="What the team's LLM calls used and cost, its budget and its prices." />
      <RouteTabs base="/usage" tabs={TABS} />
      {props.children}
    </>
  );
}

export default function Area() {
  return (
    <Routes>
      <Route index element={<Frame><UsageCharts /></Frame>} />
      <Route path="budget" element={<Frame><Budget /></Frame>} />
      <Route path="models" element={<Frame><Models /></Frame>} />
      <Route path="*" element={<Frame><UsageCharts /></Frame>} />
    </Routes>
  );
}
